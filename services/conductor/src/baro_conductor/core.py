"""The conductor's decisions as a pure function: (run record, event) -> (new record, messages).

No I/O here. The bus handler reads the record, calls :func:`apply`, writes the result with a
compare-and-swap on the KV revision, then publishes the messages it decided (an outbox kept
in the record, so a crash between the write and the publish loses nothing).

Every transition checks state first, so an event delivered twice changes nothing the second
time; a result from an attempt older than the one in the record is recorded and ignored.

A run whose owning process died is parked (``RunInterrupted``, decided by the handler, which
can tell whether a process runs): it still records what arrives, but sends no command that
moves it forward until ``RunResumed`` gives it a new owner; then it re-sends what the
record shows in flight, under new message ids.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import msgspec

from baro_conductor import run_budget
from baro_conductor.policy import enforce
from baro_shared import checks
from baro_shared import schemas as s
from baro_shared.goals.envelope import clarification_markdown, work_goal
from baro_shared.inputs import InputProblem, check_submission
from baro_shared.plan import PlanError, agent_for, critical_path, validate_plan
from baro_shared.retry import Budget
from baro_shared.start_order import start_ranks
from baro_shared.surfaces import covered, near
from baro_shared.totals import dollars, run_totals

DEFAULT_CAPS: dict[str, s.Caps] = {
    "focused": s.Caps(max_stories=1, parallelism=1),
    "sequential": s.Caps(max_stories=8, parallelism=1),
    "parallel": s.Caps(max_stories=16, parallelism=4),
}
ACTIVE_STORY = frozenset({"assigned", "running"})
DONE_STORY = frozenset({"integrated", "failed", "blocked", "conflict", "cancelled", "replaced"})
# a story that is done and owes the run nothing: integrated, or replaced by others
COMPLETE_STORY = frozenset({"integrated", "replaced"})
MAX_REPLACEMENTS = 3  # stories one replanning may put in a story's place
# setbacks a replanning question may help with (a change outside the surface is not one)
REPLANNABLE = frozenset({"agent", "checks", "critique"})
RETRY_EXHAUSTING = frozenset({"budget_exceeded", "cancelled"})
# failures that would repeat identically (a retry would only burn time), and transient
# failures whose retries the runner already spent within the story's budget
NOT_RETRIED = frozenset(
    {"setup_failed", "backend_unavailable", "rejected", "auth_failed", "retries_exhausted"}
)
# commands that move a run forward: a parked run sends none (archiving only keeps work)
DRIVING = (
    s.ClassifyGoal,
    s.PrepareRun,
    s.PlanGoal,
    s.RunStory,
    s.ReviewStory,
    s.ReplanStory,
    s.GateRun,
    s.IntegrateStories,
    s.DeliverRun,
)


@dataclass
class Transition:
    record: s.RunRecord
    emit: list[tuple[str, s.BusMessage]] = field(default_factory=list)  # (msg_id, message)

    def send(self, message: s.BusMessage, msg_id: str | None = None) -> None:
        rec = self.record
        if msg_id is None:
            msg_id = f"{rec.run_id}.{rec.seq}.{len(self.emit)}"
        elif rec.resumes:
            # what a resumed run sends again must not be taken for a duplicate of before
            msg_id = f"{msg_id}.r{rec.resumes}"
        self.emit.append((msg_id, message))


def new_record(event: s.RunSubmitted, now: float) -> Transition:
    rec = s.RunRecord(
        run_id=event.run_id,
        request=event,
        created_at=now,
        updated_at=now,
        seq=1,
        owner=event.owner,
    )
    tr = Transition(rec)
    run_id = event.run_id
    try:
        check_submission(event)
    except InputProblem as exc:
        # a producer that skipped the door (the CLI and the API check the same): the run
        # is recorded as refused, so whoever follows it sees why, and nothing is started
        _finish(tr, "failed", f"the submission was refused: {exc}", now)
        return tr
    _prepare(tr)
    if event.mode_request == "auto":
        rec.state = "classifying"
        _classify(tr)
    else:
        rec.state = "planning"
        rec.mode = event.mode_request
        rec.mode_source = "flag"
        rec.confirmed_at = now
        rec.caps = caps_for(rec, rec.mode, None)
        tr.send(
            s.ModeConfirmed(run_id=run_id, mode=rec.mode, source="flag", decided_by="flag"),
            f"{run_id}.mode",
        )
    return tr


def _prepare(tr: Transition) -> None:
    rec = tr.record
    req = rec.request
    tr.send(
        s.PrepareRun(run_id=rec.run_id, repo=req.repo, continue_branch=req.continue_branch),
        f"{rec.run_id}.prepare",
    )


def _classify(tr: Transition) -> None:
    """Ask the intake: the goal as given, or (its questions answered) the goal with the answers."""
    rec = tr.record
    req = rec.request
    clarification = rec.clarification
    answered = clarification is not None and clarification.status == "answered"
    tr.send(
        s.ClassifyGoal(
            run_id=rec.run_id,
            goal=req.goal,
            strategy=req.intake,
            backend=req.backend,
            model=req.model,
            repo_key=repo_key(req.repo),
            agent_script=req.agent_script,
            limits=req.limits,
            round=2 if answered else 1,
            ask_model=req.clarify == "ask",
            questions=list(clarification.questions) if answered and clarification else [],
            answers=list(clarification.answers) if answered and clarification else [],
        ),
        f"{rec.run_id}.classify" + (".2" if answered else ""),
    )


def repo_key(repo: s.RepoSource) -> str:
    return f"{repo.kind}:{repo.location}"


def caps_for(rec: s.RunRecord, mode: s.Mode, decision: s.IntakeDecision | None) -> s.Caps:
    """Caps for the chosen mode: the intake's suggestion when it suggested this mode, limits win."""
    base = decision.caps if decision is not None and decision.mode == mode else DEFAULT_CAPS[mode]
    limits = rec.request.limits
    max_stories = limits.max_stories or base.max_stories
    parallelism = limits.parallelism or base.parallelism
    if mode == "focused":
        max_stories, parallelism = 1, 1
    elif mode == "sequential":
        parallelism = 1
    return s.Caps(max_stories=max(1, max_stories), parallelism=max(1, parallelism))


def apply(record: s.RunRecord | None, event: s.Event, now: float) -> Transition | None:
    """Decide what ``event`` means for the run; None when it changes nothing."""
    if record is None:
        if isinstance(event, s.RunSubmitted):
            return new_record(event, now)
        return None
    if isinstance(event, s.RunSubmitted) or not handles(event):
        return None
    rec = _copy(record)
    rec.outbox = []
    rec.seq += 1
    tr = Transition(rec)
    if isinstance(event, s.RunInterrupted):
        # what the record had decided but not yet sent goes out with the interruption
        # (less what would move the run forward)
        tr.emit = [(item.msg_id, item.message) for item in record.outbox]
        changed = _interrupt(tr, event, now)
    else:
        handler = _HANDLERS.get(type(event))
        changed = handler is not None and handler(tr, event, now)
    if not changed:
        return None
    if rec.state != record.state and rec.state in NOTIFY_STATES and rec.interrupted is None:
        _notify(tr)  # a parked run sends nothing (its owner is gone; baro runs shows it)
    if rec.interrupted is not None:
        tr.emit = [(mid, msg) for mid, msg in tr.emit if not isinstance(msg, DRIVING)]
    rec.updated_at = now
    rec.totals = run_totals(rec, now)
    return tr


# the states a person acts on: notified once each as the run enters them
NOTIFY_STATES = frozenset(
    {"awaiting_answers", "awaiting_confirmation", "delivered", "needs_attention", "failed"}
)


def _notify(tr: Transition) -> None:
    rec = tr.record
    delivered = rec.delivered
    req = rec.request
    tr.send(
        s.NotifyRun(
            run_id=rec.run_id,
            state=rec.state,
            goal=req.goal,
            reason=rec.reason,
            branch=delivered.branch if delivered else None,
            pr_url=delivered.pr_url if delivered else None,
            totals=rec.totals,
            repository=req.repo.location if req.repo.kind != "bundle" else None,
            webhook=req.notify_webhook,
            desktop=req.notify_desktop,
            local=rec.owner is not None,
        ),
        f"{rec.run_id}.notify.{rec.state}",
    )


def handles(event: s.Event) -> bool:
    """Can ``event`` change a run at all? The conductor's own events (StoryUpdated,
    PlanAccepted, RunFinished, ...) come back to it on the run's stream and change nothing."""
    return isinstance(event, s.RunSubmitted | s.RunInterrupted) or type(event) in _HANDLERS


def _copy(record: s.RunRecord) -> s.RunRecord:
    """A deep copy, through the record's own encoding: about ten times faster than
    copy.deepcopy on a record of many stories, and it runs for every event."""
    return s.record_decoder.decode(s.encode(record))


# --------------------------------------------------------------------------- handlers
# Each returns True when it changed something.


