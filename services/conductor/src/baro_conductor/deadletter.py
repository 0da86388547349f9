"""Commands the bus gave up on become visible failures, never silent losses.

JetStream publishes a max-deliveries advisory when a command has been delivered
``max_deliver`` times without an ack; the BARO_DLQ stream captures it. This handler reads
the original command back (on a work-queue stream it stays in place, skipped by the
consumer), publishes ``CommandDeadLettered`` for its run, and removes it from BARO_CMD.
Terminated messages (poison) are recorded by the service that terminated them.
"""

from __future__ import annotations

import contextlib
import logging

import msgspec
from nats.js.errors import NotFoundError

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import ACK, Bus, Delivery, Outcome, Worker, gave_up

log = logging.getLogger(__name__)

MAX_DELIVER_ADVISORY = "io.nats.jetstream.advisory.v1.max_deliver"


class DlqEntry(msgspec.Struct, kw_only=True):
    """Anything on BARO_DLQ: JetStream advisories and baro's own poison records."""

    type: str = ""
    stream: str = ""
    consumer: str = ""
    stream_seq: int = 0
    deliveries: int = 0


class DeadLetters:
    name = "conductor-dlq"

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.worker = Worker(
            bus,
            t.DLQ_CONSUMER,
            msgspec.json.Decoder(DlqEntry),
            self.handle,
            slots=4,
            heartbeat_s=10.0,
            service=self.name,
        )

    async def handle(self, delivery: Delivery[DlqEntry]) -> Outcome:
        entry = delivery.message
        if entry.type != MAX_DELIVER_ADVISORY or entry.stream != t.CMD_STREAM:
            return ACK
        try:
            raw = await self.bus.js.get_msg(t.CMD_STREAM, entry.stream_seq)
        except NotFoundError:
            return ACK  # already handled (the advisory was redelivered)
        try:
            command = s.command_decoder.decode(raw.data or b"")
        except msgspec.DecodeError:
            command = None
        if command is not None:
            await self.bus.publish(
                dead_lettered(command, entry), f"{command.run_id}.dlq.{entry.stream_seq}"
            )
        with contextlib.suppress(NotFoundError):
            await self.bus.js.delete_msg(t.CMD_STREAM, entry.stream_seq)
        log.error(
            "%s gave up on %s after %d deliveries",
            entry.consumer,
            type(command).__name__ if command else f"message {entry.stream_seq}",
            entry.deliveries,
        )
        return ACK


def dead_lettered(command: s.Command, entry: DlqEntry) -> s.CommandDeadLettered:
    tag = str(command.__struct_config__.tag)
    reason = f"the {entry.consumer} service gave up on {tag} after {entry.deliveries} deliveries"
    return gave_up(command, entry.deliveries, reason)
