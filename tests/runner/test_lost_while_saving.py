"""An attempt whose agent had ended (its slot handed on) and whose runner was then lost comes
back as a redelivery: the runner reports the attempt lost instead of running its agent
again beside the stories that took the slot (real nats-server)."""

from __future__ import annotations

import asyncio

from baro_runner.service import LOST_WHILE_SAVING, Runner
from baro_shared import schemas as s
from baro_shared.bus import ACK, Bus, Delivery
from baro_shared.settings import Settings

RUN = "20250101-000000-lost01"
SOURCE = s.RepoSource(kind="path", location="/src/app", commit="base")


def run_record(agent_ended: bool) -> s.RunRecord:
    request = s.RunSubmitted(run_id=RUN, goal="g", repo=SOURCE, backend="scripted")
    story = s.StoryState(
        story=s.Story(id="S1", title="t"),
        status="running",
        attempt=1,
        runner="gone",
        agent_ended=agent_ended,
    )
    return s.RunRecord(
        run_id=RUN, request=request, state="running", base_commit="base", stories=[story]
    )


def redelivery() -> Delivery[s.Command]:
    command = s.RunStory(
        run_id=RUN,
        story=s.Story(id="S1", title="t"),
        attempt=1,
        goal="g",
        mode="parallel",
        source=SOURCE,
        base_commit="base",
        backend="scripted",
    )
    return Delivery(
        message=command,
        attempt=2,  # the second delivery of the command: attempt 2 of the story
        subject="baro.cmd.agent-runner.x",
        stream_seq=1,
        shutdown=asyncio.Event(),
        raw=None,  # type: ignore[arg-type]
    )


async def test_a_redelivered_story_whose_agent_had_ended_is_reported_lost(
    settings: Settings,
) -> None:
    bus = await Bus.open(settings, "lost-test")
    try:
        await bus.create_record(run_record(agent_ended=True))
        runner = Runner(bus, settings)
        assert await runner.handle(redelivery()) == ACK
        events = [ev async for ev in bus.run_events(RUN, follow=False, idle_timeout=1)]
        assert not [ev for ev in events if isinstance(ev, s.StoryStarted)], "no agent ran"
        (finished,) = [ev for ev in events if isinstance(ev, s.StoryFinished)]
        assert (finished.attempt, finished.status, finished.exit_reason) == (
            2,
            "failed",
            "runner_lost",
        )
        assert finished.error == LOST_WHILE_SAVING
        assert not list(settings.workspaces_dir.rglob("S1*")), "no workspace was prepared"
    finally:
        await bus.close()