def _intake_decided(tr: Transition, ev: s.IntakeDecided, now: float) -> bool:
    rec = tr.record
    if rec.state != "classifying":
        return False
    decision = ev.decision
    clarification = rec.clarification
    answered = clarification is not None and clarification.status == "answered"
    if decision.round != (2 if answered else 1):
        return False  # the first decision again, while the answered goal is being decided
    rec.decision = decision
    if decision.envelope is not None:
        rec.envelope = decision.envelope
    if decision.tool_answer:
        _finish(tr, "cancelled", f"the goal asks about baro itself: {decision.tool_answer}", now)
        return True
    if decision.questions and clarification is None and _ask(tr, decision, now):
        return True
    if rec.request.confirm == "picker":
        rec.state = "awaiting_confirmation"
        return True
    _confirm(tr, ev.decision.mode, ev.decision.source, now)
    tr.send(
        s.ModeConfirmed(
            run_id=rec.run_id,
            mode=ev.decision.mode,
            source="intake",
            decided_by=ev.decision.source,
        ),
        f"{rec.run_id}.mode",
    )
    return True


def _ask(tr: Transition, decision: s.IntakeDecision, now: float) -> bool:
    """Put the decision's questions to the user (True: the run now waits), or record them
    as skipped when the run was submitted not to ask."""
    rec = tr.record
    source = decision.question_source or "offline"
    if rec.request.clarify != "ask":
        rec.clarification = s.Clarification(
            status="skipped",
            questions=list(decision.questions),
            source=source,
            reason="not asked (--clarify skip): the smallest safe reading is taken",
        )
        return False
    rec.state = "awaiting_answers"
    rec.clarification = s.Clarification(
        status="asked", questions=list(decision.questions), source=source, asked_at=now
    )
    tr.send(
        s.QuestionsAsked(run_id=rec.run_id, questions=list(decision.questions), source=source),
        f"{rec.run_id}.questions",
    )
    return True


def _answers_given(tr: Transition, ev: s.AnswersGiven, now: float) -> bool:
    """The answers are in (any may be blank: skipped): decide the clarified goal's mode."""
    rec = tr.record
    clarification = rec.clarification
    if rec.state != "awaiting_answers" or clarification is None:
        return False
    known = {q.id for q in clarification.questions}
    answers: dict[str, s.GivenAnswer] = {}
    for answer in ev.answers:
        if answer.question_id in known and answer.question_id not in answers:
            answers[answer.question_id] = s.GivenAnswer(
                question_id=answer.question_id, text=answer.text.strip()[:MAX_ANSWER_CHARS]
            )
    clarification.answers = list(answers.values())
    clarification.status = "answered"
    clarification.answered_at = now
    clarification.answered_by = ev.by
    rec.state = "classifying"
    _classify(tr)
    return True


MAX_ANSWER_CHARS = 2_000


def unanswered(record: s.RunRecord, now: float, timeout_s: float) -> s.CancelRequested | None:
    """The cancellation of a run that waited for answers longer than ``timeout_s``, if due."""
    clarification = record.clarification
    if record.state != "awaiting_answers" or clarification is None:
        return None
    asked = clarification.asked_at or record.updated_at
    if now - asked < timeout_s:
        return None
    waited = f"{timeout_s / 60:.0f} min" if timeout_s >= 60 else f"{timeout_s:.0f}s"
    return s.CancelRequested(
        run_id=record.run_id,
        reason=(
            f"its questions were not answered within {waited}: answer them with "
            "`baro answer`, or run again with --clarify skip"
        ),
        unanswered=True,
    )


def _mode_confirmed(tr: Transition, ev: s.ModeConfirmed, now: float) -> bool:
    rec = tr.record
    if rec.state != "awaiting_confirmation" or rec.decision is None:
        return False
    if ev.source == "flag":
        source: s.DecisionSource = "flag"
    elif ev.source == "user" and ev.mode != rec.decision.mode:
        source = "user"
    else:
        source = rec.decision.source
    _confirm(tr, ev.mode, source, now)
    return True


def _confirm(
    tr: Transition, mode: s.Mode, source: s.DecisionSource, now: float | None = None
) -> None:
    rec = tr.record
    rec.mode = mode
    rec.mode_source = source
    rec.confirmed_at = now if now is not None else rec.updated_at
    rec.caps = caps_for(rec, mode, rec.decision)
    rec.state = "planning"
    _request_plan(tr)


def _request_plan(tr: Transition) -> None:
    rec = tr.record
    if rec.state != "planning" or not rec.prepared or rec.mode is None or rec.caps is None:
        return
    design = rec.mode == "parallel" and not rec.request.quick
    if rec.request.plan is not None and not design:
        # the submitter's own plan stands in for the planner's
        tr.send(
            s.PlanProposed(
                run_id=rec.run_id,
                stories=list(rec.request.plan),
                planner="given",
                notes=[f"the plan was given with the run ({len(rec.request.plan)} stories)"],
            ),
            f"{rec.run_id}.plan_outcome",
        )
        return
    decision = rec.decision
    tr.send(
        s.PlanGoal(
            run_id=rec.run_id,
            goal=work_goal(rec.request.goal, rec.envelope),
            mode=rec.mode,
            caps=rec.caps,
            interpretation=decision.interpretation if decision else None,
            file_list=rec.file_list,
            backend=rec.request.backend,
            model=rec.request.model,
            strategy=rec.request.planner,
            agent_script=rec.request.agent_script,
            design=design,
            plan=list(rec.request.plan) if rec.request.plan is not None else None,
            limits=rec.request.limits,
            envelope=rec.envelope,
        ),
        f"{rec.run_id}.plan",
    )


def _prepared(tr: Transition, ev: s.RunPrepared, now: float) -> bool:
    rec = tr.record
    if rec.prepared or rec.state in s.TERMINAL_RUN_STATES:
        return False
    rec.prepared = True
    rec.base_commit = ev.base_commit
    rec.file_list = ev.file_list
    rec.model_tiers = list(ev.model_tiers)
    rec.run_checks = list(ev.run_checks)
    _request_plan(tr)
    return True


def _prepare_failed(tr: Transition, ev: s.RunPrepareFailed, now: float) -> bool:
    rec = tr.record
    if rec.prepared or rec.state in s.TERMINAL_RUN_STATES:
        return False
    _finish(tr, "failed", f"could not prepare the repository: {ev.error}", now)
    return True


def _plan_proposed(tr: Transition, ev: s.PlanProposed, now: float) -> bool:
    rec = tr.record
    if rec.state != "planning" or rec.stories or rec.mode is None or rec.caps is None:
        return False
    rec.plan_tokens = rec.plan_tokens + ev.tokens
    if ev.design is not None:
        rec.design = ev.design
        rec.plan_tokens = rec.plan_tokens + ev.design.tokens
    try:
        stories = validate_plan(list(ev.stories))
        enforced = enforce(stories, rec.mode, rec.caps, rec.request.goal)
    except PlanError as exc:
        if rec.mode != "focused":
            _finish(tr, "failed", f"the plan was rejected: {exc}", now)
            return True
        enforced_stories, notes = (
            [single_story(rec)],
            [f"plan rejected ({exc}); ran the goal as one story"],
        )
        return _accept(tr, rec.mode, enforced_stories, [*ev.notes, *notes], now)
    design_notes = ev.design.notes if ev.design is not None else []
    notes = [*ev.notes, *design_notes, *enforced.notes]
    return _accept(tr, enforced.mode, enforced.stories, notes, now)


def _plan_failed(tr: Transition, ev: s.PlanFailed, now: float) -> bool:
    rec = tr.record
    if rec.state != "planning" or rec.stories or rec.mode is None:
        return False
    rec.plan_tokens = rec.plan_tokens + ev.tokens
    if rec.mode == "focused":
        return _accept(
            tr,
            "focused",
            [single_story(rec)],
            [f"planner failed ({ev.error}); ran the goal as one story"],
            now,
        )
    _finish(tr, "failed", f"planning failed: {ev.error}", now)
    return True


def single_story(rec: s.RunRecord) -> s.Story:
    goal = rec.request.goal.strip()
    title = goal.splitlines()[0][:120] if goal else "goal"
    return s.Story(id="S1", title=title, description=goal)


def _accept(
    tr: Transition, mode: s.Mode, stories: list[s.Story], notes: list[str], now: float
) -> bool:
    rec = tr.record
    caps = rec.caps or caps_for(rec, mode, rec.decision)
    if mode != "parallel":  # enforcement may have turned a parallel plan into a chain
        caps = s.Caps(max_stories=max(caps.max_stories, len(stories)), parallelism=1)
    rec.caps = caps
    rec.mode = mode
    rec.enforcement = notes
    rec.stories = [s.StoryState(story=st) for st in stories]
    rec.integration_head = rec.base_commit
    rec.state = "running"
    tr.send(
        s.PlanAccepted(
            run_id=rec.run_id,
            mode=mode,
            stories=stories,
            enforcement=notes,
            caps=rec.caps,
            design=_design(rec),
        ),
        f"{rec.run_id}.plan_accepted",
    )
    _schedule(tr, now)
    return True


