"""A worker's slot freed early: the next message is taken while the handler still finishes,
and the first message stays unsettled until its handler returns (real nats-server)."""

from __future__ import annotations

import asyncio
import contextlib

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import ACK, Bus, Delivery, Outcome, Worker
from baro_shared.settings import Settings


def command(story_id: str) -> s.RunStory:
    return s.RunStory(
        run_id="20250101-000000-slot01",
        story=s.Story(id=story_id, title=story_id),
        attempt=1,
        goal="g",
        mode="parallel",
        source=s.RepoSource(kind="path", location="/src/app", commit="base"),
        base_commit="base",
        backend="scripted",
    )


async def pending(bus: Bus) -> int:
    info = await bus.js.consumer_info(t.CMD_STREAM, t.RUNNER_CONSUMER)
    return info.num_ack_pending


async def handled_side_by_side(settings: Settings, free_early: bool) -> tuple[bool, int]:
    """Two story commands on a one-slot worker whose first handler waits: was the second
    handled meanwhile, and how many messages were unsettled then."""
    bus = await Bus.open(settings, "slot-test")
    first_waits, second_handled = asyncio.Event(), asyncio.Event()

    async def handler(delivery: Delivery[s.Command]) -> Outcome:
        assert isinstance(delivery.message, s.RunStory)
        if delivery.message.story.id == "S1":
            if free_early:
                delivery.free_slot()
                delivery.free_slot()  # a second call frees nothing more
            await first_waits.wait()
        else:
            second_handled.set()
        return ACK

    worker = Worker(bus, t.RUNNER_CONSUMER, s.command_decoder, handler, slots=1, service="test")
    running = asyncio.create_task(worker.run())
    try:
        await bus.publish(command("S1"), "slot-S1")
        await bus.publish(command("S2"), "slot-S2")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(second_handled.wait(), 3)
        side_by_side = second_handled.is_set()
        await asyncio.sleep(0.2)  # the second's ack reaches the server
        unsettled = await pending(bus)
        first_waits.set()
        await asyncio.wait_for(second_handled.wait(), 10)
        for _ in range(50):
            if await pending(bus) == 0:
                break
            await asyncio.sleep(0.1)
        assert await pending(bus) == 0
        return side_by_side, unsettled
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
        await bus.close()


async def test_a_freed_slot_takes_the_next_message_while_the_first_stays_unsettled(
    settings: Settings,
) -> None:
    side_by_side, unsettled = await handled_side_by_side(settings, free_early=True)
    assert side_by_side, "the second message waited for the first handler"
    assert unsettled == 1, "the first message is settled only when its handler returns"


async def test_a_slot_not_freed_holds_the_next_message_back(settings: Settings) -> None:
    side_by_side, unsettled = await handled_side_by_side(settings, free_early=False)
    assert not side_by_side
    assert unsettled == 1
