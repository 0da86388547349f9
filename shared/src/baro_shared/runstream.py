"""A run as its watchers see it: one stream of its events (``BARO_EVT``) and, when asked,
its agents' normalized events (``BARO_AGENT``), in time order.

Every view of a run reads this and nothing else (docs/events.md): the terminal view and
progress lines of ``baro run``/``baro watch``, their ``--events`` lines, the API's
server-sent events and, through those, the web dashboard.

The history is replayed first, the two streams merged by timestamp; from then on events
come as they arrive. The stream ends after ``run.finished`` (once the agents' events up
to then are read), when ``stop`` is set, or, not following, at the end of the history.
Each item carries its :class:`Position`, where a reader that lost the stream resumes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus, release_later

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
CONSUMER_IDLE_S = 60.0  # a stream's consumer outlives a vanished reader this long
CATCH_UP_S = 10.0  # a message the server counted as pending arrives well within this
MAX_SEQ = 10**18 - 1  # what a position may name (below a stream sequence's 2**63)

WatchedEvent = s.Event | s.AgentEventMsg
_POSITION = re.compile(r"^([0-9]{1,18})(?:-([0-9]{1,18}))?$")
POSITION_PATTERN = _POSITION.pattern


@dataclass(frozen=True)
class Position:
    """The last stream sequence read of the run's events and of its agents' events."""

    events: int = 0
    agent: int = 0

    def text(self, agent: bool) -> str:
        """``EVENTS`` or, with agent events, ``EVENTS-AGENT``: an SSE id."""
        return f"{self.events}-{self.agent}" if agent else str(self.events)

    @classmethod
    def parse(cls, text: str) -> Position:
        found = _POSITION.match(text.strip())
        if found is None:
            raise ValueError(f"{text!r} is not a stream position (N or N-M)")
        return cls(int(found.group(1)), int(found.group(2) or 0))


@dataclass(frozen=True)
class Streamed:
    position: Position  # after this item
    event: WatchedEvent


class _Source:
    """One stream's ordered consumer, read one message at a time."""

    def __init__(
        self, sub: JetStreamContext.PushSubscription, decoder: msgspec.json.Decoder[Any]
    ) -> None:
        self.sub = sub
        self.decoder = decoder
        self.caught_up = False
        self.head: tuple[int, WatchedEvent] | None = None  # read, not yet handed on
        self.last_seq = 0
        self.ask: asyncio.Future[Msg] | None = None

    async def backlog(self) -> None:
        """Whether there is any history to read (else it is caught up at once)."""
        try:
            info = await self.sub.consumer_info()
        except Exception:  # unknown: read until a message says nothing is pending
            return
        delivered = info.delivered.consumer_seq if info.delivered else 0
        self.caught_up = not (info.num_pending or delivered)

    def asking(self) -> asyncio.Future[Msg]:
        if self.ask is None:
            self.ask = asyncio.ensure_future(self.sub.next_msg(timeout=None))  # type: ignore[arg-type]
            self.ask.add_done_callback(_retrieved)
        return self.ask

    def take(self, msg: Msg) -> tuple[int, WatchedEvent] | None:
        """The message decoded (None when it does not decode), and whether more is pending."""
        self.ask = None
        meta = msg.metadata
        seq = meta.sequence.stream if meta else self.last_seq
        self.last_seq = max(self.last_seq, seq)
        if meta is not None and meta.num_pending == 0:
            self.caught_up = True
        try:
            return seq, self.decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("undecodable event on %s", msg.subject)
            return None

    async def read_one(self, timeout: float) -> tuple[int, WatchedEvent] | None:
        """The next decodable message within ``timeout``; None when none came (then it is
        taken as caught up: the server's count was stale)."""
        while True:
            try:
                msg = await asyncio.wait_for(asyncio.shield(self.asking()), timeout)
            except TimeoutError:
                self.caught_up = True
                return None
            got = self.take(msg)
            if got is not None:
                return got
            if self.caught_up:
                return None

    async def rest(self, stopped: asyncio.Event) -> AsyncIterator[tuple[int, WatchedEvent]]:
        """What the stream holds beyond what was read, up to now."""
        try:
            info = await self.sub.consumer_info()
        except Exception:
            return
        target = info.delivered.stream_seq if info.delivered else 0
        self.caught_up = not info.num_pending and self.last_seq >= target
        while not stopped.is_set() and not (self.caught_up and self.last_seq >= target):
            got = await self.read_one(CATCH_UP_S)
            if got is None:
                return
            yield got

    def close(self) -> None:
        if self.ask is not None:
            self.ask.cancel()