def _design(rec: s.RunRecord) -> s.DesignNote | None:
    """The design note, for a plan whose stories run side by side (enforcement may have
    made a chain of it, where each story sees the previous ones' work anyway)."""
    return rec.design if rec.mode == "parallel" and len(rec.stories) > 1 else None


def _story_started(tr: Transition, ev: s.StoryStarted, now: float) -> bool:
    st = tr.record.story(ev.story_id)
    if st is None or st.status not in ACTIVE_STORY or ev.attempt < st.attempt:
        return False
    if st.status == "running" and ev.attempt == st.attempt:
        return False
    st.status = "running"
    if ev.attempt > st.attempt:  # a redelivery on another runner: its own agent runs
        st.agent_ended = False
    st.attempt = ev.attempt
    st.runner = ev.runner
    st.started_at = st.started_at or ev.ts
    _story_updated(tr, st)
    return True


def _agent_ended(tr: Transition, ev: s.StoryAgentEnded, now: float) -> bool:
    """The attempt's agent is gone and only its result is being saved: its slot goes to
    the next ready story now rather than when the result is in."""
    st = tr.record.story(ev.story_id)
    if st is None or st.status not in ACTIVE_STORY or ev.attempt != st.attempt or st.agent_ended:
        return False
    st.agent_ended = True
    _schedule(tr, now)
    return True


def _story_finished(tr: Transition, ev: s.StoryFinished, now: float) -> bool:
    rec = tr.record
    st = rec.story(ev.story_id)
    if st is None:
        return False
    counted = _count_attempt(rec, st, ev)
    if st.status not in ACTIVE_STORY or ev.attempt < st.attempt:
        if counted:  # a stale result: its cost is recorded and its commits kept, nothing else
            _archive(tr, st, ev)
        return counted
    st.attempt = ev.attempt
    st.result = s.StoryResult(
        attempt=ev.attempt,
        status=ev.status,
        bundle=ev.bundle,
        base_commit=ev.base_commit,
        head_commit=ev.head_commit,
        changed_files=ev.changed_files,
        surface_violations=ev.surface_violations,
        tokens=ev.tokens,
        agent_seconds=ev.agent_seconds,
        exit_reason=ev.exit_reason,
        error=ev.error,
        checks=ev.checks,
    )
    _record_verdicts(st, ev.refused, [], None)  # what the runner left out of the result
    if not (ev.status == "success" and rec.state != "cancelled"):
        _archive(tr, st, ev)
    if ev.exit_reason == s.RUN_BUDGET_EXCEEDED:
        rec.budget_reached = True
    if ev.status not in ("success", "cancelled") and st.first_failure_at is None:
        st.first_failure_at = ev.ts  # the story's retry budget starts counting time
    budget = Budget.of(rec.request.limits, st.first_failure_at or ev.ts)
    if rec.state == "cancelled":
        st.status = "cancelled"
    elif ev.status == "success" and not ev.changed_files and st.story.may_change_nothing:
        _nothing_to_integrate(tr, st, ev.ts, now)
        return True
    elif ev.status == "success" and ev.bundle and ev.head_commit:
        if _reviewed(rec, st):
            _ask_critic(tr, st, ev)
        else:
            _finished(tr, st, ev.ts, now)
        return True
    elif ev.status == "retryable" and budget.allows_retry(ev.attempt, ev.ts):
        st.status = "assigned"  # the runner handed the command back with a delay
        st.reason = f"retrying later: {ev.error or ev.exit_reason}"
    elif ev.status == "retryable":  # the runner's view of the budget was older than ours
        st.status = "failed"
        st.finished_at = ev.ts
        st.reason = f"failed: {budget.spent(ev.attempt, ev.ts)}: {ev.error or ev.exit_reason}"
    elif ev.status not in RETRY_EXHAUSTING and ev.exit_reason not in NOT_RETRIED:
        setback, note, resume = _setback_of(ev)
        final = _failure_reason(ev)
        if setback.kind == "checks":
            final = f"its checks failed again: {ev.error or ''}".strip()
        _setback(tr, st, setback, note, resume, final, ev.ts, now)
    else:
        st.status = "failed"
        st.finished_at = ev.ts
        st.reason = _failure_reason(ev)
    _story_updated(tr, st)
    _schedule(tr, now)
    return True


def _archive(tr: Transition, st: s.StoryState, ev: s.StoryFinished) -> None:
    if ev.bundle:
        run_id = tr.record.run_id
        tr.send(
            s.ArchiveAttempt(
                run_id=run_id, story_id=st.story.id, attempt=ev.attempt, bundle=ev.bundle
            ),
            f"{run_id}.archive.{st.story.id}.{ev.attempt}",
        )


def _failure_reason(ev: s.StoryFinished) -> str:
    what = {
        "budget_exceeded": "token budget exceeded",
        "timeout": "timed out",
        "stalled": "stalled",
        "cancelled": "cancelled",
    }.get(ev.status, "failed")
    detail = ev.error or ev.exit_reason
    return f"{what}: {detail}" if detail else what


def _count_attempt(rec: s.RunRecord, st: s.StoryState, ev: s.StoryFinished) -> bool:
    """Add an attempt's tokens and agent time once, whether or not its result is used."""
    key = f"{ev.attempt}:{ev.status}"
    if key in st.counted_attempts:
        return False
    st.counted_attempts.append(key)
    st.tokens = st.tokens + ev.tokens
    st.agent_seconds += ev.agent_seconds
    return True


def _in_integration(rec: s.RunRecord, story_id: str, attempt: int | None) -> s.StoryState | None:
    """The story of the batch in flight, if ``story_id`` (and ``attempt``) match one; it
    leaves the batch (the merger answers once for each story)."""
    st = rec.story(story_id)
    if st is None or st.status != "finished" or story_id not in rec.integrating_batch:
        return None
    if attempt is not None and (st.result is None or st.result.attempt != attempt):
        return None
    rec.integrating_batch = [sid for sid in rec.integrating_batch if sid != story_id]
    return st


def _batch_head(
    rec: s.RunRecord, head: str | None, bundle: str | None, integrated: str | None = None
) -> None:
    """The integration head after the merger's batch, as one of its answers tells it:
    every answer of a batch names the same head and bundle, so their order does not
    matter. A batch that wrote no bundle leaves the newest one as it was, and the story it
    ``integrated`` among those the bundle lacks."""
    if head is None:
        return
    rec.integration_head = head
    if bundle is not None:
        rec.integration_bundle, rec.bundle_head, rec.unbundled = bundle, head, []
    elif integrated is not None and integrated not in rec.unbundled:
        rec.unbundled.append(integrated)


def _integration_done(tr: Transition, st: s.StoryState, now: float) -> None:
    """The merger answered for ``st``: record it, start the next integration, fill free slots."""
    _story_updated(tr, st)
    _next_integration(tr)
    _schedule(tr, now)


def _story_integrated(tr: Transition, ev: s.StoryIntegrated, now: float) -> bool:
    rec = tr.record
    st = _in_integration(rec, ev.story_id, ev.attempt)
    if st is None:
        return False
    st.status = "integrated"
    st.integration_commit = ev.integration_commit
    st.dropped_artifacts = ev.dropped_artifacts
    _record_verdicts(st, ev.refused, ev.surface_violations, ev.surface_policy)
    st.nothing_left = ev.nothing_left
    st.story_ref = ev.story_ref
    st.reason = None
    _batch_head(
        rec, ev.integration_head or ev.integration_commit, ev.integration_bundle, st.story.id
    )
    st.delivered = _delivery(st, ev)
    st.nearby = []  # it has no next attempt to tell, and the record is written at every event
    _tell_neighbours(rec, st)
    _integration_done(tr, st, now)
    return True


def _delivery(st: s.StoryState, ev: s.StoryIntegrated) -> s.Delivery:
    """What the story put on the integration head: the merger's list of files, else the
    attempt's changed files without the artifacts the merger dropped."""
    files = list(ev.files)
    if not files and st.result is not None:
        dropped = set(ev.dropped_artifacts)
        files = [f for f in st.result.changed_files if f not in dropped]
    return s.Delivery(
        story_id=st.story.id, title=st.story.title, commit=ev.integration_commit, files=files
    )


def _tell_neighbours(rec: s.RunRecord, done: s.StoryState) -> None:
    """Stories still at work whose surface is near what ``done`` just integrated: their
    next attempt (a retry, or a re-run after a conflict) is told what landed."""
    delivered = done.delivered
    if delivered is None or not delivered.files:
        return
    for st in rec.stories:
        if st is done or st.status not in ("assigned", "running", "reviewing", "finished"):
            continue
        surface = st.story.write_surface
        touching = [f for f in delivered.files if near(f, surface)]
        if touching and all(d.story_id != done.story.id for d in st.nearby):
            st.nearby.append(msgspec.structs.replace(delivered, files=touching))


