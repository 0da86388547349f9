"""`baro dlq`: what the bus could not process — poison messages and dead-lettered commands."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import msgspec
import nats.errors
import typer

from baro_cli.app import app, fail, load_settings
from baro_cli.terminal import printable
from baro_shared import topology as t
from baro_shared.bus import Bus, BusUnavailable, bus_problem
from baro_shared.settings import Settings


class DlqRecord(msgspec.Struct, kw_only=True):
    type: str = ""
    service: str = ""
    subject: str = ""
    reason: str = ""
    payload: str = ""
    stream_seq: int = 0
    consumer: str = ""
    deliveries: int = 0
    ts: float | None = None


@app.command()
def dlq(
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: BARO_NATS_URL).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entry.")] = False,
    limit: Annotated[
        int, typer.Option(min=1, help="Show at most this many of the newest entries.")
    ] = 50,
) -> None:
    """List poison messages and commands the bus gave up on (kept on the BARO_DLQ stream)."""
    settings = load_settings(nats_url)
    try:
        entries = asyncio.run(_read(settings, limit))
    except BusUnavailable as exc:
        raise fail(bus_problem(exc, "is the baro stack running? pass --nats-url")) from None
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(msgspec.to_builtins(entry)))
        return
    if not entries:
        typer.echo("nothing dead-lettered")
        return
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts)) if e.ts else "-"
        if e.type == "dlq.poison":
            typer.echo(
                f"{when}  poison  {e.service:<13} {e.subject}: {printable(e.reason)}  "
                f"payload={e.payload[:80]!r}"
            )
        elif e.type.endswith("max_deliver"):
            typer.echo(
                f"{when}  gave up {e.consumer:<13} message {e.stream_seq} after {e.deliveries} deliveries"
            )
        else:
            typer.echo(
                f"{when}  {e.type.rsplit('.', 1)[-1]:<7} {e.consumer:<13} message {e.stream_seq}"
            )


async def _read(settings: Settings, limit: int) -> list[DlqRecord]:
    bus = await Bus.open(settings, "baro-cli-dlq", ensure=False)
    entries: list[DlqRecord] = []
    try:
        info = await bus.js.stream_info(t.DLQ_STREAM)
        first = max(info.state.first_seq, info.state.last_seq - limit + 1)
        for seq in range(first, info.state.last_seq + 1):
            try:
                raw = await bus.js.get_msg(t.DLQ_STREAM, seq)
            except nats.js.errors.NotFoundError:
                continue
            try:
                entry = msgspec.json.decode(raw.data or b"{}", type=DlqRecord)
            except msgspec.DecodeError:
                continue
            entries.append(entry)
    finally:
        await bus.close()
    return entries
