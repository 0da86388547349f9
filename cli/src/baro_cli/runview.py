"""What a watcher knows of a run at any moment: a pure fold of its event stream.

The terminal view draws this; it is built from exactly the events ``--events`` prints
and the API streams (``baro_shared.runstream``), so every view of a run agrees. Figures
are the events' own: a story's tokens are its finished attempts' (``story.finished``)
plus, while an attempt runs, the usage its agent has reported so far; the run's
wall-clock, agent time and speedup are ``run.finished``'s.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from baro_shared import schemas as s
from baro_shared.runstream import WatchedEvent

EXCERPT = 400
NOTES_KEPT = 6


@dataclass
class StoryView:
    id: str
    title: str = ""
    depends_on: list[str] = field(default_factory=list)
    status: str = "pending"
    attempt: int = 0
    backend: str | None = None
    model: str | None = None
    started_at: float | None = None  # the current attempt's start
    finished_at: float | None = None  # the current attempt's end (None while it runs)
    tokens: s.TokenUsage = field(default_factory=s.TokenUsage)  # finished attempts
    running_tokens: s.TokenUsage = field(default_factory=s.TokenUsage)  # the attempt on now
    cost_usd: float | None = None  # what the agents reported, over every attempt
    last_action: str = ""
    outside: list[str] = field(default_factory=list)  # changed outside its write surface
    refused: int = 0
    rejected: bool = False
    integrated_with_outside: bool = False

    @property
    def spent(self) -> s.TokenUsage:
        return self.tokens + self.running_tokens

    def elapsed(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, (self.finished_at or now) - self.started_at)

    def surface(self) -> str:
        """The merger's verdict on its write surface, in a few words."""
        parts = []
        if self.outside:
            fate = (
                "rejected"
                if self.rejected and not self.integrated_with_outside
                else "integrated anyway"
            )
            parts.append(f"{len(self.outside)} outside ({fate})")
        if self.refused:
            parts.append(f"{self.refused} refused")
        if parts:
            return ", ".join(parts)
        return "ok" if self.status == "integrated" else ""


@dataclass
class RunView:
    run_id: str = ""
    goal: str = ""
    submitted_at: float | None = None
    phase: str = "submitted"
    mode: str | None = None
    confidence: float | None = None
    mode_reason: str | None = None
    mode_source: str | None = None
    interpretation: str | None = None
    stories: dict[str, StoryView] = field(default_factory=dict)
    enforcement: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    branch: str | None = None
    pr_url: str | None = None
    publish_note: str | None = None
    status: str | None = None  # the run's final status
    reason: str | None = None
    totals: s.Totals | None = None  # run.finished's
    latest: float | None = None  # the newest event's time
    notes: deque[str] = field(default_factory=lambda: deque(maxlen=NOTES_KEPT))

    @property
    def finished(self) -> bool:
        return self.status is not None

    def story(self, sid: str) -> StoryView:
        if sid not in self.stories:
            self.stories[sid] = StoryView(id=sid)
        return self.stories[sid]

    def wall_s(self, now: float) -> float:
        if self.totals is not None:
            return self.totals.wall_s
        return max(0.0, now - self.submitted_at) if self.submitted_at else 0.0

    def spent(self) -> s.TokenUsage:
        if self.totals is not None:
            return self.totals.tokens
        total = s.TokenUsage()
        for st in self.stories.values():
            total = total + st.spent
        return total


