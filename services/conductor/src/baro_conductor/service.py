"""The conductor's bus handler: events in, run record (KV, CAS) and commands out.

Per event: read the record, publish any outbox left by a crashed predecessor, apply the
pure transition, write the new record (with the messages it decided as its outbox) only
if the revision is unchanged, publish the outbox with deterministic Nats-Msg-Ids, clear
it, ack. Events of one run are handled one at a time, in delivery order. The record this
process wrote last is kept, and read again when a write at its revision loses (only
conductors write records: another conductor, or a record deleted meanwhile) or when the
event changes nothing on it (a copy out of date must not drop an event).

A run waiting for answers to its questions is cancelled once it has waited longer than
``BARO_ANSWER_TIMEOUT_S``: the handler notes which runs wait (the core cannot keep time)
and publishes their ``CancelRequested``, which the core then applies like any other.

Before that, a run whose owning process is gone is parked: the handler applies
``RunInterrupted`` first (deciding that needs a look at the machine's processes, which the
pure core cannot take), and its outbox is published only without the commands that would
move the run forward.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from baro_conductor import core, history, observe
from baro_conductor.deadletter import DeadLetters
from baro_conductor.remember import remember_run
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import ACK, Bus, Delivery, Nak, Outcome, Worker
from baro_shared.processes import describe_owner, owner_gone
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

MAX_CAS_ROUNDS = 20


class Conductor:
    name = "conductor"

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._waiters: defaultdict[str, int] = defaultdict(int)
        self.worker = Worker(
            bus,
            t.CONDUCTOR_CONSUMER,
            s.event_decoder,
            self.handle,
            slots=256,
            heartbeat_s=10.0,
            service=self.name,
        )
        self.dead_letters = DeadLetters(bus)
        self._awaiting: set[str] = set()  # runs waiting for answers to their questions
        # run id -> the record this process wrote last and its revision, for a run not
        # finished: the next event of the run starts from it instead of reading it back
        self._written: dict[str, tuple[s.RunRecord, int]] = {}

    def ready(self) -> bool:
        return self.bus.nc.is_connected and self.worker.ready.is_set()

    def stop(self) -> None:
        self.worker.stop()
        self.dead_letters.worker.stop()

    async def run(self) -> None:
        await self.recover()
        sweeper = asyncio.create_task(self.cancel_unanswered())
        try:
            await asyncio.gather(self.worker.run(), self.dead_letters.worker.run())
        finally:
            sweeper.cancel()

    async def cancel_unanswered(self) -> None:
        """Cancel the runs whose questions went unanswered past the timeout."""
        timeout = self.settings.answer_timeout_s
        while True:
            await asyncio.sleep(min(30.0, max(0.5, timeout / 4)))
            for run_id in list(self._awaiting):
                try:
                    got = await self.bus.get_record(run_id)
                    cancel = core.unanswered(got[0], time.time(), timeout) if got else None
                    if got is None or got[0].state != "awaiting_answers":
                        self._awaiting.discard(run_id)
                    elif cancel is not None:
                        await self.bus.publish(cancel, f"{run_id}.unanswered")
                except Exception as exc:  # the next round tries again
                    log.warning("could not check run %s for answers: %s", run_id, exc)

    async def recover(self) -> None:
        """Park runs whose owner is gone; publish what a crashed conductor decided but did
        not get out."""
        records = await self.bus.list_records()
        observe.active_runs(records)
        for record in records:
            self.note_waiting(record)
            if abandoned(record):
                await self.apply(interruption_of(record))
            elif record.outbox:
                got = await self.bus.get_record(record.run_id)
                if got:
                    await self.flush(*got)

    async def handle(self, delivery: Delivery[s.Event]) -> Outcome:
        if not core.handles(delivery.message):
            return ACK  # an event nothing here acts on: no need to read the record for it
        run_id = delivery.message.run_id
        self._waiters[run_id] += 1
        try:
            async with self._locks[run_id]:
                return await self.apply(delivery.message)
        finally:
            self._waiters[run_id] -= 1
            if not self._waiters[run_id]:
                del self._waiters[run_id]
                self._locks.pop(run_id, None)

    async def apply(self, event: s.Event) -> Outcome:
        for _ in range(MAX_CAS_ROUNDS):
            kept = self._written.pop(event.run_id, None)
            got = kept or await self.bus.get_record(event.run_id)
            record, revision = got if got else (None, 0)
            step = event
            if record is not None and abandoned(record):
                step = interruption_of(record)  # park it first, then apply the event
            elif record is not None and record.outbox:
                await self.flush(record, revision)
                continue
            transition = core.apply(record, step, time.time())
            if transition is None and kept is not None:
                continue  # nothing to do on the record kept: decided again on the stored one
            if transition is None:
                return ACK
            new = transition.record
            new.outbox = [s.OutboxItem(msg_id=mid, message=msg) for mid, msg in transition.emit]
            if record is None:
                written = await self.bus.create_record(new)
            else:
                written = await self.bus.cas_record(new, revision)
            if written is None:
                continue
            observe.transition(record, new, step)
            self.note_waiting(new)
            if abandoned(new):
                continue  # a run submitted by a process already gone: park it before it sends
            await self.flush(new, written)
            if history.became_final(record, new):
                await self.remember(new)
            if step is not event:
                continue
            return ACK
        return Nak(1.0, "too many concurrent writers")

    def note_waiting(self, record: s.RunRecord) -> None:
        if record.state == "awaiting_answers":
            self._awaiting.add(record.run_id)
        else:
            self._awaiting.discard(record.run_id)

    async def remember(self, record: s.RunRecord) -> None:
        """Add a finished run to its repository's history (the intake's estimates)."""
        try:
            await remember_run(self.bus.history, record)
        except Exception as exc:  # the run is final either way; only an estimate is lost
            log.warning("could not record run %s in the history: %s", record.run_id, exc)

    async def flush(self, record: s.RunRecord, revision: int) -> None:
        for item in record.outbox:
            await self.bus.publish(item.message, item.msg_id)
        record.outbox = []
        # if this loses, the winner flushed too (and the record is read again next time)
        written = await self.bus.cas_record(record, revision)
        if written is not None and record.state not in s.TERMINAL_RUN_STATES:
            self._written[record.run_id] = (record, written)


def abandoned(record: s.RunRecord) -> bool:
    """Not finished, not parked yet, and its owning process is gone."""
    return (
        record.interrupted is None
        and record.state not in s.TERMINAL_RUN_STATES
        and owner_gone(record.owner)
    )


def interruption_of(record: s.RunRecord) -> s.RunInterrupted:
    return s.RunInterrupted(
        run_id=record.run_id,
        reason=f"{describe_owner(record.owner)} stopped before the run finished",
        owner=record.owner,
    )


async def create(bus: Bus, settings: Settings) -> Conductor:
    return Conductor(bus, settings)
