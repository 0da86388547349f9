"""What the API (and `baro status --json`) shows of a run: pure functions of the run record.

A run the conductor has not recorded yet (it was just submitted) is shown from its
RunSubmitted event, as a record in state ``submitted``. Repository URLs never show
credentials, and every other text goes through the redactor (``redact.scrub``) on its
way out, whatever the record holds (it may predate the redaction of its events).
"""

from __future__ import annotations

import time

import msgspec

from baro_intake import api_models as m
from baro_shared import schemas as s
from baro_shared.redact import scrub
from baro_shared.runstream import WatchedEvent
from baro_shared.sources import redact_url
from baro_shared.totals import run_totals

GOAL_LINE_MAX = 200


def links(run_id: str) -> m.Links:
    base = f"/v1/runs/{run_id}"
    return m.Links(
        self=base,
        events=f"{base}/events",
        mode=f"{base}/mode",
        cancel=f"{base}/cancel",
        answers=f"{base}/answers",
    )


def pending_record(request: s.RunSubmitted) -> s.RunRecord:
    """The record a just-submitted run will get, before the conductor writes it."""
    return s.RunRecord(
        run_id=request.run_id, request=request, created_at=request.ts, updated_at=request.ts
    )


def repo_out(repo: s.RepoSource) -> m.RepoOut:
    location = redact_url(repo.location) if repo.kind == "url" else repo.location
    return m.RepoOut(kind=repo.kind, location=location, commit=repo.commit, ref=repo.ref)


def tokens_out(tokens: s.TokenUsage) -> m.Tokens:
    return m.Tokens(
        input=tokens.input,
        cached_input=tokens.cached_input,
        output=tokens.output,
        reasoning=tokens.reasoning,
        cost_usd=tokens.cost_usd,
    )


def first_line(goal: str) -> str:
    line = goal.strip().splitlines()[0] if goal.strip() else ""
    return line if len(line) <= GOAL_LINE_MAX else line[: GOAL_LINE_MAX - 1] + "…"


def summary(rec: s.RunRecord) -> m.RunSummary:
    rec = scrub(rec)
    return m.RunSummary(
        run_id=rec.run_id,
        goal=first_line(rec.request.goal),
        state=rec.state,
        mode=rec.mode,
        repo=repo_out(rec.request.repo),
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        finished_at=rec.finished_at,
        branch=rec.delivered.branch if rec.delivered else None,
        reason=rec.reason,
        interrupted=interrupted_out(rec.interrupted),
        tokens=totals_out(rec).tokens,
    )


def interrupted_out(found: s.Interruption | None) -> m.InterruptedOut | None:
    return m.InterruptedOut(at=found.at, reason=found.reason) if found else None


def mode_out(rec: s.RunRecord) -> m.ModeOut:
    d = rec.decision
    source = rec.mode_source
    if source is None and d is not None:
        source = d.source
    return m.ModeOut(
        mode=rec.mode,
        suggested=d.mode if d else None,
        confidence=d.confidence if d else None,
        reason=d.reason if d else None,
        source=source,
        vague=d.vague if d else False,
        interpretation=d.interpretation if d else None,
        awaiting_confirmation=rec.state == "awaiting_confirmation",
    )


def story_out(st: s.StoryState) -> m.StoryOut:
    return m.StoryOut(
        id=st.story.id,
        title=st.story.title,
        status=st.status,
        attempt=st.attempt,
        depends_on=list(st.story.depends_on),
        write_surface=list(st.story.write_surface),
        reason=st.reason,
        tokens=tokens_out(st.tokens),
        agent_s=round(st.agent_seconds, 3),
        integration_commit=st.integration_commit,
        conflict_paths=list(st.conflict_paths),
        dropped_artifacts=list(st.dropped_artifacts),
        refused=[m.RefusalOut(path=r.path, rule=r.rule, reason=r.reason) for r in st.refused],
        surface_violations=list(st.surface_violations),
        surface_policy=st.surface_policy,
        rejections=st.rejections,
        checks=[check_out(c) for c in st.result.checks] if st.result else [],
    )


def check_out(check: s.CheckResult) -> m.CheckOut:
    return m.CheckOut.model_validate(msgspec.to_builtins(check) | {"origin": check.origin})


