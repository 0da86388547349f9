"""Runner series beyond one agent process: attempt outcomes and the runner consumer's backlog.

The backlog is read from the server (the ``agent-runner`` consumer shared by every runner),
so every runner replica reports the same value: aggregate it with ``max``, not ``sum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import Counter, Gauge

from baro_shared import topology as t
from baro_shared.bus import Bus

log = logging.getLogger(__name__)

BACKLOG_REFRESH_S = 5.0

attempts = Counter(
    "baro_story_attempts_total",
    "Story attempts a runner reported, by final status and exit reason",
    ["backend", "status", "reason"],
)
backlog = Gauge(
    "baro_runner_backlog_messages",
    "Story commands waiting for a runner (the runner consumer's num_pending)",
)
in_flight = Gauge(
    "baro_runner_in_flight_messages",
    "Story commands held by runners and not yet acknowledged (num_ack_pending)",
)


async def watch_backlog(bus: Bus, stop: asyncio.Event, every: float = BACKLOG_REFRESH_S) -> None:
    """Refresh the backlog gauges from the server until ``stop`` is set."""
    while not stop.is_set():
        try:
            info = await bus.js.consumer_info(t.CMD_STREAM, t.RUNNER_CONSUMER)
        except Exception as exc:  # a reconnecting server: keep the last value
            log.debug("runner backlog not refreshed: %s", exc)
        else:
            backlog.set(info.num_pending or 0)
            in_flight.set(info.num_ack_pending or 0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