def _merge_conflict(tr: Transition, ev: s.MergeConflict, now: float) -> bool:
    rec = tr.record
    st = _in_integration(rec, ev.story_id, ev.attempt)
    if st is None:
        return False
    _batch_head(rec, ev.integration_head, ev.integration_bundle)
    st.conflicts += 1
    st.conflict_paths = ev.paths
    where = ev.story_ref or f"refs/baro/{rec.run_id}/{st.story.id}/{ev.attempt}"
    if st.conflicts <= 1 and rec.state != "cancelled":
        note = s.RepairNote(
            kind="conflict",
            text="Your previous attempt conflicted with work integrated meanwhile in: "
            + ", ".join(ev.paths)
            + ". Start from the current code and make your change fit it.",
        )
        st.reason = f"conflict in {', '.join(ev.paths)}; re-running on the new integration head"
        _dispatch(tr, st, [note], base=rec.integration_head)  # on the head it met
        _decide(tr, "retry", st.reason, now, story=st)
    else:
        st.status = "conflict"
        st.reason = f"conflicts again in {', '.join(ev.paths)}; its commits are at {where}"
    _integration_done(tr, st, now)
    return True


def _record_verdicts(
    st: s.StoryState,
    refused: list[s.Refusal],
    outside: list[str],
    policy: s.SurfacePolicy | None,
) -> None:
    """Keep what was judged on every attempt of the story (each path once): by the merger,
    and by the runner (paths git refused to record)."""
    st.refused = st.refused + [r for r in refused if r not in st.refused]
    st.surface_violations = st.surface_violations + [
        p for p in outside if p not in st.surface_violations
    ]
    st.surface_policy = policy or st.surface_policy


def _story_rejected(tr: Transition, ev: s.StoryRejected, now: float) -> bool:
    """Strict policy: none of the attempt was integrated. Re-run the story once with the
    violation named in its prompt; a second violation fails it with the list."""
    rec = tr.record
    st = _in_integration(rec, ev.story_id, ev.attempt)
    if st is None:
        return False
    _batch_head(rec, ev.integration_head, ev.integration_bundle)
    st.rejections += 1
    _record_verdicts(st, ev.refused, ev.surface_violations, ev.surface_policy)
    st.story_ref = ev.story_ref or f"refs/baro/{rec.run_id}/{st.story.id}/{ev.attempt}"
    listing = ", ".join(ev.surface_violations)
    note = s.RepairNote(
        kind="surface",
        text=(
            f"Your previous attempt changed files outside your write surface: {listing}. "
            "None of that attempt was integrated. Change only files your write surface "
            f"covers ({', '.join(st.story.write_surface)}), and leave every other file as it is."
        ),
    )
    setback = s.Setback(
        attempt=ev.attempt,
        kind="surface",
        signature="surface:" + ",".join(sorted(ev.surface_violations)),
        summary=f"changed files outside its write surface ({listing})",
    )
    final = (
        f"changed files outside its write surface again ({listing}); "
        f"nothing of it was integrated, its commits are at {st.story_ref}"
    )
    if rec.state != "cancelled":
        _setback(tr, st, setback, note, None, final, ev.ts, now)
    else:
        st.status, st.finished_at, st.reason = "failed", ev.ts, final
    _integration_done(tr, st, now)
    return True


def _integration_failed(tr: Transition, ev: s.IntegrationFailed, now: float) -> bool:
    rec = tr.record
    st = _in_integration(rec, ev.story_id, None)
    if st is None:
        return False
    st.status = "failed"
    st.reason = f"integration failed: {ev.error}"
    _integration_done(tr, st, now)
    return True


def _delivered(tr: Transition, ev: s.RunDelivered, now: float) -> bool:
    rec = tr.record
    if rec.state != "integrating":
        return False
    rec.delivered = ev
    if not any(st.status == "integrated" for st in rec.stories):
        reasons = "; ".join(f"{st.story.id}: {st.reason or st.status}" for st in rec.stories)
        conflicted = any(st.status == "conflict" for st in rec.stories)
        _finish(
            tr,
            "needs_attention" if conflicted else "failed",
            f"no story was integrated ({reasons})",
            now,
        )
    elif ev.head == ev.base:
        _finish(tr, "needs_attention", _nothing_delivered(rec), now)
    elif (checkpoint := rec.checkpoint or partial_result(rec)) is not None:
        _finish(tr, "needs_attention", _partial(rec, checkpoint, ev), now)
    elif ev.verify == "failed":
        failing = "; ".join(checks.describe(c) for c in ev.checks if c.result == "failed")
        why = failing or (ev.verify_output or "").strip()
        said = f"the run's checks failed: {why}" if why else "the run's checks failed (no output)"
        _finish(tr, "needs_attention", said, now)
    else:
        _finish(tr, "delivered", None, now)
    return True


def _partial(rec: s.RunRecord, checkpoint: s.Checkpoint, ev: s.RunDelivered) -> str:
    """Why a run with a partial result needs attention, and where that result is."""
    what = "; ".join(checkpoint.missing)
    if ev.branch is not None:
        return f"a partial result, delivered as {ev.branch} (a checkpoint, not published): {what}"
    kept = f"refs/baro/{rec.run_id}/integration"
    return f"a partial result, delivered as no branch (--no-checkpoint; kept at {kept}): {what}"


def _nothing_delivered(rec: s.RunRecord) -> str:
    """Why a run whose stories were integrated delivered nothing: every change was left out."""
    integrated = [st for st in rec.stories if st.status == "integrated"]
    parts = [_left_out(st) for st in integrated if st.nothing_left] or [
        "the integrated changes add up to no change"
    ]
    failed = [
        f"{st.story.id} {st.status}: {st.reason or ''}".strip()
        for st in rec.stories
        if st.status not in COMPLETE_STORY
    ]
    return "; ".join(["nothing was delivered: every change was left out", *parts, *failed])


def _left_out(st: s.StoryState) -> str:
    """``S1 delivered nothing: a.txt (refused: ...), prd.json (artifact); kept at REF``."""
    what = [f"{r.path} ({r.rule}: {r.reason})" for r in st.refused]
    what += [f"{path} (artifact)" for path in st.dropped_artifacts]
    where = st.story_ref or f"refs/baro/<run>/{st.story.id}/{st.attempt}"
    shown = ", ".join(what[:10]) + (f" and {len(what) - 10} more" if len(what) > 10 else "")
    return (
        f"{st.story.id} delivered nothing: {shown or 'its changes were left out'}; kept at {where}"
    )


def _delivery_failed(tr: Transition, ev: s.DeliveryFailed, now: float) -> bool:
    rec = tr.record
    if rec.state != "integrating":
        return False
    _finish(
        tr,
        "needs_attention" if ev.needs_attention else "failed",
        f"delivery failed: {ev.error}",
        now,
    )
    return True


def _cancel(tr: Transition, ev: s.CancelRequested, now: float) -> bool:
    rec = tr.record
    if rec.state in s.TERMINAL_RUN_STATES:
        return False
    if ev.unanswered and rec.state != "awaiting_answers":
        return False  # answered after all, before the timeout's cancellation arrived
    if ev.unanswered and rec.clarification is not None:
        rec.clarification.status = "timed_out"
        rec.clarification.reason = ev.reason
    rec.interrupted = None  # ending a parked run: its attempts are archived like any other
    for st in rec.stories:
        if st.status not in DONE_STORY and st.status not in ("finished", "reviewing"):
            st.status = "cancelled"
            st.reason = ev.reason
            _story_updated(tr, st)
        elif st.result is not None and st.result.bundle:
            if st.status == "reviewing":  # its work is kept like finished work
                st.status, st.reason = "cancelled", ev.reason
                _story_updated(tr, st)
            # finished or integrated work: its attempt refs are mirrored into the user's repository
            tr.send(
                s.ArchiveAttempt(
                    run_id=rec.run_id,
                    story_id=st.story.id,
                    attempt=st.result.attempt,
                    bundle=st.result.bundle,
                ),
                f"{rec.run_id}.archive.{st.story.id}.{st.result.attempt}",
            )
    _finish(tr, "cancelled", ev.reason, now)
    return True


def _dead_lettered(tr: Transition, ev: s.CommandDeadLettered, now: float) -> bool:
    """A command the bus gave up on: fail the story it was for, or the run."""
    rec = tr.record
    if rec.state in s.TERMINAL_RUN_STATES:
        return False
    if ev.command == "cmd.run_story" and ev.story_id is not None and ev.attempt is not None:
        failed = s.StoryFinished(
            run_id=rec.run_id,
            story_id=ev.story_id,
            attempt=ev.attempt,
            status="failed",
            exit_reason="dead_lettered",
            error=ev.reason,
            ts=ev.ts,
        )
        return _story_finished(tr, failed, now)
    if ev.command == "cmd.integrate_stories":
        failed = [
            _integration_failed(
                tr,
                s.IntegrationFailed(
                    run_id=rec.run_id, story_id=story_id, attempt=attempt, error=ev.reason, ts=ev.ts
                ),
                now,
            )
            for story_id, attempt in ev.integrations.items()
        ]
        return any(failed)
    if ev.command == "cmd.archive":
        return False  # the attempt's bundle stays in the object store; nothing else depends on it
    if ev.command == "cmd.notify":
        return False  # a notification that could not be delivered never changes the run
    _finish(tr, "failed", ev.reason, now)
    return True


