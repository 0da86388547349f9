"""What the API does on the bus: read run records, submit, confirm, cancel, stream events.

Submitting a run is publishing RunSubmitted, as the CLI does; the conductor creates the
record. Only the conductor writes records, so confirming and cancelling are events too.
Every message id is the one the CLI uses for the same act, so an API call and a CLI
command racing for the same run are deduplicated by the server: the first one wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from baro_intake.api_views import pending_record
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
CONSUMER_IDLE_S = 60.0  # an event stream's consumer outlives a vanished client this long


class Conflict(Exception):
    """The run is not in a state that allows the request (HTTP 409)."""


async def lookup(bus: Bus, run_id: str) -> s.RunRecord | None:
    """The run's record, or the record it will get when only its RunSubmitted exists."""
    got = await bus.get_record(run_id)
    if got is not None:
        return got[0]
    submitted = await submitted_event(bus, run_id)
    return pending_record(submitted) if submitted is not None else None


async def submitted_event(bus: Bus, run_id: str) -> s.RunSubmitted | None:
    try:
        raw = await bus.js.get_last_msg(t.EVT_STREAM, t.evt_subject(run_id, "submitted"))
    except NotFoundError:
        return None
    if raw.data is None:
        return None
    try:
        event = s.event_decoder.decode(raw.data)
    except msgspec.DecodeError:
        return None
    return event if isinstance(event, s.RunSubmitted) else None


async def list_runs(bus: Bus, state: str | None, limit: int) -> list[s.RunRecord]:
    records = await bus.list_records()
    if state is not None:
        records = [r for r in records if r.state == state]
    records.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    return records[:limit]


async def submit(bus: Bus, request: s.RunSubmitted) -> None:
    await bus.publish(request, f"{request.run_id}.submitted")


async def bundle_exists(bus: Bus, name: str) -> bool:
    try:
        info = await bus.objects.get_info(name)
    except NotFoundError:
        return False
    return not info.deleted


@dataclass(frozen=True)
class Confirmed:
    mode: s.Mode
    source: s.ConfirmSource


async def confirm_mode(bus: Bus, rec: s.RunRecord, mode: s.Mode | None) -> Confirmed:
    """Confirm intake's suggestion (``mode`` None or equal to it) or override it."""
    if rec.state != "awaiting_confirmation" or rec.decision is None:
        raise Conflict(
            f"run {rec.run_id} is {rec.state}, not awaiting_confirmation: only a run "
            "submitted with confirm 'picker' waits for its mode, until it is confirmed"
        )
    chosen = mode or rec.decision.mode
    source: s.ConfirmSource = "intake" if chosen == rec.decision.mode else "user"
    decided_by: s.DecisionSource = rec.decision.source if source == "intake" else "user"
    fresh = await bus.publish(
        s.ModeConfirmed(run_id=rec.run_id, mode=chosen, source=source, decided_by=decided_by),
        f"{rec.run_id}.mode",
    )
    if not fresh:
        raise Conflict(f"the mode of run {rec.run_id} was already confirmed")
    return Confirmed(chosen, source)


async def cancel(bus: Bus, rec: s.RunRecord, reason: str) -> None:
    if rec.state in s.TERMINAL_RUN_STATES:
        raise Conflict(f"run {rec.run_id} is already {rec.state}: there is nothing to cancel")
    await bus.publish(s.CancelRequested(run_id=rec.run_id, reason=reason), f"{rec.run_id}.cancel")
    with contextlib.suppress(Exception):  # runners also see it on the record; this is faster
        await bus.nc.publish(t.cancel_subject(rec.run_id), b"")
        await bus.nc.flush()


@dataclass(frozen=True)
class StreamedEvent:
    seq: int  # stream sequence: the SSE id, and where a reconnecting client resumes
    event: s.Event


async def run_events(
    bus: Bus,
    run_id: str,
    *,
    after: int = 0,
    follow: bool = True,
    stop: asyncio.Event | None = None,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[StreamedEvent | None]:
    """The run's events in stream order, from the start (or after stream sequence ``after``).

    Yields None every ``keepalive_s`` without an event while following. Ends after
    RunFinished, when ``stop`` is set, or (``follow`` False) when the history is read.
    """
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
        opt_start_seq=after + 1 if after else None,
    )
    sub = await bus.js.subscribe(
        t.run_events_filter(run_id),
        stream=t.EVT_STREAM,
        config=config,
        ordered_consumer=True,
        inactive_threshold=CONSUMER_IDLE_S,
    )
    stopped = stop or asyncio.Event()
    try:
        while not stopped.is_set():
            msg = await _next(sub, keepalive_s if follow else 2.0, stopped)
            if msg is None:
                if not follow or stopped.is_set():
                    return
                yield None  # keepalive
                continue
            seq = msg.metadata.sequence.stream if msg.metadata else 0
            try:
                event = s.event_decoder.decode(msg.data)
            except msgspec.DecodeError:
                log.warning("undecodable event on %s", msg.subject)
                continue
            yield StreamedEvent(seq, event)
            if isinstance(event, s.RunFinished):
                return
            if not follow and msg.metadata and msg.metadata.num_pending == 0:
                return
    finally:
        # no await here: a stream closed by a client that left is cancelled, and every
        # await of a cancelled stream is cancelled again (anyio), so cleanup runs apart
        _in_background(_drop(bus, sub))


_background: set[asyncio.Task[None]] = set()


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _drop(bus: Bus, sub: JetStreamContext.PushSubscription) -> None:
    """Unsubscribe and delete the stream's consumer now (else the server keeps it until it
    has been idle for CONSUMER_IDLE_S)."""
    with contextlib.suppress(Exception):
        name = (await sub.consumer_info()).name
        await sub.unsubscribe()
        await bus.js.delete_consumer(t.EVT_STREAM, name)
    with contextlib.suppress(Exception):
        await sub.unsubscribe()


def _retrieved(future: asyncio.Future[Msg]) -> None:
    if not future.cancelled():
        future.exception()  # a timeout nobody waits for any more is not an error


async def _next(
    sub: JetStreamContext.PushSubscription, timeout: float, stop: asyncio.Event
) -> Msg | None:
    nxt = asyncio.ensure_future(sub.next_msg(timeout=timeout))
    nxt.add_done_callback(_retrieved)
    halt = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({nxt, halt}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.cancel()
        if not nxt.done():
            nxt.cancel()
    if nxt not in done:
        return None
    try:
        return nxt.result()
    except NatsTimeoutError:
        return None
