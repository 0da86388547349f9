"""Submitting a goal and following its run to the end."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import msgspec
from nats.js.api import Header

from baro_cli.picker import estimate_json, estimate_line
from baro_cli.questions import Answerer, envelope_lines
from baro_cli.runview import generic
from baro_cli.terminal import safe
from baro_intake import api_views
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.checks import describe
from baro_shared.processes import describe_owner
from baro_shared.runstream import Streamed, WatchedEvent, run_stream
from baro_shared.totals import dollars

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_ATTENTION = 3
EXIT_CANCELLED = 130
CANCEL_CONFIRM_S = 15.0  # how long a cancel at the picker waits for the conductor to record it

Picker = Callable[[s.IntakeDecision], s.Mode | None]


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class RunReport:
    """What the user sees at the end (and `--json` prints)."""

    run_id: str
    status: str = "submitted"
    reason: str | None = None
    mode: str | None = None
    confidence: float | None = None
    mode_reason: str | None = None
    mode_source: str | None = None
    vague: bool = False
    interpretation: str | None = None
    # the goal's questions before planning: {status, source, reason, questions: [{id, text,
    # answer}]}, and the clarified goal {objective, acceptance_criteria, ...}
    clarification: dict[str, Any] | None = None
    envelope: dict[str, Any] | None = None
    estimates: list[dict[str, Any]] = field(default_factory=list)  # per mode, from past runs
    stories: list[dict[str, Any]] = field(default_factory=list)
    enforcement: list[str] = field(default_factory=list)
    # what preparing the run found worth saying (e.g. why its commits are not signed)
    notes: list[str] = field(default_factory=list)
    branch: str | None = None
    base: str | None = None
    head: str | None = None
    files_changed: list[str] = field(default_factory=list)
    dropped_artifacts: list[str] = field(default_factory=list)
    # {story, attempt, path, rule, reason}: left out of the branch by a guard
    refused: list[dict[str, Any]] = field(default_factory=list)
    # {story, attempt, path, policy, integrated}: changed outside the story's write surface
    surface_violations: list[dict[str, Any]] = field(default_factory=list)
    # the review loop's decisions: {at, action, reason, story_id, attempt, stories}
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # the run gate on the integrated result: its verdict (passed, failed, skipped: unknown)
    # and each check {command, origin, result, exit_code, seconds, output, note}
    verify: str | None = None
    run_checks: list[dict[str, Any]] = field(default_factory=list)
    # what the review loop spent against its caps: {repairs, retries, replans, replan_budget}
    review_loop: dict[str, int] = field(default_factory=dict)
    pr_url: str | None = None
    publish_note: str | None = None
    # a partial result: {missing: [...], integrated: [...], delivered: the branch is its
    # checkpoint (False: --no-checkpoint, no branch)}; None: the result is complete
    checkpoint: dict[str, Any] | None = None
    # connections the run's own embedded server refused for a missing or wrong credential
    bus_refused: int = 0
    # the run's figures (docs/architecture.md, "What a run took and cost")
    tokens: dict[str, int | None] = field(default_factory=dict)
    cost_usd: float | None = None  # None: no backend reported a price
    run_token_budget: int | None = None
    wall_s: float = 0.0
    agent_s: float = 0.0
    speedup: float | None = None  # agent_s / wall_s
    first_agent_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Progress:
    """Line-oriented progress on stderr (safe in logs and pipes). Each line says when it
    happened, in seconds since the run was submitted (``origin``): an event's line its
    event's time, so a replayed run reads as it went.

    With a ``view`` (the terminal view), lines go into the view instead of the stream.
    """

    def __init__(self, out: TextIO, quiet: bool = False) -> None:
        self.out = safe(out)
        self.quiet = quiet
        self.origin = time.time()
        self.at: float | None = None  # the time of the event being reported
        self.view: LineSink | None = None

    def line(self, text: str) -> None:
        if self.quiet:
            return
        offset = (self.at if self.at is not None else time.time()) - self.origin
        stamped = f"[{offset:6.1f}s] {text}"
        if self.view is not None and self.view.take_line(stamped):
            return
        print(stamped, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A line the user should see even with --quiet (something about this machine)."""
        print(f"baro: {text}", file=self.out, flush=True)


class LineSink(Protocol):
    def take_line(self, text: str) -> bool:
        """Show a progress line; False when it should be printed as it is."""
        ...


class Watcher(Protocol):
    """Sees every event of the run, agents' events included, as a client would."""

    def event(self, event: WatchedEvent) -> None: ...


