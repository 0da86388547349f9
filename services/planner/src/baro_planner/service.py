"""The planner's bus handler: PlanGoal in, PlanProposed (or PlanFailed) out; ReviewStory
in, StoryReviewed out; ReplanStory in, StoryReplanned out.

The decisions live in :mod:`baro_planner.planning`, :mod:`baro_planner.critic` and
:mod:`baro_planner.replan`; this
module fetches the repository's file list from the object store, reaches the backend CLI
through ``oneshot.ask`` and publishes the outcome. A PlanGoal for a run that is no longer
planning (cancelled, or planned by an earlier delivery of the same command), a
ReviewStory for an attempt no longer under review, or a ReplanStory for a story no
longer waiting for it, is acknowledged without work, so a
redelivery never pays for a second model call.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from prometheus_client import Counter

from baro_planner.asking import Ask
from baro_planner.critic import review_story
from baro_planner.planning import Proposal, propose
from baro_planner.replan import replan_story
from baro_shared import oneshot
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.backends import binary_for
from baro_shared.bus import ACK, Bus, Delivery, Outcome
from baro_shared.oneshot import OneShotResult
from baro_shared.plan import PlanError
from baro_shared.service import CommandService
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

MAX_LISTED_FILES = 200_000

plans = Counter("baro_planner_plans_total", "Plans proposed or failed", ["planner", "outcome"])
reviews = Counter("baro_planner_reviews_total", "The critic's verdicts", ["verdict"])
replans = Counter(
    "baro_planner_replans_total", "Replanning answers for stories that failed twice", ["decision"]
)


class Planner(CommandService):
    name = "planner"
    consumer = t.PLANNER_CONSUMER
    slots = 4

    async def handle(self, delivery: Delivery[s.Command]) -> Outcome:
        cmd = delivery.message
        if isinstance(cmd, s.ReviewStory):
            return await self.review(cmd)
        if isinstance(cmd, s.ReplanStory):
            return await self.replan(cmd)
        if not isinstance(cmd, s.PlanGoal) or not await self._still_planning(cmd.run_id):
            return ACK
        files = await self._files(cmd.file_list)
        backend = cmd.backend
        ask = self._asker(backend, cmd.model, cmd.agent_script, cmd.limits)

        try:
            proposal = await propose(
                cmd.goal,
                cmd.mode,
                cmd.caps,
                files,
                strategy=cmd.strategy,
                backend=backend,
                installed=backend is not None and binary_for(backend, self.settings) is not None,
                ask=ask,
                design=cmd.design,
                given=cmd.plan,
                envelope=cmd.envelope,
            )
        except PlanError as exc:
            proposal = Proposal([], "single", error=str(exc))
        await self.bus.publish(outcome_event(cmd.run_id, proposal), f"{cmd.run_id}.plan_outcome")
        plans.labels(
            planner=proposal.planner, outcome="proposed" if proposal.ok else "failed"
        ).inc()
        return ACK

    def _asker(
        self,
        backend: str | None,
        model: str | None,
        agent_script: str | None,
        limits: s.Limits | None = None,
    ) -> Ask:
        async def ask(prompt: str, purpose: str) -> OneShotResult:
            assert backend is not None
            return await oneshot.ask(
                backend,
                prompt,
                self.settings,
                purpose=purpose,
                model=model,
                agent_script=agent_script,
                limits=limits,
            )

        return ask

    async def review(self, cmd: s.ReviewStory) -> Outcome:
        """The critic's question about one attempt; its verdict goes to the conductor."""
        if not await self._story_waits(cmd.run_id, cmd.story.id, "reviewing", cmd.attempt):
            return ACK
        ask = self._asker(cmd.backend, cmd.model, cmd.agent_script)
        review = await review_story(cmd.goal, cmd.story, cmd.diff, cmd.checks, ask, cmd.backend)
        await self.bus.publish(
            s.StoryReviewed(
                run_id=cmd.run_id,
                story_id=cmd.story.id,
                attempt=cmd.attempt,
                verdict=review.verdict,
                reasons=review.reasons,
                note=review.note,
                tokens=review.tokens,
            ),
            f"{cmd.run_id}.reviewed.{cmd.story.id}.{cmd.attempt}",
        )
        reviews.labels(verdict=review.verdict).inc()
        return ACK

    async def replan(self, cmd: s.ReplanStory) -> Outcome:
        """How a story that failed twice goes on; the answer goes to the conductor."""
        if not await self._story_waits(cmd.run_id, cmd.story.id, "replanning"):
            return ACK
        ask = self._asker(cmd.backend, cmd.model, cmd.agent_script)
        replan = await replan_story(
            cmd.goal, cmd.mode, cmd.story, cmd.failures, cmd.room, ask, cmd.backend
        )
        await self.bus.publish(
            s.StoryReplanned(
                run_id=cmd.run_id,
                story_id=cmd.story.id,
                round=cmd.round,
                decision=replan.decision,
                reason=replan.reason,
                stories=replan.stories,
                note=replan.note,
                tokens=replan.tokens,
            ),
            f"{cmd.run_id}.replanned.{cmd.round}",
        )
        replans.labels(decision=replan.decision).inc()
        return ACK

    async def _story_waits(
        self, run_id: str, story_id: str, status: s.StoryStatus, attempt: int | None = None
    ) -> bool:
        """Whether the story still waits for this question (a redelivered command for a
        run that moved on, or was cancelled, is not asked again)."""
        got = await self.bus.get_record(run_id)
        if got is None:
            return True  # the record is the conductor's; a question never waits on it
        story = got[0].story(story_id)
        return (
            story is not None
            and story.status == status
            and (attempt is None or story.attempt == attempt)
        )

    async def _still_planning(self, run_id: str) -> bool:
        got = await self.bus.get_record(run_id)
        if got is None:
            return True  # the record is the conductor's; planning never waits on it
        record = got[0]
        return record.state == "planning" and not record.stories

    async def _files(self, name: str | None) -> list[str] | None:
        """The repository's file list (written by the merger), or None when unavailable."""
        if not name:
            return None
        try:
            with tempfile.TemporaryDirectory(prefix="baro-plan-") as tmp:
                path = Path(tmp) / "files.txt"
                await self.bus.get_file(name, path, timeout=30)
                with path.open(encoding="utf-8", errors="replace") as fh:
                    files = []
                    for line in fh:
                        if len(files) >= MAX_LISTED_FILES:
                            break
                        if line.strip():
                            files.append(line.rstrip("\n"))
                    return files
        except Exception as exc:  # planning goes on without the list
            log.warning("file list %s unavailable: %s", name, exc)
            return None


def outcome_event(run_id: str, proposal: Proposal) -> s.PlanProposed | s.PlanFailed:
    if proposal.ok:
        return s.PlanProposed(
            run_id=run_id,
            stories=proposal.stories,
            planner=proposal.planner,
            notes=proposal.notes,
            tokens=proposal.tokens,
            design=proposal.design,
        )
    spent = proposal.tokens + (proposal.design.tokens if proposal.design else s.TokenUsage())
    return s.PlanFailed(run_id=run_id, error=proposal.error or "", tokens=spent)


async def create(bus: Bus, settings: Settings) -> Planner:
    return Planner(bus, settings)