def apply(view: RunView, event: WatchedEvent) -> None:
    """Fold one event of the run into ``view``."""
    view.latest = max(view.latest or event.ts, event.ts)
    if isinstance(event, s.AgentEventMsg):
        _agent(view, event)
        return
    match event:
        case s.RunSubmitted(run_id=run_id, goal=goal, ts=ts):
            view.run_id, view.goal, view.submitted_at = run_id, goal, ts
        case s.IntakeDecided(decision=d):
            view.phase = "awaiting confirmation"
            view.mode, view.confidence, view.mode_reason = d.mode, d.confidence, d.reason
            view.mode_source = d.source
            view.interpretation = d.interpretation if d.vague else None
        case s.ModeConfirmed(mode=mode, source=source, decided_by=decided_by):
            view.phase = "planning"
            view.mode = mode
            view.mode_source = decided_by or (source if source != "intake" else view.mode_source)
        case s.PlanAccepted(mode=mode, stories=stories, enforcement=notes):
            view.phase, view.mode = "running", mode
            view.enforcement = list(notes)
            for story in stories:
                st = view.story(story.id)
                st.title, st.depends_on = story.title, list(story.depends_on)
        case s.StoryStarted(story_id=sid, attempt=attempt, ts=ts, backend=backend, model=model):
            st = view.story(sid)
            st.status, st.attempt = "running", max(st.attempt, attempt)
            st.started_at, st.finished_at = ts, None
            st.backend, st.model = backend or st.backend, model or st.model
            st.running_tokens = s.TokenUsage()
        case s.StoryFinished(story_id=sid, ts=ts, tokens=tokens, status=status, error=error):
            st = view.story(sid)
            st.finished_at = ts
            st.tokens = st.tokens + tokens
            st.running_tokens = s.TokenUsage()
            st.status = "finished" if status == "success" else status
            if error:
                st.last_action = f"{status}: {flat(error)}"
        case s.StoryUpdated(story_id=sid, status=status, attempt=attempt):
            st = view.story(sid)
            st.status, st.attempt = status, max(st.attempt, attempt)
        case s.StoryIntegrated(story_id=sid) as ev:
            st = view.story(sid)
            st.status = "integrated"
            st.outside, st.refused = list(ev.surface_violations), len(ev.refused)
            st.integrated_with_outside = bool(ev.surface_violations)
            view.dropped += [p for p in ev.dropped_artifacts if p not in view.dropped]
        case s.StoryRejected(story_id=sid) as ev:
            st = view.story(sid)
            st.outside, st.refused, st.rejected = list(ev.surface_violations), len(ev.refused), True
        case s.MergeConflict(story_id=sid, paths=paths):
            view.story(sid).last_action = f"conflict in {', '.join(paths)}"
        case s.RunDelivered() as d:
            view.phase = "delivered"
            view.branch, view.pr_url, view.publish_note = d.branch, d.pr_url, d.publish_note
            view.dropped += [p for p in d.dropped_artifacts if p not in view.dropped]
        case s.RunInterrupted():
            view.phase = "interrupted"
        case s.RunResumed():
            view.phase = "running"
        case s.RunFinished(status=status, reason=reason, totals=totals):
            view.status, view.reason, view.totals = status, reason, totals
            view.phase = status
        case _:
            pass


def _agent(view: RunView, msg: s.AgentEventMsg) -> None:
    st = view.story(msg.story_id)
    if msg.attempt < st.attempt:
        return  # a superseded attempt's late events
    match msg.event:
        case s.Usage(usage=usage, cost_usd=cost):
            st.running_tokens = st.running_tokens + usage
            if cost is not None:
                st.cost_usd = (st.cost_usd or 0.0) + cost
        case other:
            st.last_action = agent_action(other)


def agent_action(event: s.NormalizedEvent) -> str:
    """One line for one normalized agent event."""
    match event:
        case s.SessionStarted(session_id=sid, model=model):
            return f"session {sid}" + (f" ({model})" if model else "")
        case s.AssistantText(text=text):
            return f"text: {flat(text)}"
        case s.Thinking(text=text):
            return f"thinking: {flat(text)}"
        case s.ToolStarted(name=name, input=given):
            return f"tool {name} started: {flat(given)}"
        case s.ToolFinished(name=name, ok=ok, output=output):
            return f"tool {name or '?'} {'ok' if ok else 'failed'}: {flat(output)}"
        case s.FileChanged(path=path, change=change):
            return f"file {change}: {path}"
        case s.CommandRun(command=command, exit_code=code, output=output):
            shown = f"command {flat(command)} -> exit {'?' if code is None else code}"
            return shown + (f": {flat(output)}" if output and code else "")
        case s.Usage(usage=tok, cost_usd=cost):
            spent = (
                f"tokens in {_n(tok.input)} (cached {_n(tok.cached_input)}) out {_n(tok.output)}"
            )
            return spent + (f", ${cost:.4f}" if cost is not None else "")
        case s.AgentError(message=message, retryable=retryable, status=status):
            kind = "retryable" if retryable else "not retryable"
            code = f" {status}" if status else ""
            return f"error{code} ({kind}): {flat(message)}"
        case s.AgentFinished(ok=ok, error=error):
            return "finished: " + ("ok" if ok else f"failed: {flat(error or '')}")
    return generic(event)


def generic(event: msgspec.Struct) -> str:
    """An event no view knows by name: its type and its fields, in one line."""
    fields: dict[str, Any] = msgspec.to_builtins(event)  # type: ignore[assignment]
    tag = fields.pop("type", None) or fields.pop("kind", None) or type(event).__name__
    for known in ("v", "run_id", "ts"):
        fields.pop(known, None)
    body = ", ".join(f"{k}={msgspec.json.encode(v).decode()}" for k, v in fields.items())
    return flat(f"{tag}" + (f": {body}" if body else ""))


def flat(text: str, limit: int = EXCERPT) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)
