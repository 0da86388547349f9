"""`baro cancel RUN`: stop dispatching, stop the run's agents, keep everything inspectable.

The conductor marks the run and its unfinished stories cancelled (so nothing new is
dispatched); runners stop the agents of a cancelled run (a broadcast, and their own
look at the run record); each stopped attempt still reports, and its commits are kept
under ``refs/baro/<run>/<story>/<attempt>`` like every other attempt. The run record and
its events stay on the bus.

A run interrupted on this machine (its ``baro run`` died) is on this machine's store, which
no server may be serving: then the conductor and the merger run here for the time of the
cancel, so it is recorded and the run's attempts are kept all the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from nats.errors import Error as NatsError

from baro_cli import localstore, runflow
from baro_cli.app import app, cluster_settings, embedded_url, fail
from baro_cli.commands.cluster import LOCAL_HANDOVER_S
from baro_cli.stack import SERVICES, EmbeddedStore, LocalStack, StoreHeld
from baro_cli.validate import UserError
from baro_shared import schemas as s
from baro_shared.bus import Bus, BusUnavailable, bus_problem
from baro_shared.processes import interruption
from baro_shared.settings import Settings

POLL_S = 0.2
LOCAL_READ_S = 3.0  # one read from a local baro's server; longer means it is going away


@dataclass
class CancelReport:
    run_id: str
    state: str
    previous_state: str
    stories: list[dict[str, Any]] = field(default_factory=list)
    agents_stopped: list[str] = field(default_factory=list)
    agents_stopping: list[str] = field(default_factory=list)
    refs: str = ""
    repository: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run's id (printed at submit).")],
    nats_url: Annotated[
        str | None,
        typer.Option(help="NATS of the run (default: BARO_NATS_URL, else this machine's baro)."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Recorded on the run.")] = "cancelled by user",
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for running agents to stop.")
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Cancel a run: no more stories start, running agents stop, every attempt is kept."""
    settings = cluster_settings(nats_url)
    unserved = (
        nats_url is None
        and "BARO_NATS_URL" not in os.environ
        and embedded_url(settings) is None
        and EmbeddedStore(settings).lock_path.exists()
    )
    # a local `baro run` stops its server once the cancel has ended its run
    local_url = (
        settings.nats_url
        if nats_url is None and "BARO_NATS_URL" not in os.environ and not unserved
        and embedded_url(settings) == settings.nats_url
        else None
    )  # fmt: skip
    try:
        if unserved:
            report = asyncio.run(cancel_on_this_machine(settings, run_id.strip(), reason, wait))
        else:
            report = asyncio.run(
                cancel_run(settings, run_id.strip(), reason, wait, local_url=local_url)
            )
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    except StoreHeld as exc:
        raise fail(f"{exc}: try again, or pass --nats-url with the run's NATS") from None
    except BusUnavailable as exc:
        raise fail(bus_problem(exc, "pass --nats-url with the NATS the run is on"), 2) from None
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        render(report, sys.stdout)
    raise typer.Exit(0 if report.state == "cancelled" else 1)


async def cancel_run(
    settings: Settings, run_id: str, reason: str, wait: float, *, local_url: str | None = None
) -> CancelReport:
    if not run_id:
        raise UserError("the run id is empty: pass the id baro printed when the run started")
    try:
        bus = await Bus.open(settings, "baro-cancel", ensure=False)
    except BusUnavailable:
        raise
    except Exception:
        raise UserError(
            f"NATS at {settings.nats_url} holds no baro runs: pass --nats-url with the run's NATS"
        ) from None
    try:
        return await _cancel(bus, settings, run_id, reason, wait, local_url=local_url)
    finally:
        await bus.close()


async def cancel_on_this_machine(
    settings: Settings, run_id: str, reason: str, wait: float
) -> CancelReport:
    """Cancel a run on this machine's store while no server serves it."""
    if not run_id:
        raise UserError("the run id is empty: pass the id baro printed when the run started")
    services = {name: SERVICES[name] for name in ("conductor", "merger")}
    stack = LocalStack(settings, services=services, command="baro cancel", require_store=True)
    async with stack as live:
        bus = await Bus.open(live, "baro-cancel", ensure=False)
        try:
            report = await _cancel(bus, live, run_id, reason, wait, where="this machine")
            await runflow.until_attempts_kept(bus, run_id, time.monotonic() + max(wait, 5.0))
            return report
        finally:
            await bus.close()