async def submit(bus: Bus, request: s.RunSubmitted) -> None:
    await bus.publish(request, f"{request.run_id}.submitted")


async def cancel(bus: Bus, run_id: str, reason: str = "cancelled by user") -> None:
    await bus.publish(s.CancelRequested(run_id=run_id, reason=reason), f"{run_id}.cancel")
    with contextlib.suppress(Exception):
        await bus.nc.publish(t.cancel_subject(run_id), b"")
        await bus.nc.flush()


async def follow(
    bus: Bus,
    request: s.RunSubmitted,
    progress: Progress,
    picker: Picker | None,
    *,
    interrupt: asyncio.Event | None = None,
    quiet_before: float | None = None,
    live: bool = True,
    watchers: Sequence[Watcher] = (),
    mode_chosen_by: str | None = None,
    answerer: Answerer | None = None,
) -> RunReport:
    """Watch the run's events from the start until it finishes; confirm the mode if asked,
    answer the goal's questions when ``answerer`` can.

    ``interrupt`` (Ctrl-C) cancels the run, then waits up to ``CANCEL_CONFIRM_S`` for the
    conductor to record it and for running agents to stop (a second Ctrl-C stops waiting).
    The report is completed from the run record at the end, so it says what the record
    says. ``quiet_before``: no progress lines for events older than that (a resumed run's
    history). ``live=False``: only the events there are now (a store no server serves).
    ``watchers`` see every event as a client of the API would, and with them the agents'
    events too.
    ``mode_chosen_by`` says who chose a mode the request carries when it was not
    the user's --mode (e.g. "the plan's shape"); the run records any requested mode as a
    flag.
    """
    report = RunReport(run_id=request.run_id, run_token_budget=request.limits.run_token_budget)
    progress.origin = request.ts
    interrupted = interrupt or asyncio.Event()
    stopped_agents: dict[str, int] | None = None
    cancel_deadline: float | None = None
    try:
        stopped_agents, cancel_deadline = await _follow_events(
            bus,
            request,
            report,
            progress,
            picker,
            interrupted,
            quiet_before,
            live,
            watchers,
            mode_chosen_by,
            answerer,
        )
    finally:
        await _complete_from_record(bus, report, stopped_agents, cancel_deadline, interrupted)
    return report


async def _follow_events(
    bus: Bus,
    request: s.RunSubmitted,
    report: RunReport,
    progress: Progress,
    picker: Picker | None,
    interrupted: asyncio.Event,
    quiet_before: float | None,
    live: bool = True,
    watchers: Sequence[Watcher] = (),
    mode_chosen_by: str | None = None,
    answerer: Answerer | None = None,
) -> tuple[dict[str, int] | None, float | None]:
    """Apply the run's events to ``report`` until it ends (or a cancel is not confirmed in
    time, or, not ``live``, the events run out); returns the agents a cancel stopped, and
    how long to wait for them. With ``watchers``, the agents' last events (read after the
    run's end) are handed to them before it returns."""
    events = run_stream(bus, request.run_id, agent=bool(watchers), follow=live)
    pending_next: asyncio.Future[Streamed | None] | None = None
    ended = False
    cancel_deadline: float | None = None
    stopped_agents: dict[str, int] | None = None
    working: dict[str, int] = {}  # stories whose agent runs, by the events: their attempt
    try:
        while True:
            if pending_next is None:
                pending_next = asyncio.ensure_future(anext(events))
            stop = asyncio.ensure_future(interrupted.wait())
            wait_s = (
                None if cancel_deadline is None else max(0.0, cancel_deadline - time.monotonic())
            )
            done, _ = await asyncio.wait(
                {pending_next, stop}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
            )
            if pending_next not in done:
                stop.cancel()
                if ended or not done or stopped_agents is not None:
                    # the cancel was not confirmed in time, or a second Ctrl-C: stop waiting
                    return stopped_agents, None if done else cancel_deadline
                interrupted.clear()
                progress.line("interrupted: cancelling the run (Ctrl-C again to stop waiting)")
                stopped_agents = await running_agents(bus, request.run_id)
                await cancel(bus, request.run_id, "interrupted by the user")
                report.status, report.reason = "cancelled", "interrupted by the user"
                cancel_deadline = time.monotonic() + CANCEL_CONFIRM_S
                continue  # the next event is still awaited by pending_next
            stop.cancel()
            try:
                item = pending_next.result()
            except StopAsyncIteration:  # the stream ended: after run.finished, or not live
                pending_next = None
                return stopped_agents, cancel_deadline
            pending_next = None
            if item is None:
                continue
            event = api_views.public_event(item.event)
            for watcher in watchers:
                watcher.event(event)
            if isinstance(event, s.AgentEventMsg):
                continue
            muted = quiet_before is not None and event.ts < quiet_before
            was_quiet, progress.quiet = progress.quiet, progress.quiet or muted
            _track_agents(working, event)
            progress.at = event.ts
            try:
                if await _on_event(
                    bus, request, event, report, progress, picker, mode_chosen_by, answerer
                ):
                    if stopped_agents is None and working and report.status == "cancelled":
                        # cancelled from elsewhere (baro cancel): the agents it stopped
                        # still report, and their attempts are archived after that
                        return dict(working), time.monotonic() + CANCEL_CONFIRM_S
                    if not watchers:
                        return stopped_agents, cancel_deadline
                    ended = True  # the stream ends once the agents' last events are read
            finally:
                progress.quiet, progress.at = was_quiet, None
            if report.status == "cancelled" and cancel_deadline is None:
                cancel_deadline = time.monotonic() + CANCEL_CONFIRM_S
    finally:
        if pending_next is not None:
            pending_next.cancel()
        with contextlib.suppress(BaseException):
            await events.aclose()  # type: ignore[attr-defined]