def decision_out(decision: s.Decision) -> m.DecisionOut:
    return m.DecisionOut.model_validate(msgspec.to_builtins(decision))


def totals_out(rec: s.RunRecord, now: float | None = None) -> m.TotalsOut:
    """The run's figures (``baro_shared.totals``): final once it finished, as of ``now``
    while it runs."""
    t = run_totals(rec, time.time() if now is None else now)
    return m.TotalsOut(
        tokens=tokens_out(t.tokens),
        wall_s=t.wall_s,
        agent_s=t.agent_s,
        speedup=t.speedup,
        stories=t.stories,
        stories_integrated=t.stories_integrated,
    )


def delivered_out(d: s.RunDelivered | None) -> m.DeliveredOut | None:
    if d is None:
        return None
    return m.DeliveredOut(
        branch=d.branch,
        base=d.base,
        head=d.head,
        commits=d.commits,
        files_changed=list(d.files_changed),
        dropped_artifacts=list(d.dropped_artifacts),
        published=d.published,
        publish_note=d.publish_note,
        pr_url=d.pr_url,
        result_bundle=d.result_bundle,
        verify=d.verify,
        checks=[check_out(c) for c in d.checks],
        partial=d.partial,
    )


def checkpoint_out(c: s.Checkpoint | None) -> m.CheckpointOut | None:
    if c is None:
        return None
    return m.CheckpointOut(
        missing=list(c.missing), integrated=list(c.integrated), delivered=c.deliver
    )


def detail(rec: s.RunRecord, now: float | None = None) -> m.RunDetail:
    rec = scrub(rec)
    req = rec.request
    lim = req.limits
    return m.RunDetail(
        run_id=rec.run_id,
        goal=req.goal,
        state=rec.state,
        reason=rec.reason,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        finished_at=rec.finished_at,
        repo=repo_out(req.repo),
        request=m.RequestOut(
            mode_request=req.mode_request,
            backend=req.backend,
            model=req.model,
            confirm=req.confirm,
            clarify=req.clarify,
            publish=req.publish,
            surface=req.surface,
            review=req.review_on,
            checkpoint=req.checkpoint,
            limits=m.LimitsOut(
                max_stories=lim.max_stories,
                parallelism=lim.parallelism,
                token_budget=lim.token_budget,
                run_token_budget=lim.run_token_budget,
                story_timeout_s=lim.story_timeout_s,
                stall_timeout_s=lim.stall_timeout_s,
                retries=lim.retries,
                max_attempts=lim.max_attempts,
                retry_window_s=lim.retry_window_s,
                heals=lim.heals,
            ),
            submitted_by=req.submitted_by,
        ),
        mode=mode_out(rec),
        clarification=(
            m.ClarificationOut.model_validate(msgspec.to_builtins(rec.clarification))
            if rec.clarification is not None
            else None
        ),
        envelope=(
            m.EnvelopeOut.model_validate(msgspec.to_builtins(rec.envelope))
            if rec.envelope is not None
            else None
        ),
        stories=[story_out(st) for st in rec.stories],
        enforcement=list(rec.enforcement),
        decisions=[decision_out(d) for d in rec.decisions],
        totals=totals_out(rec, now),
        delivered=delivered_out(rec.delivered),
        checkpoint=checkpoint_out(rec.checkpoint),
        interrupted=interrupted_out(rec.interrupted),
        links=links(rec.run_id),
    )


def public_event(event: WatchedEvent) -> WatchedEvent:
    """The event as a client may see it: redacted (an agent's event too: the runner
    redacts it before publishing, this process masks its own secrets as well), a
    submitted run's URL without credentials."""
    if isinstance(event, s.RunSubmitted) and event.repo.kind == "url":
        repo = msgspec.structs.replace(event.repo, location=redact_url(event.repo.location))
        return msgspec.structs.replace(event, repo=repo)
    return scrub(event)


class RunChanged(msgspec.Struct, kw_only=True):
    """What ``GET /v1/events`` says of one run's event: which run, what happened, when."""

    run_id: str
    type: str
    ts: float


def run_changed(event: s.Event) -> RunChanged:
    return RunChanged(run_id=event.run_id, type=event.__struct_config__.tag, ts=event.ts)
