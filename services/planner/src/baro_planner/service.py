"""The planner's bus handler: PlanGoal in, PlanProposed (or PlanFailed) out."""

from __future__ import annotations

import logging

from baro_planner.deterministic import plan_goal
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import ACK, Bus, Delivery, Outcome, Worker
from baro_shared.settings import Settings

log = logging.getLogger(__name__)


class Planner:
    name = "planner"

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.worker = Worker(
            bus,
            t.PLANNER_CONSUMER,
            s.command_decoder,
            self.handle,
            slots=4,
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
        if not isinstance(cmd, s.PlanGoal):
            return ACK
        proposed = propose(cmd)
        await self.bus.publish(proposed, f"{cmd.run_id}.plan_proposed")
        return ACK


def propose(cmd: s.PlanGoal) -> s.PlanProposed:
    stories = plan_goal(cmd.goal, cmd.mode, cmd.caps)
    if stories is not None:
        kind = "single" if len(stories) == 1 else "deterministic"
        return s.PlanProposed(run_id=cmd.run_id, stories=stories, planner=kind)
    title = cmd.goal.strip().splitlines()[0][:120] if cmd.goal.strip() else "goal"
    note = "the goal states no steps or units to split along; planned as one story"
    return s.PlanProposed(
        run_id=cmd.run_id,
        stories=[s.Story(id="S1", title=title, description=cmd.goal.strip())],
        planner="single",
        notes=[note],
    )


async def create(bus: Bus, settings: Settings) -> Planner:
    return Planner(bus, settings)
