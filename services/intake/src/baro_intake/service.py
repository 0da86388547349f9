"""The intake's bus handler: ClassifyGoal in, IntakeDecided out."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram

from baro_intake.classifier import classify
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import ACK, Bus, Delivery, Outcome, Worker
from baro_shared.metrics import FAST_SECONDS_BUCKETS
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

decisions = Counter("baro_intake_decisions_total", "Intake decisions", ["mode", "source"])
confidence = Histogram(
    "baro_intake_confidence",
    "Confidence of intake decisions",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
latency = Histogram(
    "baro_intake_classification_seconds",
    "Time to classify one goal",
    ["source"],
    buckets=FAST_SECONDS_BUCKETS,
)


class Intake:
    name = "intake"

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.worker = Worker(
            bus,
            t.INTAKE_CONSUMER,
            s.command_decoder,
            self.handle,
            slots=8,
            heartbeat_s=10.0,
            service=self.name,
        )

    def ready(self) -> bool:
        return self.bus.nc.is_connected and self.worker.ready.is_set()

    def stop(self) -> None:
        self.worker.stop()

    async def run(self) -> None:
        await self.worker.run()

    async def handle(self, delivery: Delivery[s.Command]) -> Outcome:
        cmd = delivery.message
        if not isinstance(cmd, s.ClassifyGoal):
            return ACK
        started = time.perf_counter()
        decision = classify(cmd.goal)
        elapsed = time.perf_counter() - started
        decision.latency_ms = round(elapsed * 1000, 3)
        latency.labels(source=decision.source).observe(elapsed)
        decisions.labels(mode=decision.mode, source=decision.source).inc()
        confidence.observe(decision.confidence)
        await self.bus.publish(
            s.IntakeDecided(run_id=cmd.run_id, decision=decision), f"{cmd.run_id}.intake"
        )
        return ACK


async def create(bus: Bus, settings: Settings) -> Intake:
    return Intake(bus, settings)
