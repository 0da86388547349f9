"""Every run's events live: listening from the moment the call returns, nothing before."""

from __future__ import annotations

import asyncio

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.settings import Settings

REPO = s.RepoSource(kind="path", location="/src/app", commit="base")


def submitted(run_id: str) -> s.RunSubmitted:
    return s.RunSubmitted(run_id=run_id, goal="fix a.py", repo=REPO, backend="scripted")


async def test_an_event_published_right_after_the_call_is_seen_and_none_before(
    settings: Settings,
) -> None:
    bus = await Bus.open(settings, "live-events")
    try:
        await bus.publish(submitted("r-before"), "r-before.submitted")
        # the API sends a client its first line once this returns: an event published
        # at once after it must come out (the subscription is not left to the first read)
        changes = await bus.live_run_events(idle_s=5)
        await bus.publish(submitted("r-after"), "r-after.submitted")
        first = await anext(changes)
        assert isinstance(first, s.RunSubmitted) and first.run_id == "r-after"
        await changes.aclose()
    finally:
        await bus.close()


async def _listeners(bus: Bus) -> int:
    return (await bus.js.stream_info(t.EVT_STREAM)).state.consumer_count


async def test_listening_closed_before_the_first_read_leaves_nothing_listening(
    settings: Settings,
) -> None:
    # a client that leaves before its first line: the response never reads the events,
    # and only closing them ends the subscription (else the server keeps a consumer, and
    # the client a subscription, sending every event of every run for minutes)
    bus = await Bus.open(settings, "live-events")
    try:
        before = await _listeners(bus)
        changes = await bus.live_run_events(idle_s=5)
        assert await _listeners(bus) == before + 1
        await changes.aclose()
        for _ in range(50):  # the consumer is deleted apart from the closing call
            if await _listeners(bus) == before:
                break
            await asyncio.sleep(0.1)
        assert await _listeners(bus) == before
    finally:
        await bus.close()