def _track_agents(working: dict[str, int], event: s.Event) -> None:
    match event:
        case s.StoryStarted(story_id=sid, attempt=attempt):
            working[sid] = max(attempt, working.get(sid, 0))
        case s.StoryFinished(story_id=sid, attempt=attempt) if working.get(sid) == attempt:
            del working[sid]
        case _:
            pass


async def running_agents(bus: Bus, run_id: str) -> dict[str, int]:
    """Stories whose agent runs now, with the attempt it runs."""
    got = await bus.get_record(run_id)
    if got is None:
        return {}
    return {st.story.id: st.attempt for st in got[0].stories if st.status == "running"}


def agents_still_running(record: s.RunRecord, with_agents: dict[str, int]) -> set[str]:
    """Stories whose agent (of the attempt running at cancel time) has not reported yet."""
    pending = set()
    for sid, attempt in with_agents.items():
        st = record.story(sid)
        if st is not None and not any(k.startswith(f"{attempt}:") for k in st.counted_attempts):
            pending.add(sid)
    return pending


async def _complete_from_record(
    bus: Bus,
    report: RunReport,
    stopped_agents: dict[str, int] | None,
    deadline: float | None,
    interrupted: asyncio.Event,
) -> None:
    """Fill the report from the run record, after the agents a Ctrl-C stopped have
    reported (their tokens and time count) or the deadline passed."""
    record = None
    with contextlib.suppress(Exception):
        while True:
            got = await bus.get_record(report.run_id)
            record = got[0] if got else record
            settled = record is not None and (
                record.state in s.TERMINAL_RUN_STATES
                and not agents_still_running(record, stopped_agents or {})
            )
            if (
                settled
                or stopped_agents is None
                or deadline is None
                or time.monotonic() >= deadline
                or interrupted.is_set()
            ):
                break
            await asyncio.sleep(0.2)
    if record is not None:
        report_from_record(report, record)


async def until_attempts_kept(bus: Bus, run_id: str, deadline: float) -> None:
    """Wait until what the run's end asked of the merger is done: the conductor has sent
    every command it decided (the record's outbox is empty) and the merger has handled
    them (its consumer has nothing pending), so the attempts a cancel or a failure keeps
    are under refs/baro/<run>/ before this process stops the services it runs."""
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            got = await bus.get_record(run_id)
            if got is None or not got[0].outbox:
                info = await bus.js.consumer_info(t.CMD_STREAM, t.MERGER_CONSUMER)
                if not info.num_pending and not info.num_ack_pending:
                    return
        await asyncio.sleep(0.2)


async def keep_attempts_before_stopping(
    bus: Bus, report: RunReport, interrupt: asyncio.Event
) -> None:
    """For a process about to stop the services it runs the run on: once the run has
    ended, let the merger keep its attempts first (unless Ctrl-C said stop waiting)."""
    if report.status in s.TERMINAL_RUN_STATES and not interrupt.is_set():
        await until_attempts_kept(bus, report.run_id, time.monotonic() + CANCEL_CONFIRM_S)


