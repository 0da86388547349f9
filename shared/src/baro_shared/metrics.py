"""Prometheus series shared by every service (bus plumbing).

Domain series live next to the code that owns them (see docs/metrics.md). Labels never
carry a run or story id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Info

NAMESPACE = "baro"

# minutes-long runs: 5-second resolution up front, then minutes up to 2 hours
RUN_SECONDS_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200)
FAST_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

build_info = Info("baro_build", "baro version")
build_info.info({"version": "0.1.0"})

published = Counter(
    "baro_bus_published_messages_total", "Messages published to JetStream", ["kind"]
)
handled = Counter(
    "baro_bus_handled_messages_total", "Messages handled by a service", ["service", "outcome"]
)
handler_errors = Counter(
    "baro_bus_handler_errors_total", "Handler exceptions (message naked for retry)", ["service"]
)
redeliveries = Counter("baro_bus_redeliveries_total", "Deliveries after the first", ["consumer"])
poison_messages = Counter(
    "baro_bus_poison_messages_total", "Undecodable or terminated messages", ["service"]
)
cas_conflicts = Counter(
    "baro_kv_cas_conflicts_total",
    "Compare-and-swap writes that lost to a newer revision",
    ["bucket"],
)
service_up = Gauge("baro_service_up", "1 while the service loop runs", ["service"])
