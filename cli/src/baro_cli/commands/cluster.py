"""`baro runs`, `baro status RUN`, `baro watch RUN`: the runs on a cluster's NATS.

Which NATS: ``--nats-url``, else ``BARO_NATS_URL``, else the embedded server of a
``baro run``/``baro up`` running on this machine; ``runs``, ``status`` and ``watch`` read
this machine's store themselves when none is running (``localstore``). These commands only read
the bus (and, for ``watch``, answer the mode picker of a run waiting for it); they never
start services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TextIO, TypeVar

import typer
from nats.errors import ConnectionClosedError
from nats.errors import Error as NatsError

from baro_cli import localstore, runflow, watching
from baro_cli.app import app, cluster_settings, embedded_url, fail
from baro_cli.questions import Answerer, TerminalAnswers
from baro_cli.terminal import printable, safe
from baro_cli.validate import UserError
from baro_intake import api_runs, api_views
from baro_intake.api_models import RunDetail
from baro_shared import schemas as s
from baro_shared.bus import Bus, BusUnavailable, bus_problem
from baro_shared.processes import with_interruption
from baro_shared.runids import is_run_id
from baro_shared.settings import Settings
from baro_shared.totals import dollars

T = TypeVar("T")

LOCAL_HANDOVER_S = 30.0  # a local baro stopping its server lets go of the store by then

NatsUrl = Annotated[
    str | None,
    typer.Option(help="The cluster's NATS (default: BARO_NATS_URL, else this machine's baro)."),
]
INTERRUPTED = "interrupted"
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="The run's id (printed at submit).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


async def open_cluster(settings: Settings, name: str) -> Bus:
    try:
        return await Bus.open(settings, name, ensure=False)
    except BusUnavailable:
        raise
    except Exception:
        raise UserError(
            f"NATS at {settings.nats_url} holds no baro runs (no baro streams there): "
            "pass --nats-url with the cluster's NATS"
        ) from None


def run_id_arg(text: str) -> str:
    run_id = text.strip()
    if not is_run_id(run_id):
        raise UserError(
            f"{text!r} is not a run id: pass the id baro printed at submit (see baro runs)"
        )
    return run_id


def on_cluster(
    settings: Settings,
    work: Callable[[Bus], Awaitable[T]],
    *,
    this_machine: bool = False,
    then_this_machine: bool = False,
) -> T:
    """Run ``work`` with a connection to the cluster; bad input and no NATS are one line.

    ``this_machine``: no NATS was named and no local baro is serving, so read this machine's
    own store (``localstore``). ``then_this_machine``: the NATS is a local baro's embedded
    server, which stops when its run ends; if the connection is lost, ``work`` runs again on
    the store that server leaves behind (so ``work`` must be able to run twice).
    """

    async def on(target: Settings) -> T:
        bus = await open_cluster(target, "baro-cli")
        try:
            return await work(bus)
        finally:
            await bus.close()

    async def main() -> T:
        if this_machine:
            async with localstore.served(settings) as local:
                return await on(local)
        try:
            return await on(settings)
        except (NatsError, OSError, TimeoutError):
            if not (then_this_machine and await _stopped(settings.nats_url, settings)):
                raise
        async with localstore.served(settings, wait_s=LOCAL_HANDOVER_S) as local:
            return await on(local)

    try:
        return asyncio.run(main())
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    except BusUnavailable as exc:
        raise fail(
            bus_problem(exc, "pass --nats-url with the cluster's NATS, or set BARO_NATS_URL")
        ) from None


async def _stopped(url: str, settings: Settings) -> bool:
    """Whether this machine's embedded server at ``url`` has stopped (its ports file goes
    with it), waiting a little for one that is stopping."""
    deadline = time.monotonic() + LOCAL_HANDOVER_S
    while embedded_url(settings) == url:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def where(settings: Settings, this_machine: bool) -> str:
    return "this machine" if this_machine else f"NATS at {settings.nats_url}"


async def find_run(
    bus: Bus, settings: Settings, run_id: str, *, this_machine: bool = False
) -> s.RunRecord:
    rec = await api_runs.lookup(bus, run_id)
    if rec is None:
        here = where(settings, this_machine)
        raise UserError(f"no run {run_id!r} on {here}: list the runs there with baro runs")
    return rec


# --------------------------------------------------------------------------- baro runs


@app.command()
def runs(
    nats_url: NatsUrl = None,
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """List the runs on the cluster, newest first (a local run whose baro process stopped
    before it finished shows as interrupted)."""
    states = (*s.RunState.__args__, INTERRUPTED)  # type: ignore[attr-defined]
    if state is not None and state not in states:
        raise fail(f"unknown state {state!r}: choose one of {', '.join(states)}")
    settings = cluster_settings(nats_url)
    local = localstore.wanted(nats_url, settings)
    if local and not localstore.has_runs(settings):
        records = []
    else:
        records = on_cluster(settings, lambda bus: list_runs(bus, state, limit), this_machine=local)
    summaries = [api_views.summary(r) for r in records]
    if as_json:
        typer.echo(json.dumps({"runs": [x.model_dump(mode="json") for x in summaries]}))
        return
    if not summaries:
        here = "this machine" if local else settings.nats_url
        typer.echo(f"no runs on {here}" + (f" in state {state}" if state else ""))
        return
    now = time.time()
    rows = [
        (
            x.run_id,
            INTERRUPTED if x.interrupted else x.state,
            x.mode or "-",
            ago(now - x.created_at),
            x.branch or "-",
            x.goal[:60],
        )
        for x in summaries
    ]
    table(("RUN", "STATE", "MODE", "AGE", "BRANCH", "GOAL"), rows, sys.stdout)


async def list_runs(bus: Bus, state: str | None, limit: int) -> list[s.RunRecord]:
    """The runs, newest first, each showing whether it is interrupted; ``state``
    "interrupted" keeps only those."""
    if state != INTERRUPTED:
        records = await api_runs.list_runs(bus, state, limit)
        return [with_interruption(r) for r in records]
    records = [with_interruption(r) for r in await api_runs.list_runs(bus, None, sys.maxsize)]
    return [r for r in records if r.interrupted is not None][:limit]


def ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, round(seconds))}s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)}m"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)}h"
    return f"{round(seconds / 86400)}d"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]], out: TextIO) -> None:
    rows = [tuple(printable(str(c)) for c in row) for row in rows]  # widths as shown
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


# --------------------------------------------------------------------------- baro status


@app.command()
def status(run_id: RunArg, nats_url: NatsUrl = None, as_json: AsJson = False) -> None:
    """Show one run: state, mode and who decided it, stories, tokens, result."""
    settings = cluster_settings(nats_url)
    try:
        rid = run_id_arg(run_id)
    except UserError as exc:
        raise fail(str(exc), exc.code) from None

    local = localstore.wanted(nats_url, settings)
    if local and not localstore.has_runs(settings):
        raise fail(f"no run {rid!r} on this machine: baro runs lists the runs here")

    async def work(bus: Bus) -> RunDetail:
        found = await find_run(bus, settings, rid, this_machine=local)
        return api_views.detail(with_interruption(found))

    view = on_cluster(settings, work, this_machine=local)
    if as_json:
        typer.echo(json.dumps(view.model_dump(mode="json")))
    else:
        render_detail(view, sys.stdout)


def render_detail(v: RunDetail, out: TextIO) -> None:
    out = safe(out)
    w = out.write
    w(f"run {v.run_id}: {v.state}" + (f" — {v.reason}" if v.reason else "") + "\n")
    if v.interrupted:
        w(
            f"interrupted: {v.interrupted.reason}; baro resume {v.run_id} continues it, "
            f"baro cancel {v.run_id} ends it\n"
        )
    w(f"goal: {api_views.first_line(v.goal)}\n")
    at = (
        f" at {v.repo.commit[:12]}" if v.repo.commit else (f" ({v.repo.ref})" if v.repo.ref else "")
    )
    w(f"repository: {v.repo.kind} {v.repo.location}{at}\n")
    md = v.mode
    if md.mode or md.suggested:
        conf = f", {md.confidence:.0%} confident" if md.confidence is not None else ""
        who = f", decided by {md.source}" if md.source else ""
        w(f"mode: {md.mode or md.suggested}{conf}{who}" + (f" — {md.reason}" if md.reason else ""))
        w("\n")
    if md.awaiting_confirmation:
        w(f"  waiting for the mode to be confirmed: baro watch {v.run_id} shows the picker\n")
    asked = v.clarification
    if asked is not None and asked.questions:
        given = {a.question_id: a.text for a in asked.answers}
        w(f"questions before planning ({asked.status}):\n")
        for q in asked.questions:
            w(f"  [{q.id}] {q.text} — {given.get(q.id) or '(not answered)'}\n")
        if v.state == "awaiting_answers":
            w(f"  waiting for answers: baro answer {v.run_id} (or baro watch {v.run_id})\n")
    if v.envelope is not None:
        w(f"clarified objective: {v.envelope.objective}\n")
    if md.vague and md.interpretation:
        w(f"  the goal is vague; read as: {md.interpretation}\n")
    if v.stories:
        w(f"stories ({v.totals.stories_integrated}/{len(v.stories)} integrated):\n")
        rows = [
            (
                f"  {st.id}",
                st.status,
                f"attempt {st.attempt}" if st.attempt else "",
                f"{(st.tokens.input or 0) + (st.tokens.output or 0):,}",
                dollars(st.tokens.cost_usd),
                st.title[:70],
            )
            for st in v.stories
        ]
        table(("  ID", "STATUS", "", "TOKENS", "COST", "TITLE"), rows, out)
        for st in v.stories:
            for r in st.refused:
                w(f"  {st.id} refused {r.path}: {r.rule}, {r.reason}\n")
            if st.surface_violations:
                fate = (
                    "left out"
                    if st.rejections
                    else "integrated anyway"
                    if st.status == "integrated"
                    else "not integrated"
                )
                policy = f", policy {st.surface_policy}" if st.surface_policy else ""
                w(
                    f"  {st.id} changed files outside its write surface ({fate}{policy}): "
                    f"{', '.join(st.surface_violations)}\n"
                )
    for note in v.enforcement:
        w(f"enforcement: {note}\n")
    tok = v.totals.tokens
    budget = v.request.limits.run_token_budget
    w(runflow.tokens_line(tok.input, tok.cached_input, tok.output, tok.cost_usd, budget))
    w(runflow.time_line(v.totals.wall_s, v.totals.agent_s, v.totals.speedup))
    d = v.delivered
    if d is not None:
        if d.branch:
            partial = "; a partial result (checkpoint), not published" if d.partial else ""
            w(
                f"branch: {d.branch} ({d.base[:10]}..{d.head[:10]}, {d.commits} commit(s)"
                f"{partial})\n"
            )
        if d.pr_url:
            w(f"pull request: {d.pr_url}\n")
        if d.published == "object_store" and d.result_bundle:
            w(f"result: in the object store; baro fetch {v.run_id} brings it here\n")
        elif d.publish_note:
            w(f"{d.publish_note}\n")
    if v.checkpoint is not None:
        w("partial result, not in it:\n")
        for line in v.checkpoint.missing:
            w(f"  - {line}\n")


# --------------------------------------------------------------------------- baro watch


@app.command()
def watch(
    run_id: RunArg,
    nats_url: NatsUrl = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final summary as one JSON object.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    events: watching.EventsOption = False,
) -> None:
    """Follow a run from its first event to its end (Ctrl-C stops watching, not the run)."""
    settings = cluster_settings(nats_url)
    try:
        rid = run_id_arg(run_id)
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    shown = watching.Shown(quiet=quiet, as_json=as_json, events=events)
    local = localstore.wanted(nats_url, settings)
    if local and not localstore.has_runs(settings):
        raise fail(f"no run {rid!r} on this machine: baro runs lists the runs here")
    # watching a local run: its server stops with it, then the rest is read from its store
    live_here = nats_url is None and "BARO_NATS_URL" not in os.environ and not local

    async def work(bus: Bus) -> runflow.RunReport | None:
        rec = await find_run(bus, settings, rid, this_machine=local)
        if local or bus.settings.nats_url != settings.nats_url:
            # from the store alone: nothing moves the run, what it holds is all there is
            again = not local  # what the server showed before it stopped is not repeated
            return unserved(
                await shown.replay(bus, rec.request, again=again), with_interruption(rec)
            )
        gone = _server_gone(bus, settings) if live_here else None
        return await follow_detachable(
            bus, rec.request, shown, picker_for(rec), gone, answerer=answerer_for(rec)
        )

    report = on_cluster(settings, work, this_machine=local, then_this_machine=live_here)
    finish_watch(rid, report, shown)


def unserved(report: runflow.RunReport, rec: s.RunRecord) -> runflow.RunReport:
    """The report of a run read from a store nothing serves: a run that has not finished
    there is interrupted (or waits for a baro to serve it)."""
    if rec.state in s.TERMINAL_RUN_STATES:
        return report
    if rec.interrupted is not None:
        report.status, report.reason = INTERRUPTED, rec.interrupted.reason
    else:
        report.status = rec.state
        report.reason = "no baro serves this machine's store now (baro up serves it)"
    return report


def picker_for(rec: s.RunRecord) -> runflow.Picker | None:
    """The picker, when the run waits for its mode and someone is at the terminal."""
    waiting = rec.request.confirm == "picker" and rec.state in (
        "submitted",
        "classifying",
        "awaiting_confirmation",
    )
    if not (waiting and sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    from baro_cli.picker import pick_mode

    return pick_mode


def answerer_for(rec: s.RunRecord) -> Answerer | None:
    """The terminal, when the run waits (or will wait) for answers to its questions."""
    waiting = rec.request.clarify == "ask" and (
        rec.state == "awaiting_answers"
        or (rec.state in ("submitted", "classifying") and rec.clarification is None)
    )
    if not (waiting and sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    return TerminalAnswers()


async def follow_detachable(
    bus: Bus,
    request: s.RunSubmitted,
    shown: watching.Shown,
    picker: runflow.Picker | None,
    gone: Awaitable[None] | None = None,
    *,
    answerer: Answerer | None = None,
) -> runflow.RunReport | None:
    """Follow the run to its end; None when Ctrl-C stopped the watching (the run goes on).
    ``gone`` raises when the server is gone for good (a local baro's that was killed): the
    follow stops there and the caller reads the rest elsewhere."""
    stop = runflow.install_interrupt(asyncio.get_running_loop())
    following = asyncio.ensure_future(
        runflow.follow(
            bus, request, shown.progress, picker, watchers=shown.watchers, answerer=answerer
        )
    )
    stopper = asyncio.ensure_future(stop.wait())
    lost = asyncio.ensure_future(gone) if gone is not None else None
    waited = {following, stopper} | ({lost} if lost is not None else set())
    done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if lost is not None:
        lost.cancel()
    if following in done:
        return following.result()
    following.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await following
    if lost is not None and lost in done:
        lost.result()  # raises: the server went away
    return None


async def _server_gone(bus: Bus, settings: Settings) -> None:
    """Raise once ``bus`` has lost this machine's embedded server and no baro serves the
    store any more (its ``baro run`` was killed: nothing says the run ended)."""
    while True:
        await asyncio.sleep(0.25)
        if not bus.nc.is_connected and embedded_url(settings) != bus.settings.nats_url:
            raise ConnectionClosedError


def finish_watch(run_id: str, report: runflow.RunReport | None, shown: watching.Shown) -> None:
    if report is None:
        typer.echo(
            f"stopped watching; run {run_id} goes on (baro watch {run_id} to follow it again, "
            f"baro cancel {run_id} to stop it)",
            err=True,
        )
        raise typer.Exit(runflow.EXIT_CANCELLED)
    shown.summary(report)
    if report.status == INTERRUPTED and not (shown.as_json or shown.lines):
        typer.echo(f"baro resume {run_id} continues it, baro cancel {run_id} ends it")
    raise typer.Exit(runflow.exit_code(report))
