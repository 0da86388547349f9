"""`baro resume RUN`: continue a run whose baro process stopped before it finished.

A local run belongs to the ``baro run`` that started it. When that process dies (killed,
machine restarted), the run is interrupted: it is parked on this machine's store, no other
command drives it, and ``baro run`` in the same repository says so. ``baro resume`` makes
this process its owner and follows it like ``baro run`` does: stories already integrated
stay, stories that were running start again as a new attempt, an integration or delivery
that was under way is asked again (the merger finds what it had done). When ``baro up``
serves this machine's store, the run is handed to it instead.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from baro_cli import runflow, watching
from baro_cli.app import (
    app,
    embedded_url,
    fail,
    load_settings,
    setup_logging,
    with_local_credentials,
)
from baro_cli.commands.cluster import RunArg, answerer_for, picker_for, run_id_arg
from baro_cli.stack import EmbeddedStore, LocalStack, StoreHeld
from baro_cli.validate import UserError
from baro_shared import schemas as s
from baro_shared.bus import Bus, BusUnavailable, bus_problem
from baro_shared.processes import current_owner, describe_owner, interruption
from baro_shared.settings import Settings

COMMAND = "baro resume"


@app.command()
def resume(
    run_id: RunArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final summary as one JSON object.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    events: watching.EventsOption = False,
) -> None:
    """Continue an interrupted run (baro runs lists them): integrated stories stay, running
    ones start again as a new attempt."""
    settings = load_settings()
    setup_logging(settings, quiet=True)
    shown = watching.Shown(quiet=quiet, as_json=as_json, events=events)
    try:
        rid = run_id_arg(run_id)
        report = asyncio.run(resume_run(settings, rid, shown))
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    except StoreHeld as exc:
        raise fail(f"{exc}: resume {run_id.strip()} when it has finished") from None
    except BusUnavailable as exc:
        raise fail(bus_problem(exc, "is baro up still starting?")) from None
    shown.summary(report)
    raise typer.Exit(runflow.exit_code(report))


async def resume_run(settings: Settings, run_id: str, shown: watching.Shown) -> runflow.RunReport:
    interrupt = runflow.install_interrupt(asyncio.get_running_loop())
    holder = EmbeddedStore(settings).holder()
    if holder is not None:
        url = embedded_url(settings)
        if holder.command != "baro up" or not holder.baro_alive or url is None:
            raise StoreHeld(holder)
        # baro up serves the store: the run becomes the cluster's, driven by baro up
        served = with_local_credentials(settings.model_copy(update={"nats_url": url}))
        return await _resume_on(served, run_id, None, shown, interrupt)
    async with LocalStack(settings, command=COMMAND, require_store=True) as live:
        return await _resume_on(live, run_id, current_owner(COMMAND), shown, interrupt)


async def _resume_on(
    settings: Settings,
    run_id: str,
    owner: s.RunOwner | None,
    shown: watching.Shown,
    interrupt: asyncio.Event,
) -> runflow.RunReport:
    progress = shown.progress
    bus = await Bus.open(settings, "baro-resume", ensure=False)
    try:
        got = await bus.get_record(run_id)
        if got is None:
            raise UserError(f"no run {run_id!r} on this machine: baro runs lists the runs here")
        record = got[0]
        if record.state in s.TERMINAL_RUN_STATES:
            raise UserError(f"run {run_id} already finished ({record.state}): nothing to resume", 1)
        found = interruption(record)
        if found is None:
            raise UserError(
                f"run {run_id} is not interrupted: it is {record.state}, driven by "
                f"{describe_owner(record.owner)} (baro watch {run_id} follows it)",
                1,
            )
        resumed = s.RunResumed(run_id=run_id, owner=owner)
        progress.line(f"resuming run {run_id} ({found.reason})")
        # the conductor resumes a parked run once, whoever asks first; the id is this
        # process's, so a resume asked by a process that died before it was applied does
        # not shadow this one
        await bus.publish(resumed, f"{run_id}.resume.{record.resumes + 1}.{os.getpid()}")
        report = await runflow.follow(
            bus,
            record.request,
            progress,
            picker_for(record),
            answerer=answerer_for(record),
            interrupt=interrupt,
            quiet_before=resumed.ts,
            watchers=shown.watchers,
        )
        if owner is not None:  # this process runs the services: they stop when it returns
            await runflow.keep_attempts_before_stopping(bus, report, interrupt)
        return report
    finally:
        await bus.close()