def _interrupt(tr: Transition, ev: s.RunInterrupted, now: float) -> bool:
    """Park the run: its owner is gone (the handler checked)."""
    rec = tr.record
    if rec.interrupted is not None or rec.state in s.TERMINAL_RUN_STATES:
        return False
    rec.interrupted = s.Interruption(at=ev.ts, reason=ev.reason, owner=ev.owner)
    tr.send(ev, f"{rec.run_id}.interrupted")  # for whoever watches the run
    return True


def _resume(tr: Transition, ev: s.RunResumed, now: float) -> bool:
    """Drive a parked run again under ``ev.owner``: re-send what the record shows in flight.

    Integrated stories stay; stories that were assigned or running start again as a new
    attempt (the old attempt's process died with its owner); an integration or a delivery
    in flight is asked again (the merger finds what it did already and answers the same).
    """
    rec = tr.record
    if rec.interrupted is None or rec.state in s.TERMINAL_RUN_STATES:
        return False
    rec.interrupted = None
    rec.owner = ev.owner
    rec.resumes += 1
    if not rec.prepared:
        _prepare(tr)
    if rec.state == "classifying":
        _classify(tr)
    elif rec.state == "planning":
        _request_plan(tr)
    elif rec.state == "running":
        for st in rec.stories:
            if st.status in ACTIVE_STORY:
                _restart(tr, st)
        in_flight = [rec.story(sid) for sid in rec.integrating_batch]
        again = [st for st in in_flight if st is not None and st.status == "finished"]
        if again:
            _integrate(tr, again)
        else:
            rec.integrating_batch = []
        for st in rec.stories:
            if st.status == "replanning":
                _send_replan(tr, st)
            if st.status == "reviewing":  # its change is not asked about again
                reason = "the run was resumed while the critic reviewed it; not asked again"
                _decide(tr, "abstain", reason, now, story=st)
                _finished(tr, st, now, now)
        _next_integration(tr)
        _schedule(tr, now)
    elif rec.state == "integrating":
        if rec.gating:
            _send_gate(tr)
        else:
            _deliver(tr, now)
    return True


def _restart(tr: Transition, st: s.StoryState) -> None:
    dispatches = st.dispatches
    st.reason = "restarted: the run was resumed"
    _dispatch(tr, st, None)
    st.dispatches = dispatches  # a restart after a resume is not a retry
    _story_updated(tr, st)


def _count_question(rec: s.RunRecord, st: s.StoryState, key: str, tokens: s.TokenUsage) -> bool:
    """Add the tokens of a question about the story (the critic's, a replanning) once;
    False when ``key`` was counted already (a duplicate answer)."""
    if key in st.counted_attempts:
        return False
    st.counted_attempts.append(key)
    st.tokens = st.tokens + tokens
    rec.totals.tokens = rec.totals.tokens + tokens
    return True


def _story_reviewed(tr: Transition, ev: s.StoryReviewed, now: float) -> bool:
    """The critic's verdict: approve or abstain, and the story waits for its integration;
    revise, and it gets one repair turn on its result with the critique in its prompt."""
    rec = tr.record
    st = rec.story(ev.story_id)
    if st is None:
        return False
    if not _count_question(rec, st, f"{ev.attempt}:review", ev.tokens):
        return False  # a duplicate
    st.reviews.append(
        s.Review(
            attempt=ev.attempt,
            verdict=ev.verdict,
            reasons=ev.reasons,
            note=ev.note,
            tokens=ev.tokens,
        )
    )
    if st.status != "reviewing" or ev.attempt != st.attempt or st.result is None:
        return True  # cancelled or resumed meanwhile: its cost is recorded, nothing else
    if ev.verdict != "revise":
        if ev.verdict == "approve":
            reason = "the critic approved its change" + (f" ({ev.note})" if ev.note else "")
        else:
            reason = f"the critic abstained: {ev.note or 'no usable answer'}"
        _decide(tr, ev.verdict, reason, now, story=st)
        _finished(tr, st, ev.ts, now)
        return True
    result = st.result
    assert result.bundle is not None and result.head_commit is not None
    critique = "; ".join(ev.reasons)
    setback = s.Setback(
        attempt=ev.attempt,
        kind="critique",
        signature="critique:" + _normalized(critique),
        summary=f"the critic asked for changes: {critique}",
    )
    note = s.RepairNote(
        kind="critique",
        text="A reviewer read your previous attempt's change against the story's "
        "acceptance criteria and asked for these changes:\n"
        + "\n".join(f"- {r}" for r in ev.reasons)
        + "\nMake them, and keep the rest of your work.",
    )
    resume = s.Resume(attempt=ev.attempt, bundle=result.bundle, head=result.head_commit)
    final = f"the critic asked for changes again after its repair turn: {critique}"
    _setback(tr, st, setback, note, resume, final, ev.ts, now)
    _story_updated(tr, st)
    _schedule(tr, now)
    return True


def _story_replanned(tr: Transition, ev: s.StoryReplanned, now: float) -> bool:
    """Apply the planner's answer for a story that failed twice: other stories in its
    place (under the run's mode and caps), or the story fails with the reason."""
    rec = tr.record
    st = rec.story(ev.story_id)
    if st is None:
        return False
    if not _count_question(rec, st, f"replan:{ev.round}", ev.tokens):
        return False  # a duplicate
    if st.status != "replanning" or ev.round != rec.heals:
        return True  # cancelled meanwhile: its cost is recorded, nothing else
    if ev.decision != "give_up":
        try:
            stories = _replacements(rec, st, ev.stories)
        except PlanError as exc:
            return _given_up(tr, st, f"its replanning could not be applied: {exc}", now)
        ids = [story.id for story in stories]
        for other in rec.stories:
            if st.story.id in other.story.depends_on:
                deps = [ids[-1] if d == st.story.id else d for d in other.story.depends_on]
                other.story = msgspec.structs.replace(other.story, depends_on=deps)
        rec.stories.extend(s.StoryState(story=story) for story in stories)
        st.status = "replaced"
        st.finished_at = ev.ts
        st.reason = f"replaced by {', '.join(ids)}: {ev.reason}"
        _decide(tr, ev.decision, st.reason, now, story=st, stories=ids)
        _story_updated(tr, st)
        _schedule(tr, now)
        return True
    return _given_up(tr, st, f"given up after replanning: {ev.reason}", now)


def _given_up(tr: Transition, st: s.StoryState, reason: str, now: float) -> bool:
    """The story fails: what made it fail, and why replanning did not take it further."""
    st.status = "failed"
    st.finished_at = now
    st.reason = f"{st.failure}; {reason}" if st.failure else reason
    _decide(tr, "give_up", reason, now, story=st)
    _story_updated(tr, st)
    _schedule(tr, now)
    return True


def _gate_checked(tr: Transition, ev: s.RunGateChecked, now: float) -> bool:
    """The run gate's results: failed the first time, one story repairs the integrated
    result with the output in its prompt and the gate runs again; else deliver."""
    rec = tr.record
    if rec.state != "integrating" or not rec.gating or ev.round != rec.gate_rounds:
        return False
    rec.gating = False
    rec.gate = list(ev.checks)
    rec.gate_head = ev.head
    if checks.verdict(ev.checks) != "failed" or rec.gate_rounds > 1:
        _deliver(tr, now)
        return True
    taken = {st.story.id for st in rec.stories}
    number = 1
    while f"R{number}" in taken:
        number += 1
    story = s.Story(
        id=f"R{number}",
        title="Make the run's checks pass on the integrated result",
        description="Every story of this run is integrated, but the run's checks fail on "
        "the result. Fix what makes them fail, with the smallest change that does; do not "
        "weaken, skip or delete a check.",
    )
    st = s.StoryState(story=story)
    rec.stories.append(st)
    rec.run_repair = story.id
    rec.state = "running"
    failing = "; ".join(checks.describe(c) for c in ev.checks if c.result == "failed")
    note = s.RepairNote(
        kind="run_checks",
        text="The run's checks failed on the integrated result:\n\n"
        + checks.failures_text(ev.checks),
    )
    _dispatch(tr, st, [note], base=rec.integration_head)  # it repairs what was integrated
    _story_updated(tr, st)
    _decide(
        tr,
        "run_repair",
        f"the run's checks failed ({failing}); {story.id} repairs the integrated result, "
        "then they run once more",
        now,
        stories=[story.id],
    )
    return True