async def run_stream(
    bus: Bus,
    run_id: str,
    *,
    agent: bool = False,
    after: Position | None = None,
    follow: bool = True,
    stop: asyncio.Event | None = None,
    keepalive_s: float | None = None,
) -> AsyncIterator[Streamed | None]:
    """The run's events (and with ``agent`` its agents' events) from the start, or after
    ``after``; then live ones while ``follow``. Yields None after each ``keepalive_s``
    without an event (while following)."""
    start = after or Position()
    stopped = stop or asyncio.Event()
    sources: dict[str, _Source] = {}
    try:
        sources["events"] = _Source(
            await _subscribe(bus, t.EVT_STREAM, t.run_events_filter(run_id), start.events),
            s.event_decoder,
        )
        if agent:
            sources["agent"] = _Source(
                await _subscribe(bus, t.AGENT_STREAM, t.agent_events_filter(run_id), start.agent),
                s.agent_event_decoder,
            )
        for source in sources.values():
            await source.backlog()
        position = start
        ended = False
        # the history: both streams merged by timestamp
        async for name, seq, event in _history(sources, stopped):
            position = _advance(position, name, seq)
            yield Streamed(position, event)
            ended = ended or isinstance(event, s.RunFinished)
        if ended or not follow:
            return
        # live: as the events arrive
        async for item in _live(sources, stopped, keepalive_s):
            if item is None:
                yield None
                continue
            name, seq, event = item
            position = _advance(position, name, seq)
            yield Streamed(position, event)
            if isinstance(event, s.RunFinished):
                break
        else:
            return
        # the agents' events published before the end, not read yet
        if "agent" in sources:
            async for seq, event in sources["agent"].rest(stopped):
                position = _advance(position, "agent", seq)
                yield Streamed(position, event)
    finally:
        for source in sources.values():
            source.close()
            # no await here: a stream closed by a client that left is cancelled, and every
            # await of a cancelled stream is cancelled again (anyio), so cleanup runs apart
            release_later(bus.js, source.sub)


def _retrieved(future: asyncio.Future[Msg]) -> None:
    if not future.cancelled():
        future.exception()  # a read nobody waits for any more (the stream closed) is no error


def _advance(position: Position, name: str, seq: int) -> Position:
    if name == "agent":
        return Position(position.events, max(position.agent, seq))
    return Position(max(position.events, seq), position.agent)


async def _history(
    sources: dict[str, _Source], stopped: asyncio.Event
) -> AsyncIterator[tuple[str, int, WatchedEvent]]:
    while not stopped.is_set():
        for source in sources.values():
            while source.head is None and not source.caught_up:
                source.head = await source.read_one(CATCH_UP_S)
        ready = [(name, src) for name, src in sources.items() if src.head is not None]
        if not ready:
            return
        name, source = min(ready, key=lambda item: item[1].head[1].ts)  # type: ignore[index]
        assert source.head is not None
        seq, event = source.head
        source.head = None
        yield name, seq, event


async def _live(
    sources: dict[str, _Source], stopped: asyncio.Event, keepalive_s: float | None
) -> AsyncIterator[tuple[str, int, WatchedEvent] | None]:
    """Events as they arrive, and None after each ``keepalive_s`` without one."""
    halt = asyncio.ensure_future(stopped.wait())
    try:
        while not stopped.is_set():
            asks = {source.asking(): name for name, source in sources.items()}
            done, _ = await asyncio.wait(
                {*asks, halt}, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED
            )
            if halt in done:
                return
            if not done:
                yield None
                continue
            for ask in done:
                name = asks[ask]
                try:
                    msg = ask.result()
                except (NatsTimeoutError, asyncio.CancelledError):
                    sources[name].ask = None
                    continue
                got = sources[name].take(msg)
                if got is not None:
                    yield name, got[0], got[1]
    finally:
        halt.cancel()


async def _subscribe(
    bus: Bus, stream: str, subject_filter: str, after: int
) -> JetStreamContext.PushSubscription:
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
        opt_start_seq=after + 1 if after else None,
    )
    return await bus.js.subscribe(
        subject_filter,
        stream=stream,
        config=config,
        ordered_consumer=True,
        inactive_threshold=CONSUMER_IDLE_S,
    )