async def _cancel(
    bus: Bus,
    settings: Settings,
    run_id: str,
    reason: str,
    wait: float,
    where: str = "",
    *,
    local_url: str | None = None,
) -> CancelReport:
    got = await bus.get_record(run_id)
    if got is None:
        raise UserError(
            f"no run {run_id!r} on {where or f'NATS at {settings.nats_url}'}: check the id "
            "(baro prints it when the run starts)"
        )
    before = got[0]
    if before.state in s.TERMINAL_RUN_STATES:
        raise UserError(f"run {run_id} already finished ({before.state}): nothing to cancel", 1)
    # an interrupted run's agents died with its baro process: there is none to wait for
    with_agents = (
        {}
        if interruption(before) is not None
        else {st.story.id: st.attempt for st in before.stories if st.status == "running"}
    )
    await runflow.cancel(bus, run_id, reason)
    reader = _RecordReader(bus, settings, local_url)
    deadline = time.monotonic() + max(wait, 5.0)
    record = await _until(reader, run_id, deadline, lambda r: r.state in s.TERMINAL_RUN_STATES)
    if record is None or record.state not in s.TERMINAL_RUN_STATES:
        raise UserError(
            f"cancel of run {run_id} requested, but the conductor did not confirm it in time: "
            "is the conductor running?",
            1,
        )
    agent_deadline = time.monotonic() + wait
    final = await _until(
        reader,
        run_id,
        agent_deadline,
        lambda r: reader.owner_gone or not runflow.agents_still_running(r, with_agents),
    )
    record = final or record
    # a stopped local `baro run` took its runners and their agents with it
    stopping = (
        [] if reader.owner_gone else sorted(runflow.agents_still_running(record, with_agents))
    )
    repo = record.request.repo
    return CancelReport(
        run_id=run_id,
        state=record.state,
        previous_state=before.state,
        stories=[
            {"id": st.story.id, "status": st.status, "reason": st.reason} for st in record.stories
        ],
        agents_stopped=sorted(set(with_agents) - set(stopping)),
        agents_stopping=stopping,
        refs=f"refs/baro/{run_id}/",
        repository=repo.location if repo.kind == "path" else None,
    )


class _RecordReader:
    """Reads the run record. A run owned by a local ``baro run`` ends when the cancel is
    recorded, and that process stops its server then: the record is read on from the store
    it leaves (nothing changes it any more), instead of asking a server that is gone."""

    def __init__(self, bus: Bus, settings: Settings, local_url: str | None) -> None:
        self.bus = bus
        self.settings = settings
        self.local_url = local_url
        self._left: s.RunRecord | None = None
        self.owner_gone = False

    async def get(self, run_id: str) -> s.RunRecord | None:
        if self._left is not None:
            return self._left
        if self.local_url is None:
            got = await self.bus.get_record(run_id)
            return got[0] if got else None
        if embedded_url(self.settings) != self.local_url:  # its baro has stopped
            async with localstore.served(self.settings, wait_s=LOCAL_HANDOVER_S) as local:
                bus = await Bus.open(local, "baro-cancel", ensure=False)
                try:
                    got = await bus.get_record(run_id)
                finally:
                    await bus.close()
            self._left = got[0] if got else None
            self.owner_gone = True
            return self._left
        try:
            got = await asyncio.wait_for(self.bus.get_record(run_id), LOCAL_READ_S)
        except (NatsError, OSError, TimeoutError):
            return None  # stopping: the next read goes to the store
        return got[0] if got else None


async def _until(
    reader: _RecordReader, run_id: str, deadline: float, done: Callable[[s.RunRecord], bool]
) -> s.RunRecord | None:
    record = None
    while True:
        record = await reader.get(run_id) or record
        if record is not None and done(record):
            return record
        if time.monotonic() >= deadline:
            return record
        await asyncio.sleep(POLL_S)


def render(report: CancelReport, out: TextIO) -> None:
    w = out.write
    w(f"run {report.run_id}: {report.state} (was {report.previous_state})\n")
    for st in report.stories:
        w(f"  {st['id']}: {st['status']}\n")
    if report.agents_stopped:
        w(f"agents stopped: {', '.join(report.agents_stopped)}\n")
    if report.agents_stopping:
        w(f"agents still stopping: {', '.join(report.agents_stopping)}\n")
    where = f" in {Path(report.repository)}" if report.repository else ""
    w(f"every attempt's commits are kept under {report.refs}{where}\n")