_HANDLERS = {
    s.IntakeDecided: _intake_decided,
    s.AnswersGiven: _answers_given,
    s.ModeConfirmed: _mode_confirmed,
    s.RunPrepared: _prepared,
    s.RunPrepareFailed: _prepare_failed,
    s.PlanProposed: _plan_proposed,
    s.PlanFailed: _plan_failed,
    s.StoryStarted: _story_started,
    s.StoryAgentEnded: _agent_ended,
    s.StoryFinished: _story_finished,
    s.StoryIntegrated: _story_integrated,
    s.StoryRejected: _story_rejected,
    s.MergeConflict: _merge_conflict,
    s.IntegrationFailed: _integration_failed,
    s.StoryReviewed: _story_reviewed,
    s.StoryReplanned: _story_replanned,
    s.RunGateChecked: _gate_checked,
    s.RunDelivered: _delivered,
    s.DeliveryFailed: _delivery_failed,
    s.CancelRequested: _cancel,
    s.CommandDeadLettered: _dead_lettered,
    s.RunResumed: _resume,
}


# --------------------------------------------------------------------------- scheduling


def _schedule(tr: Transition, now: float) -> None:
    """Dispatch every ready story up to the run's parallelism; deliver when all are done."""
    rec = tr.record
    if rec.state != "running" or rec.caps is None:
        return
    by_id = {st.story.id: st for st in rec.stories}
    changed = True
    while changed:  # blocking propagates along chains
        changed = False
        for st in rec.stories:
            if st.status != "pending":
                continue
            bad = [
                d
                for d in st.story.depends_on
                if by_id[d].status in ("failed", "blocked", "conflict", "cancelled")
            ]
            if bad:
                st.status = "blocked"
                st.reason = "blocked by " + ", ".join(f"{d} ({by_id[d].status})" for d in bad)
                _story_updated(tr, st)
                changed = True
    active = sum(1 for st in rec.stories if st.status in ACTIVE_STORY and not st.agent_ended)
    ready = [
        st
        for st in rec.stories
        if st.status == "pending"
        and all(by_id[d].status == "integrated" for d in st.story.depends_on)
    ]
    soon = {st.story.id for st in _about_to_be_ready(rec, by_id)}
    for st in _by_priority(rec, ready + [by_id[sid] for sid in soon]):
        if active >= rec.caps.parallelism:
            break
        if st.story.id in soon:
            active += 1  # its slot stays free for it
            continue
        share = run_budget.allowance(rec, st)
        if share is not None and share <= 0:
            if not run_budget.running(rec):  # nothing more will come back to share
                _out_of_budget(tr)
            break  # the ready stories share what the running ones leave
        _dispatch(tr, st, None)
        _story_updated(tr, st)
        active += 1
    if all(st.status in DONE_STORY for st in rec.stories) and not rec.integrating_batch:
        _deliver_or_fail(tr, now)


def _about_to_be_ready(rec: s.RunRecord, by_id: dict[str, s.StoryState]) -> list[s.StoryState]:
    """The stories whose last dependencies have finished and wait only for the merger:
    ready in an integration's time. One that ranks above the ready stories keeps a slot
    free for itself, as it would have it the moment its dependencies finished; otherwise
    the slot its dependency freed goes to a story that could wait, and the critical path
    waits for the next slot. Held only while a dependency is finished with its result in
    hand (so its integration is under way or next), or its agent has ended and the result
    is being saved."""

    def coming(dep: s.StoryState) -> bool:
        if dep.status in ACTIVE_STORY:
            return dep.agent_ended
        return dep.status == "finished" and dep.result is not None

    out = []
    for st in rec.stories:
        deps = [by_id[d] for d in st.story.depends_on]
        if (
            st.status == "pending"
            and any(coming(dep) for dep in deps)
            and all(dep.status == "integrated" or coming(dep) for dep in deps)
        ):
            out.append(st)
    return out


def _dispatch(
    tr: Transition,
    st: s.StoryState,
    repair: list[s.RepairNote] | None = None,
    resume: s.Resume | None = None,
    base: str | None = None,
) -> None:
    """Send the story's next attempt: on the integration head, or on ``base`` (a repair
    turn goes on from an earlier attempt's result, on that attempt's base)."""
    rec = tr.record
    assert rec.mode is not None and rec.base_commit is not None
    share = run_budget.allowance(rec, st)
    if share is not None and share <= 0:
        st.status = "failed"
        st.reason = f"not run again: {run_budget.reached(rec)}"
        rec.budget_reached = True
        return
    run_budget.grant(st, share)
    st.attempt += 1
    st.dispatches += 1
    st.status = "assigned"
    st.agent_ended = False
    head = base or _start_head(rec, st)
    req = rec.request
    st.backend, st.model = agent_for(
        st.story, req.backend, req.model, [req.model_tiers, rec.model_tiers]
    )
    by_id = {other.story.id: other for other in rec.stories}
    delivered = [d for d in (by_id[dep].delivered for dep in st.story.depends_on) if d is not None]
    design = _design(rec)
    tr.send(
        s.RunStory(
            run_id=rec.run_id,
            story=st.story,
            attempt=st.attempt,
            goal=req.goal,
            mode=rec.mode,
            source=req.repo,
            base_commit=head,
            base_bundle=rec.integration_bundle if head != rec.base_commit else None,
            run_base=rec.base_commit,
            backend=st.backend,
            model=st.model,
            limits=req.limits,
            repair=list(repair or []),
            resume=resume,
            review=_reviewed(rec, st),
            agent_script=req.agent_script,
            resumes=rec.resumes,
            design_note=design.text if design is not None else None,
            delivered=delivered,
            nearby=list(st.nearby),
            token_allowance=share,
            interpretation=_interpretation(rec),
            follow_up=req.follow_up,
            envelope=rec.envelope,
        ),
        f"{rec.run_id}.run.{st.story.id}.{st.attempt}",
    )
    st.nearby = []


def _interpretation(rec: s.RunRecord) -> str | None:
    """The reading of a vague goal the agent works from (None for a concrete goal)."""
    decision = rec.decision
    return decision.interpretation if decision is not None and decision.vague else None


def _out_of_budget(tr: Transition) -> None:
    """Nothing is left of the run's token budget: the stories not started never will."""
    rec = tr.record
    rec.budget_reached = True
    for st in rec.stories:
        if st.status == "pending":
            st.status = "cancelled"
            st.reason = f"not started: {run_budget.reached(rec)}"
            _story_updated(tr, st)


def _by_priority(rec: s.RunRecord, stories: list[s.StoryState]) -> list[s.StoryState]:
    """Longest remaining chain of work first (``plan.critical_path``), then the bigger
    story, then plan order: the critical path never waits behind work that can wait;
    packed better where the plan's sizes show a shorter schedule (``start_order``)."""
    assert rec.caps is not None
    rank = start_ranks([st.story for st in rec.stories], rec.caps.parallelism)
    return sorted(stories, key=lambda st: rank[st.story.id])


# --------------------------------------------------------------------------- the review loop


def _setback_of(ev: s.StoryFinished) -> tuple[s.Setback, s.RepairNote, s.Resume | None]:
    """What a failed attempt was, what the next one is told, and where it starts: failing
    checks are repaired on the attempt's own result, anything else starts over."""
    if ev.exit_reason == "checks_failed" and ev.bundle and ev.head_commit:
        output = checks.failures_text(ev.checks)
        return (
            s.Setback(
                attempt=ev.attempt,
                kind="checks",
                signature=checks.signature(ev.checks),
                summary=f"its checks failed: {ev.error or ''}".strip(),
            ),
            s.RepairNote(
                kind="checks",
                text="Your previous attempt's change failed these checks, run in your "
                "workspace after you finished:\n\n"
                f"{output}\n\nMake them pass. Do not weaken, skip or delete the checks.",
            ),
            s.Resume(attempt=ev.attempt, bundle=ev.bundle, head=ev.head_commit),
        )
    what = _failure_reason(ev)
    return (
        s.Setback(
            attempt=ev.attempt,
            kind="agent",
            signature=f"agent:{ev.exit_reason or ev.status}:{_normalized(ev.error)}",
            summary=what,
        ),
        s.RepairNote(
            kind="failure",
            text=f"Your previous attempt ({ev.attempt}) {_attempt_ended(ev)}: {ev.error or ev.exit_reason}. "
            "This attempt starts again from the story's base: take another way, or a "
            "smaller step, so that it does not end the same way.",
        ),
        None,
    )


def _attempt_ended(ev: s.StoryFinished) -> str:
    return {
        "timeout": "ran out of time",
        "stalled": "stalled",
        "budget_exceeded": "ran out of tokens",
    }.get(ev.status, "failed")


