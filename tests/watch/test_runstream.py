"""The one reader of a run (``baro_shared.runstream``) on a real nats-server: its events and
its agents' events merged in time order, positions to resume from, the live tail, the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.runstream import Position, Streamed, run_stream
from baro_shared.settings import Settings

RUN = "20260501-101500-abcdef"
T0 = 1_800_000_000.0


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = await Bus.open(settings, "runstream-test")
    try:
        yield b
    finally:
        await b.close()


def started(sid: str, at: float) -> s.StoryStarted:
    return s.StoryStarted(run_id=RUN, story_id=sid, attempt=1, runner="r", ts=at)


def agent(sid: str, seq: int, at: float, text: str = "hi") -> s.AgentEventMsg:
    return s.AgentEventMsg(
        run_id=RUN, story_id=sid, attempt=1, seq=seq, ts=at, event=s.AssistantText(text=text)
    )


def finished(at: float) -> s.RunFinished:
    return s.RunFinished(run_id=RUN, status="delivered", ts=at)


async def publish(bus: Bus, *events: s.Event | s.AgentEventMsg) -> None:
    for i, ev in enumerate(events):
        if isinstance(ev, s.AgentEventMsg):
            await bus.publish_agent_event(ev)
        else:
            await bus.publish(ev, f"{RUN}.test.{ev.ts}.{i}")


async def read_all(stream: AsyncIterator[Streamed | None], timeout: float = 20) -> list[Streamed]:
    async def collect() -> list[Streamed]:
        return [item async for item in stream if item is not None]

    return await asyncio.wait_for(collect(), timeout)


def label(item: Streamed) -> str:
    ev = item.event
    if isinstance(ev, s.AgentEventMsg):
        return f"agent:{ev.story_id}:{ev.seq}"
    return ev.__struct_config__.tag  # type: ignore[return-value]


async def test_history_merges_both_streams_by_time_and_ends_after_the_run(bus: Bus) -> None:
    # published stream by stream, out of time order across the two streams
    await publish(bus, started("S1", T0 + 1), started("S2", T0 + 2), finished(T0 + 9))
    await publish(bus, agent("S1", 1, T0 + 1.5), agent("S2", 1, T0 + 2.5), agent("S1", 2, T0 + 3))

    items = await read_all(run_stream(bus, RUN, agent=True))

    assert [label(i) for i in items] == [
        "story.started",
        "agent:S1:1",
        "story.started",
        "agent:S2:1",
        "agent:S1:2",
        "run.finished",
    ]
    positions = [i.position for i in items]
    assert positions == sorted(positions, key=lambda p: (p.events, p.agent))
    assert positions[-1] == Position(3, 3)


async def test_without_agent_events_only_the_runs_own(bus: Bus) -> None:
    await publish(bus, started("S1", T0 + 1), agent("S1", 1, T0 + 2), finished(T0 + 3))
    items = await read_all(run_stream(bus, RUN))
    assert [label(i) for i in items] == ["story.started", "run.finished"]
    assert items[-1].position.text(agent=False) == "2"


async def test_a_reader_resumes_after_its_position(bus: Bus) -> None:
    await publish(bus, started("S1", T0 + 1), agent("S1", 1, T0 + 2), agent("S1", 2, T0 + 4))
    await publish(bus, started("S2", T0 + 3), finished(T0 + 5))
    first = await read_all(run_stream(bus, RUN, agent=True))
    cut = first[2].position
    assert Position.parse(cut.text(agent=True)) == cut

    rest = await read_all(run_stream(bus, RUN, agent=True, after=cut))

    assert [label(i) for i in first[3:]] == [label(i) for i in rest]
    assert [label(i) for i in rest] == ["agent:S1:2", "run.finished"]


async def test_live_events_arrive_as_published_and_trailing_agent_events_are_read(
    bus: Bus,
) -> None:
    await publish(bus, started("S1", T0))
    seen: list[str] = []

    async def follow() -> None:
        async for item in run_stream(bus, RUN, agent=True, keepalive_s=0.2):
            seen.append("keepalive" if item is None else label(item))

    reader = asyncio.create_task(follow())
    await asyncio.sleep(0.6)
    assert seen[0] == "story.started" and "keepalive" in seen
    await publish(bus, agent("S1", 1, T0 + 1))
    await asyncio.sleep(0.3)
    assert [x for x in seen if x != "keepalive"] == ["story.started", "agent:S1:1"]
    # the agent's last event is published before the run ends, read after it ends
    await publish(bus, agent("S1", 2, T0 + 2), finished(T0 + 3))
    await asyncio.wait_for(reader, 20)
    shown = [x for x in seen if x != "keepalive"]
    assert shown[-2:] in (["agent:S1:2", "run.finished"], ["run.finished", "agent:S1:2"])


async def test_not_following_ends_with_the_history_and_stop_ends_a_live_stream(bus: Bus) -> None:
    await publish(bus, started("S1", T0))
    items = await read_all(run_stream(bus, RUN, agent=True, follow=False))
    assert [label(i) for i in items] == ["story.started"]

    empty = await read_all(run_stream(bus, "20260501-101500-000000", agent=True, follow=False))
    assert empty == []

    stop = asyncio.Event()
    reader = asyncio.create_task(read_all(run_stream(bus, RUN, agent=True, stop=stop)))
    await asyncio.sleep(0.3)
    assert not reader.done()
    stop.set()
    assert [label(i) for i in await asyncio.wait_for(reader, 10)] == ["story.started"]


def test_positions_read_and_refuse() -> None:
    assert Position.parse("12") == Position(12, 0)
    assert Position.parse("12-40") == Position(12, 40)
    assert Position(3, 4).text(agent=False) == "3"
    for bad in ("", "-1", "1-", "a", "1-2-3", "1" * 19):
        with pytest.raises(ValueError):
            Position.parse(bad)