def checkpoint_json(checkpoint: s.Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {
        "missing": list(checkpoint.missing),
        "integrated": list(checkpoint.integrated),
        "delivered": checkpoint.deliver,
    }


def report_from_record(report: RunReport, record: s.RunRecord) -> None:
    """What the record says about the run's end, its stories and its cost."""
    if record.state in s.TERMINAL_RUN_STATES:
        report.status, report.reason = record.state, record.reason
    if record.mode is not None:
        report.mode = record.mode
    report.clarification = clarification_json(record.clarification)
    report.envelope = envelope_json(record.envelope)
    if record.stories:
        report.stories = [
            {
                "id": st.story.id,
                "title": st.story.title,
                "depends_on": list(st.story.depends_on),
                "status": st.status,
                "attempt": st.attempt,
                "backend": st.backend,
                "model": st.model,
                "agent_s": round(st.agent_seconds, 3),
                "tokens": api_views.tokens_out(st.tokens).model_dump(),
                "checks": [check_json(c) for c in st.result.checks] if st.result else [],
                # why an integrated story brought no change (it was allowed to end so)
                "note": st.reason if st.status == "integrated" else None,
            }
            for st in record.stories
        ]
    report.decisions = [decision_json(d) for d in record.decisions]
    report.review_loop = review_loop_spent(record)
    report.checkpoint = checkpoint_json(record.checkpoint)
    totals = api_views.totals_out(record)
    tok = totals.tokens
    report.tokens = {
        "input": tok.input,
        "cached_input": tok.cached_input,
        "output": tok.output,
        "reasoning": tok.reasoning,
    }
    report.cost_usd = tok.cost_usd
    report.wall_s, report.agent_s, report.speedup = totals.wall_s, totals.agent_s, totals.speedup
    delivered = record.delivered
    if delivered is not None:
        report.branch, report.base, report.head = delivered.branch, delivered.base, delivered.head
        report.files_changed = list(delivered.files_changed)
        report.dropped_artifacts = list(delivered.dropped_artifacts)
        report.pr_url, report.publish_note = delivered.pr_url, delivered.publish_note
        report.verify = delivered.verify
        report.run_checks = [check_json(c) for c in delivered.checks]


async def _on_event(
    bus: Bus,
    request: s.RunSubmitted,
    ev: s.Event,
    report: RunReport,
    progress: Progress,
    picker: Picker | None,
    mode_chosen_by: str | None = None,
    answerer: Answerer | None = None,
) -> bool:
    """Update the report from one event; True when the run is over."""
    match ev:
        case s.QuestionsAsked(questions=questions):
            await _questions(bus, request, questions, report, progress, answerer)
        case s.IntakeDecided(decision=d):
            if d.questions and request.clarify == "ask":
                return False  # the run waits for answers: the questions follow
            if not await _clarified(bus, request, d, progress, answerer):
                report.status, report.reason = "cancelled", NOT_CONFIRMED
                return False  # follow on until the conductor records it (RunFinished)
            report.mode, report.confidence, report.mode_reason = d.mode, d.confidence, d.reason
            report.mode_source, report.vague, report.interpretation = (
                d.source,
                d.vague,
                d.interpretation,
            )
            report.estimates = [estimate_json(e) for e in d.estimates]
            if request.confirm != "picker" or picker is None:  # the picker shows it itself
                progress.line(
                    f"baro suggests: {d.mode} ({d.confidence:.0%} confident) — {d.reason}"
                )
            if d.vague:
                progress.line(f"warning: the goal is vague; read as: {d.interpretation}")
            if request.confirm == "picker" and picker is not None:
                chosen = await asyncio.to_thread(picker, d)
                if chosen is None:
                    await cancel(bus, request.run_id, "cancelled at the mode picker")
                    report.status, report.reason = "cancelled", "cancelled at the mode picker"
                    return False  # follow on until the conductor records it (RunFinished)
                src: s.ConfirmSource = "user" if chosen != d.mode else "intake"
                decided_by: s.DecisionSource = "user" if chosen != d.mode else d.source
                await bus.publish(
                    s.ModeConfirmed(
                        run_id=request.run_id, mode=chosen, source=src, decided_by=decided_by
                    ),
                    f"{request.run_id}.mode",
                )
        case s.ModeConfirmed(mode=mode, source=source, decided_by=decided_by):
            who = mode_chosen_by if source == "flag" and mode_chosen_by else source
            if report.mode != mode or source != "intake":
                progress.line(f"mode: {mode} ({who})")
            report.mode = mode
            if source == "flag" and mode_chosen_by:
                report.mode_source = mode_chosen_by
            elif decided_by is not None:
                report.mode_source = decided_by
            elif source in ("user", "flag"):
                report.mode_source = source
        case s.PlanAccepted(mode=mode, stories=stories, enforcement=notes):
            report.mode = mode
            report.enforcement = list(notes)
            report.stories = [
                {"id": st.id, "title": st.title, "depends_on": st.depends_on, "status": "pending"}
                for st in stories
            ]
            progress.line(
                f"plan: {len(stories)} {'story' if len(stories) == 1 else 'stories'} ({mode})"
            )
            for st in stories:
                deps = f" (after {', '.join(st.depends_on)})" if st.depends_on else ""
                progress.line(f"  {st.id}: {st.title[:90]}{deps}")
            for note in notes:
                progress.line(f"  enforcement: {note}")
        case s.StoryStarted(story_id=sid, attempt=attempt, ts=ts, backend=backend, model=model):
            if report.first_agent_s is None:
                report.first_agent_s = round(ts - request.ts, 3)
            entry = _story(report, sid)
            entry["status"] = "running"
            entry["backend"], entry["model"] = backend, model
            agent = f" with {backend}{f' {model}' if model else ''}" if backend else ""
            progress.line(f"{sid} started (attempt {attempt}){agent}")
        case s.StoryFinished(story_id=sid, status=status, tokens=tok) as ev:
            detail = (
                f"{len(ev.changed_files)} file(s) changed"
                if status == "success"
                else (ev.error or status)
            )
            progress.line(
                f"{sid} agent finished: {status} in {ev.agent_seconds:.1f}s, {_tok(tok)}; {detail}"
            )
            if ev.refused:
                _refused(report, sid, ev.attempt, ev.refused)
                notes = _judgement_notes(ev.refused, [], "")
                progress.line(f"{sid} left out of its result: {'; '.join(notes)}")
            if ev.checks:
                progress.line(f"{sid} checks: {'; '.join(describe(c) for c in ev.checks)}")
            entry = _story(report, sid)
            spent = s.TokenUsage(**entry.get("tokens", {})) + tok
            entry["tokens"] = {"input": spent.input, "output": spent.output}
        case s.RunDecision(decision=decision):
            report.decisions.append(decision_json(decision))
            who = f"{decision.story_id} " if decision.story_id else ""
            progress.line(f"{who}{decision.action}: {decision.reason}")
        case s.StoryUpdated(story_id=sid, status=status, reason=reason):
            _story(report, sid)["status"] = status
            if status in ("failed", "blocked", "conflict", "cancelled"):
                progress.line(f"{sid} {status}: {reason or ''}")
            elif status == "integrated" and reason:  # done without a merge: it changed nothing
                _story(report, sid)["note"] = reason
                progress.line(f"{sid} integrated: {reason}")
        case s.StoryIntegrated(story_id=sid, dropped_artifacts=dropped) as ev:
            _judged(report, ev.story_id, ev.attempt, ev.refused, ev.surface_violations,
                    ev.surface_policy or "warn", integrated=True)  # fmt: skip
            notes = [f"dropped: {', '.join(dropped)}"] if dropped else []
            notes += _judgement_notes(ev.refused, ev.surface_violations, "integrated anyway")
            progress.line(f"{sid} integrated" + (f" ({'; '.join(notes)})" if notes else ""))
        case s.StoryRejected(story_id=sid) as ev:
            _judged(report, sid, ev.attempt, ev.refused, ev.surface_violations,
                    ev.surface_policy, integrated=False)  # fmt: skip
            notes = _judgement_notes(ev.refused, ev.surface_violations, "not integrated")
            progress.line(
                f"{sid} rejected (surface policy {ev.surface_policy}): {'; '.join(notes)}"
            )
        case s.MergeConflict(story_id=sid, paths=paths):
            progress.line(f"{sid} conflicts in {', '.join(paths)}")
        case s.RunDelivered() as d:
            report.branch, report.base, report.head = d.branch, d.base, d.head
            report.files_changed, report.dropped_artifacts = (
                list(d.files_changed),
                list(d.dropped_artifacts),
            )
            report.pr_url, report.publish_note = d.pr_url, d.publish_note
            report.verify, report.run_checks = d.verify, [check_json(c) for c in d.checks]
            if d.checks:
                progress.line(f"run checks: {'; '.join(describe(c) for c in d.checks)}")
            if d.publish_note:
                progress.line(d.publish_note)
        case s.RunGateChecked(checks=results) if results:
            progress.line(f"run checks: {'; '.join(describe(c) for c in results)}")
        case s.RunInterrupted(reason=reason):
            progress.line(f"interrupted: {reason}")
        case s.RunResumed(owner=owner):
            progress.line(f"resumed by {describe_owner(owner)}")
        case s.RunFinished(status=status, reason=reason, totals=tot):
            report.status, report.reason = status, reason
            report.tokens = {
                "input": tot.tokens.input,
                "cached_input": tot.tokens.cached_input,
                "output": tot.tokens.output,
                "reasoning": tot.tokens.reasoning,
            }
            report.cost_usd = tot.tokens.cost_usd
            report.wall_s, report.agent_s, report.speedup = tot.wall_s, tot.agent_s, tot.speedup
            return True
        case s.RunPrepared(notes=notes):
            report.notes = list(notes)
            for note in notes:
                progress.line(f"note: {note}")
        case (
            s.RunSubmitted() | s.PlanProposed() | s.CancelRequested()
            | s.RunPrepareFailed() | s.PlanFailed() | s.IntegrationFailed()
            | s.DeliveryFailed() | s.CommandDeadLettered() | s.AnswersGiven()
        ):  # fmt: skip
            pass  # told by what follows from them (a story's or the run's end says why)
        case _:
            progress.line(generic(ev))  # a kind of event this view does not know by name
    return False


async def _questions(
    bus: Bus,
    request: s.RunSubmitted,
    questions: list[s.Question],
    report: RunReport,
    progress: Progress,
    answerer: Answerer | None,
) -> None:
    """The run waits for answers: give them (the terminal, a file), or say how to."""
    progress.line(
        f"baro asks {len(questions)} question{'s' if len(questions) != 1 else ''} "
        f"before planning ({questions[0].why})"
        if questions
        else "baro asks before planning"
    )
    for number, question in enumerate(questions, 1):
        progress.line(f"  {number}. [{question.id}] {question.text}")
    if answerer is None:
        progress.line(f"waiting for answers: baro answer {request.run_id}")
        return
    answers = await asyncio.to_thread(answerer.answer, questions)
    if answers is None:
        await cancel(bus, request.run_id, "cancelled at the questions")
        report.status, report.reason = "cancelled", "cancelled at the questions"
        return
    skipped = sum(1 for a in answers if not a.text) + len(questions) - len(answers)
    progress.line(f"answered {len(questions) - skipped}, skipped {skipped}")
    await bus.publish(
        s.AnswersGiven(run_id=request.run_id, answers=answers, by=answerer.by),
        f"{request.run_id}.answers",
    )


NOT_CONFIRMED = "the clarified goal was not confirmed"


async def _clarified(
    bus: Bus,
    request: s.RunSubmitted,
    decision: s.IntakeDecision,
    progress: Progress,
    answerer: Answerer | None,
) -> bool:
    """Show the goal the answers made; False when the user does not go on with it (the
    run is then cancelled)."""
    if decision.envelope is None:
        return True
    for line in envelope_lines(decision.envelope):
        progress.line(f"clarified {line}")
    if decision.round != 2 or answerer is None:
        return True
    if await asyncio.to_thread(answerer.confirm, decision.envelope):
        return True
    await cancel(bus, request.run_id, NOT_CONFIRMED)
    return False


def clarification_json(found: s.Clarification | None) -> dict[str, Any] | None:
    if found is None:
        return None
    given = {a.question_id: a.text for a in found.answers}
    return {
        "status": found.status,
        "source": found.source,
        "reason": found.reason,
        "answered_by": found.answered_by,
        "questions": [
            {"id": q.id, "text": q.text, "answer": given.get(q.id) or None} for q in found.questions
        ],
    }


def envelope_json(found: s.GoalEnvelope | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        "objective": found.objective,
        "acceptance_criteria": list(found.acceptance_criteria),
        "constraints": list(found.constraints),
        "non_goals": list(found.non_goals),
        "assumptions": list(found.assumptions),
        "source": found.source,
    }


def review_loop_spent(record: s.RunRecord) -> dict[str, int]:
    """The review loop's extra agent runs and questions, and the run's replanning cap."""
    actions = [d.action for d in record.decisions]
    return {
        "repairs": actions.count("repair"),
        "retries": actions.count("retry"),
        "replans": record.heals,
        "replan_budget": record.request.heals,
    }


def check_json(check: s.CheckResult) -> dict[str, Any]:
    """One check as --json shows it: every field, null where unknown."""
    return msgspec.structs.asdict(check)


def decision_json(decision: s.Decision) -> dict[str, Any]:
    return msgspec.structs.asdict(decision)


def _judged(
    report: RunReport,
    sid: str,
    attempt: int,
    refused: list[s.Refusal],
    outside: list[str],
    policy: str,
    *,
    integrated: bool,
) -> None:
    """Record the merger's verdicts on one attempt (every attempt's, once each)."""

    def other(item: dict[str, Any]) -> bool:
        return (item["story"], item["attempt"]) != (sid, attempt)

    _refused(report, sid, attempt, refused)
    report.surface_violations = [v for v in report.surface_violations if other(v)] + [
        {"story": sid, "attempt": attempt, "path": p, "policy": policy, "integrated": integrated}
        for p in outside
    ]


def _refused(report: RunReport, sid: str, attempt: int, refused: list[s.Refusal]) -> None:
    """Record what a guard left out of one attempt (the runner's before bundling, the
    merger's at integration), each path once."""
    paths = {r.path for r in refused}
    report.refused = [
        r
        for r in report.refused
        if (r["story"], r["attempt"]) != (sid, attempt) or r["path"] not in paths
    ] + [
        {"story": sid, "attempt": attempt, "path": r.path, "rule": r.rule, "reason": r.reason}
        for r in refused
    ]


def _judgement_notes(refused: list[s.Refusal], outside: list[str], fate: str) -> list[str]:
    notes = [f"refused {r.path}: {r.rule}, {r.reason}" for r in refused]
    if outside:
        notes.append(f"outside its write surface, {fate}: {', '.join(outside)}")
    return notes


def _story(report: RunReport, sid: str) -> dict[str, Any]:
    for st in report.stories:
        if st["id"] == sid:
            return st
    entry: dict[str, Any] = {"id": sid, "title": "", "depends_on": [], "status": "pending"}
    report.stories.append(entry)
    return entry


def _tok(tok: s.TokenUsage) -> str:
    if not tok.is_known():
        return "tokens unknown"
    return f"tokens in {tok.input or 0} (cached {tok.cached_input or 0}) out {tok.output or 0}"


def exit_code(report: RunReport) -> int:
    return {
        "delivered": EXIT_OK,
        "needs_attention": EXIT_ATTENTION,
        "cancelled": EXIT_CANCELLED,
    }.get(report.status, EXIT_FAILED)


def bus_refused_line(count: int) -> str:
    return (
        f"the bus refused {count} connection{'s' if count != 1 else ''} without baro's "
        "credential during this run (a process on this machine tried it: an agent, or a "
        "command without BARO_NATS_* settings)"
    )


def _clarification_summary(report: RunReport) -> list[str]:
    found = report.clarification
    lines: list[str] = []
    if found and found["questions"]:
        asked = found["questions"]
        answered = sum(1 for q in asked if q["answer"])
        lines.append(f"questions: {found['status']}, {answered} of {len(asked)} answered")
    if report.envelope:
        lines += [f"clarified {line}" for line in envelope_lines(s.GoalEnvelope(**report.envelope))]
    return lines


def render_summary(report: RunReport, out: TextIO) -> None:
    w = safe(out).write
    w("\n")
    w(
        f"run {report.run_id}: {report.status}"
        + (f" — {report.reason}" if report.reason else "")
        + "\n"
    )
    if report.mode:
        conf = f" ({report.confidence:.0%} confident)" if report.confidence is not None else ""
        w(f"mode: {report.mode}{conf}, decided by {report.mode_source or 'intake'}\n")
        for est in report.estimates:
            if est.get("mode") == report.mode:
                w(f"expected for {report.mode} here: {estimate_line(est)}\n")
    for line in _clarification_summary(report):
        w(line + "\n")
    for st in report.stories:
        attempt = (
            f" (attempt {st['attempt']})"
            if st.get("attempt") and report.status != "delivered"
            else ""
        )
        agent = " ".join(filter(None, (st.get("backend"), st.get("model"))))
        spent = st.get("tokens") or {}
        used = (spent.get("input") or 0) + (spent.get("output") or 0)
        cost = f" — {agent}, tokens: {used}, cost {dollars(spent.get('cost_usd'))}" if agent else ""
        note = f" ({st['note']})" if st.get("note") else ""
        w(f"  {st['id']}: {st['status']}{note}{attempt}{cost}\n")
    for st in report.stories:
        for check in st.get("checks") or []:
            w(f"  {st['id']} check {_check_line(check)}\n")
    for d in report.decisions:
        who = f"{d['story_id']} " if d.get("story_id") else ""
        w(f"review loop: {who}{d['action']}: {d['reason']}\n")
    spent = report.review_loop
    if spent and (spent["repairs"] or spent["retries"] or spent["replans"]):
        w(
            f"review loop spent: {spent['repairs']} repair turn(s) (at most one per story and "
            f"kind), {spent['retries']} retry(ies), {spent['replans']} of "
            f"{spent['replan_budget']} replanning question(s)\n"
        )
    if report.branch:
        partial = " — a partial result (checkpoint), not published" if report.checkpoint else ""
        w(
            f"branch: {report.branch}  ({report.base[:10] if report.base else '?'}..{report.head[:10] if report.head else '?'}){partial}\n"
        )
    if report.checkpoint:
        w("partial result, not in it:\n")
        for line in report.checkpoint["missing"]:
            w(f"  - {line}\n")
    if report.run_checks:
        w(f"run checks: {RUN_VERDICT.get(report.verify or 'skipped', report.verify)}\n")
        for check in report.run_checks:
            w(f"  check {_check_line(check)}\n")
        for check in report.run_checks:
            if check["result"] == "failed" and check.get("output"):
                tail = "\n".join(check["output"].strip().splitlines()[-RUN_OUTPUT_LINES:])
                w(f"  output of `{check['command']}` (last lines):\n{_indent(tail)}\n")
    if report.pr_url:
        w(f"pull request: {report.pr_url}\n")
    if report.files_changed:
        w(
            f"files changed ({len(report.files_changed)}): {', '.join(report.files_changed[:20])}"
            + (" …" if len(report.files_changed) > 20 else "")
            + "\n"
        )
    if report.dropped_artifacts:
        w(f"dropped artifacts: {', '.join(report.dropped_artifacts)}\n")
    for r in report.refused:
        w(f"refused ({r['story']}): {r['path']} — {r['rule']}: {r['reason']}\n")
    for v in report.surface_violations:
        fate = "integrated anyway" if v["integrated"] else "not integrated"
        w(f"outside {v['story']}'s write surface ({fate}, policy {v['policy']}): {v['path']}\n")
    if report.bus_refused:
        w(f"{bus_refused_line(report.bus_refused)}\n")
    tok = report.tokens
    if tok:
        w(
            tokens_line(
                tok.get("input"),
                tok.get("cached_input"),
                tok.get("output"),
                report.cost_usd,
                report.run_token_budget,
            )
        )
    w(time_line(report.wall_s, report.agent_s, report.speedup))
    if report.first_agent_s is not None:
        w(f"first agent started {report.first_agent_s * 1000:.0f} ms after submit\n")


def tokens_line(
    input: int | None,
    cached: int | None,
    output: int | None,
    cost_usd: float | None,
    run_budget: int | None = None,
) -> str:
    def show(v: int | None) -> str:
        return "unknown" if v is None else str(v)

    budget = (
        f"; {(input or 0) + (output or 0):,} of the run's token budget of {run_budget:,}"
        if run_budget is not None
        else ""
    )
    return (
        f"tokens: input {show(input)}, cached {show(cached)}, output {show(output)}; "
        f"cost {dollars(cost_usd)}{budget}\n"
    )


def time_line(wall_s: float, agent_s: float, speedup: float | None) -> str:
    """The run's time figures: summed agent time over wall-clock is the speedup."""
    speed = f", speedup {speedup:.2f}x" if speedup else ""
    return f"wall-clock: {wall_s:.1f}s, summed agent time: {agent_s:.1f}s{speed}\n"


RUN_VERDICT = {
    "passed": "passed",
    "failed": "failed",
    "skipped": "unknown (no check could judge the result; skipped is not a pass)",
}
RUN_OUTPUT_LINES = 12


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _check_line(check: dict[str, Any]) -> str:
    code = f", exit code {check['exit_code']}" if check.get("exit_code") is not None else ""
    note = f" — {check['note']}" if check.get("note") else ""
    return f"`{check['command']}`: {check['result']}{code}{note}"


def install_interrupt(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    event = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, event.set)
    return event


def msg_id_header(msg_id: str) -> dict[str, str]:
    return {Header.MSG_ID: msg_id}


def stderr() -> TextIO:
    return sys.stderr