def _normalized(text: str | None) -> str:
    """An error's first line without numbers, ids and paths' noise, for comparing two."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return re.sub(r"[0-9a-f]{7,}|\d+", "#", first.lower())[:160]


def _turns_allowed(rec: s.RunRecord, kind: s.SetbackKind) -> int:
    """How many setbacks of one kind a story may have and still try again."""
    return rec.request.limits.retries if kind == "agent" else 1


def _setback(
    tr: Transition,
    st: s.StoryState,
    setback: s.Setback,
    note: s.RepairNote,
    resume: s.Resume | None,
    final: str,
    at: float,
    now: float,
) -> None:
    """An attempt that did not count: try again with what went wrong in the prompt (on
    the attempt's own result when ``resume`` says so), or fail the story with ``final``.

    Another attempt is refused when the story had its turns for this kind of setback,
    when its retry budget is spent (a re-run for changes outside the write surface is
    not refused by the budget, like a re-run after a conflict), and when the failure
    repeats the one before it exactly (the same signature: it would only repeat again).
    """
    rec = tr.record
    before = st.setbacks[-1] if st.setbacks else None
    st.setbacks.append(setback)
    same_kind = sum(1 for x in st.setbacks if x.kind == setback.kind)
    budget = Budget.of(rec.request.limits, st.first_failure_at or at)
    refusal = None
    if same_kind > _turns_allowed(rec, setback.kind):
        refusal = ""
    elif setback.kind != "surface" and not budget.allows_retry(st.attempt, at):
        refusal = f"; not retried: {budget.spent(st.attempt, at)}"
    elif before is not None and before.signature == setback.signature:
        refusal = f"; not retried: attempt {before.attempt} failed the same way"
    if refusal is None:
        action: s.DecisionAction = "repair" if resume is not None else "retry"
        turn = "a repair turn on its result" if resume is not None else "trying again"
        st.reason = f"attempt {setback.attempt}: {setback.summary}; {turn}"
        _dispatch(tr, st, [note], resume, st.result.base_commit if resume and st.result else None)
        _decide(tr, action, st.reason, now, story=st)
        return
    replannable = setback.kind in REPLANNABLE and st.story.id != rec.run_repair
    if replannable and len(st.setbacks) >= 2 and _heals_left(rec):
        _ask_replan(tr, st, final + refusal, now)
        return
    st.status = "failed"
    st.finished_at = at
    st.reason = final + refusal


# --------------------------------------------------------------------------- replanning


def _heals_left(rec: s.RunRecord) -> bool:
    return rec.state != "cancelled" and rec.heals < rec.request.heals


def _room(rec: s.RunRecord) -> int:
    """How many stories one replanning may put in a story's place: one in a focused run
    (it stays one story), else what the run's story cap leaves, at most MAX_REPLACEMENTS."""
    if rec.mode == "focused" or rec.caps is None:
        return 1
    live = sum(1 for st in rec.stories if st.status != "replaced")
    return max(1, min(MAX_REPLACEMENTS, rec.caps.max_stories - live + 1))


def _ask_replan(tr: Transition, st: s.StoryState, why: str, now: float) -> None:
    """The story failed twice: ask the planner how to go on (one of the run's heals)."""
    rec = tr.record
    rec.heals += 1
    st.status = "replanning"
    st.failure = why
    st.reason = f"{why}; asking how to go on (replanning {rec.heals} of {rec.request.heals})"
    _send_replan(tr, st)
    _decide(tr, "replan", st.reason, now, story=st)


def _send_replan(tr: Transition, st: s.StoryState) -> None:
    rec = tr.record
    req = rec.request
    failures = [f"attempt {b.attempt}: {b.summary}" for b in st.setbacks]
    if st.result is not None and checks.failures_text(st.result.checks):
        failures.append("the last checks' output:\n" + checks.failures_text(st.result.checks))
    tr.send(
        s.ReplanStory(
            run_id=rec.run_id,
            story=st.story,
            round=rec.heals,
            goal=req.goal,
            mode=rec.mode or "focused",
            failures=failures,
            room=_room(rec),
            backend=req.backend,
            model=req.model,
            agent_script=req.agent_script,
        ),
        f"{rec.run_id}.replan.{rec.heals}",
    )


def _replacements(rec: s.RunRecord, old: s.StoryState, proposed: list[s.Story]) -> list[s.Story]:
    """The stories that take ``old``'s place, or PlanError: at most the room there is,
    each within ``old``'s write surface, under new ids, one after the other (each on what
    the one before integrated), after what ``old`` depended on."""
    room = _room(rec)
    if not 1 <= len(proposed) <= room:
        raise PlanError(f"{len(proposed)} stories in place of one; at most {room} fit here")
    ordered = _dependency_order(validate_plan(proposed))
    surface = old.story.write_surface
    taken = {st.story.id for st in rec.stories}
    stories: list[s.Story] = []
    for story in ordered:
        outside = [p for p in story.write_surface if surface and not covered(p, surface)]
        if outside:
            raise PlanError(
                f"{story.id} would change {', '.join(outside)}, outside {old.story.id}'s "
                f"write surface ({', '.join(surface)})"
            )
        number = len(stories) + 1
        while f"{old.story.id}-{number}" in taken:
            number += 1
        new_id = f"{old.story.id}-{number}"
        taken.add(new_id)
        before = [stories[-1].id] if stories else list(old.story.depends_on)
        stories.append(
            msgspec.structs.replace(
                story,
                id=new_id,
                depends_on=before,
                write_surface=list(story.write_surface or surface),
                acceptance=list(story.acceptance or old.story.acceptance),
                backend=old.story.backend,
                model=old.story.model,
            )
        )
    return stories


def _dependency_order(stories: list[s.Story]) -> list[s.Story]:
    """Stories in an order where each comes after what it depends on (validated: acyclic)."""
    placed: list[s.Story] = []
    done: set[str] = set()
    while len(placed) < len(stories):
        for story in stories:
            if story.id not in done and all(d in done for d in story.depends_on):
                placed.append(story)
                done.add(story.id)
    return placed


def _finished(tr: Transition, st: s.StoryState, at: float, now: float) -> None:
    """The story's attempt counts: it waits for its integration."""
    st.status = "finished"
    st.finished_at = at
    st.reason = None
    _story_updated(tr, st)
    _next_integration(tr)
    _schedule(tr, now)


def _nothing_to_integrate(tr: Transition, st: s.StoryState, at: float, now: float) -> None:
    """A story allowed to change nothing (registering new units the application finds by
    itself) that changed nothing: done, on the integration head as it is."""
    rec = tr.record
    st.status = "integrated"
    st.finished_at = at
    st.integration_commit = rec.integration_head or rec.base_commit
    st.reason = "nothing to change: its agent changed no file, which this story allows"
    st.delivered = s.Delivery(
        story_id=st.story.id, title=st.story.title, commit=st.integration_commit or "", files=[]
    )
    _story_updated(tr, st)
    _schedule(tr, now)


def _reviewed(rec: s.RunRecord, st: s.StoryState) -> bool:
    """Whether the critic reviews the story's successful attempts: when the run asks for
    reviews and the story has acceptance criteria to judge it by."""
    return rec.request.review_on and bool(st.story.acceptance)


def _ask_critic(tr: Transition, st: s.StoryState, ev: s.StoryFinished) -> None:
    rec = tr.record
    req = rec.request
    st.status = "reviewing"
    st.reason = "the critic reviews its change"
    tr.send(
        s.ReviewStory(
            run_id=rec.run_id,
            story=st.story,
            attempt=ev.attempt,
            goal=req.goal,
            diff=ev.diff or "",
            checks=ev.checks,
            backend=req.backend,
            model=req.model,
            agent_script=req.agent_script,
            resumes=rec.resumes,
        ),
        f"{rec.run_id}.review.{st.story.id}.{ev.attempt}",
    )
    _story_updated(tr, st)


def _decide(
    tr: Transition,
    action: s.DecisionAction,
    reason: str,
    now: float,
    *,
    story: s.StoryState | None = None,
    stories: list[str] | None = None,
) -> None:
    """Record a decision of the review loop and tell whoever watches the run."""
    rec = tr.record
    decision = s.Decision(
        at=now,
        action=action,
        reason=reason,
        story_id=story.story.id if story else None,
        attempt=story.attempt if story else None,
        stories=list(stories or []),
    )
    rec.decisions.append(decision)
    tr.send(s.RunDecision(run_id=rec.run_id, decision=decision))


def _next_integration(tr: Transition) -> None:
    """Integrate every finished story in one batch, once the batch before it is answered:
    the stories whose dependents wait on the longest chain of work first, then in the
    order they finished (then by id, so the order is the same however it is decided)."""
    rec = tr.record
    if rec.integrating_batch or rec.state == "cancelled":
        return
    waiting = [st for st in rec.stories if st.status == "finished" and st.result is not None]
    if not waiting:
        return
    chain = critical_path([st.story for st in rec.stories])

    def urgency(st: s.StoryState) -> tuple[float, float, str]:
        unlocks = chain[st.story.id] - (st.story.effort or 1.0)  # 0 for a story nobody waits on
        return (-unlocks, st.finished_at or 0.0, st.story.id)

    _integrate(tr, sorted(waiting, key=urgency))


def _integrate(tr: Transition, batch: list[s.StoryState]) -> None:
    rec = tr.record
    items = []
    for st in batch:
        res = st.result
        assert res is not None and res.bundle and res.head_commit and res.base_commit
        items.append(
            s.StoryToIntegrate(
                story=st.story,
                attempt=res.attempt,
                bundle=res.bundle,
                story_base=res.base_commit,
                head_commit=res.head_commit,
                agent=st.backend,
            )
        )
    rec.integrating_batch = [st.story.id for st in batch]
    attempts = ",".join(f"{item.story.id}:{item.attempt}" for item in items)
    tr.send(
        s.IntegrateStories(
            run_id=rec.run_id,
            stories=items,
            goal=rec.request.goal,
            mode=rec.mode,
            surface=rec.request.surface,
            head_bundle=_starts_after(rec, rec.integrating_batch),
        ),
        f"{rec.run_id}.integrate.{hashlib.sha256(attempts.encode()).hexdigest()[:16]}",
    )


def _start_head(rec: s.RunRecord, st: s.StoryState) -> str:
    """Where the story's next attempt starts: one that waits for nothing on the run's base
    when it is the first (nothing it needs is on the integration head, and its workspace is
    a plain clone) or no bundle was written yet; else the newest head with a bundle that
    holds every story it depends on (integration is linear: a head's bundle holds every
    earlier integration commit), which is the integration head unless the batches since
    wrote no bundle."""
    assert rec.base_commit is not None
    if not st.story.depends_on and (st.attempt == 1 or rec.integration_bundle is None):
        return rec.base_commit
    if rec.integration_bundle is not None and not set(st.story.depends_on) & set(rec.unbundled):
        return rec.bundle_head or rec.integration_head or rec.base_commit
    return rec.integration_head or rec.base_commit


def _starts_after(rec: s.RunRecord, batch: list[str]) -> bool:
    """Whether the batch's head needs its bundle: a story left becomes ready with it and
    depends on a story the newest bundle lacks (one of the batch's, or of the batches since
    that bundle), or the run gate's repair story may start from it (the merger writes one
    anyway when a story of the batch is to be re-run). Any other story's next attempt
    starts from the run's base or from the newest bundle (``_start_head``): writing and
    uploading a bundle of the whole run's work for every batch of a wide run cost the merger
    a third of its batch."""
    if rec.run_checks:
        return True
    landing = set(batch) | set(rec.unbundled)
    integrated = landing | {st.story.id for st in rec.stories if st.status == "integrated"}
    return any(
        st.status not in DONE_STORY
        and st.story.id not in batch
        and set(st.story.depends_on) & landing
        and set(st.story.depends_on) <= integrated
        for st in rec.stories
    )


def _deliver_or_fail(tr: Transition, now: float) -> None:
    """Every story is done: hand the run to the merger, which delivers what was integrated.

    Also when nothing was integrated: the merger then keeps every attempt's commits in the
    user's repository (after archiving those still in flight) and delivers no branch.
    """
    rec = tr.record
    rec.state = "integrating"
    checked = rec.gate is not None and rec.gate_head == rec.integration_head
    if rec.run_checks and rec.integration_head and rec.gate_rounds < 2 and not checked:
        rec.gate_rounds += 1
        rec.gating = True
        _send_gate(tr)
    else:
        _deliver(tr, now)


def _send_gate(tr: Transition) -> None:
    rec = tr.record
    assert rec.integration_head is not None
    tr.send(
        s.GateRun(
            run_id=rec.run_id,
            head=rec.integration_head,
            round=rec.gate_rounds,
            source=rec.request.repo,
        ),
        f"{rec.run_id}.gate.{rec.gate_rounds}",
    )


def partial_result(rec: s.RunRecord) -> s.Checkpoint | None:
    """What the integrated result lacks, when it is partial: some stories integrated and
    others not (failed, blocked, in conflict), an integrated story whose every change was
    left out, or run checks that still fail after the repair story. None when the result
    is complete, or when nothing was integrated (there is no result to deliver)."""
    integrated = [st.story.id for st in rec.stories if st.status == "integrated"]
    if not integrated:
        return None
    missing = []
    if rec.gate is not None and checks.verdict(rec.gate) == "failed":
        failing = "; ".join(checks.describe(c) for c in rec.gate if c.result == "failed")
        missing.append(f"the run's checks failed: {failing}")
    missing += [
        f"{st.story.id} {st.status}: {st.reason or ''}".strip()
        for st in rec.stories
        if st.status not in COMPLETE_STORY
    ]
    missing += [
        _left_out(st) for st in rec.stories if st.status == "integrated" and st.nothing_left
    ]
    if not missing:
        return None
    return s.Checkpoint(missing=missing, integrated=integrated, deliver=rec.request.checkpoint)


def _deliver(tr: Transition, now: float) -> None:
    rec = tr.record
    req = rec.request
    decided = rec.checkpoint
    rec.checkpoint = partial_result(rec)
    if rec.checkpoint is not None and rec.checkpoint != decided:  # not again on a resume
        how = (
            "delivered as a checkpoint branch, marked partial and not published"
            if rec.checkpoint.deliver
            else "not delivered as a branch (--no-checkpoint)"
        )
        _decide(
            tr,
            "checkpoint",
            f"the result is partial ({'; '.join(rec.checkpoint.missing)}): {how}",
            now,
        )
    tr.send(
        s.DeliverRun(
            run_id=rec.run_id,
            goal=req.goal,
            slug=req.slug or req.goal,
            repo=req.repo,
            publish=req.publish,
            mode=rec.mode or "focused",
            continue_branch=req.continue_branch,
            summary_markdown=summary_markdown(rec),
            gate=rec.gate,
            checkpoint=rec.checkpoint,
        ),
        f"{rec.run_id}.deliver",
    )


def _finish(tr: Transition, status: s.RunState, reason: str | None, now: float) -> None:
    rec = tr.record
    if rec.budget_reached:  # lead with it: it is why the rest did not happen
        reason = run_budget.reached(rec) + (f"; {reason}" if reason else "")
    rec.state = status
    rec.reason = reason
    rec.finished_at = now
    rec.integrating_batch = []
    rec.totals = run_totals(rec, now)
    tr.send(
        s.RunFinished(run_id=rec.run_id, status=status, reason=reason, totals=rec.totals),
        f"{rec.run_id}.finished",
    )


def _story_updated(tr: Transition, st: s.StoryState) -> None:
    rec = tr.record
    tr.send(
        s.StoryUpdated(
            run_id=rec.run_id,
            story_id=st.story.id,
            status=st.status,
            attempt=st.attempt,
            reason=st.reason,
        ),
        f"{rec.run_id}.story.{st.story.id}.{st.attempt}.{st.status}",
    )


def summary_markdown(rec: s.RunRecord) -> str:
    """The PR body / run report: mode and reason, stories table, totals."""
    d = rec.decision
    lines = [f"**Goal:** {rec.request.goal.strip()[:500]}", ""]
    if rec.mode:
        conf = (
            f" ({d.confidence:.0%} confident)"
            if d and rec.mode_source in ("offline", "llm")
            else ""
        )
        why = f" — {d.reason}" if d else ""
        lines.append(f"**Mode:** {rec.mode}{conf}, decided by {rec.mode_source}{why}")
    if d and d.vague:
        lines.append(f"**Vague goal, read as:** {d.interpretation}")
    if rec.checkpoint is not None:
        lines += ["", "**Partial result (a checkpoint, not the whole goal).** Not in it:"]
        lines.extend(f"- {line}" for line in rec.checkpoint.missing)
    clarified = clarification_markdown(rec.clarification, rec.envelope, heading="####")
    lines += ["", *clarified[:-1]] if clarified else []
    if rec.enforcement:
        lines.append("")
        lines.append("**Plan enforcement:**")
        lines.extend(f"- {n}" for n in rec.enforcement)
    if rec.design is not None and _design(rec) is not None:
        source = "a model" if rec.design.source == "model" else "the planner"
        lines += ["", f"**Design note** (by {source}, shared by every story):", ""]
        lines += [f"> {line}" if line else ">" for line in rec.design.text.splitlines()]
    lines += [
        "",
        "| story | status | agent | duration | tokens (in/cached/out) | cost |",
        "|---|---|---|---|---|---|",
    ]
    for st in rec.stories:
        dur = (st.finished_at - st.started_at) if st.finished_at and st.started_at else None
        t = st.tokens
        tok = f"{t.input if t.input is not None else '?'}/{t.cached_input if t.cached_input is not None else '?'}/{t.output if t.output is not None else '?'}"
        agent = f"{st.backend or '-'}{f' {st.model}' if st.model else ''}"
        lines.append(
            f"| {st.story.id} {st.story.title[:60]} | {st.status} | {agent} | {f'{dur:.1f}s' if dur else '-'} | {tok} | {dollars(t.cost_usd)} |"
        )
    tot = run_totals(rec, rec.updated_at)
    t = tot.tokens
    lines += [
        "",
        f"**Tokens:** input {t.input or 0}, cached {t.cached_input or 0}, output {t.output or 0}; "
        f"cost {dollars(t.cost_usd)}",
        f"**Wall-clock:** {tot.wall_s:.1f}s, **summed agent time:** {tot.agent_s:.1f}s"
        + (f", speedup {tot.speedup:.2f}x" if tot.speedup else ""),
    ]
    return "\n".join(lines)
