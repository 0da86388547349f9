"""Prometheus series the conductor owns, updated from committed transitions only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from baro_shared import schemas as s
from baro_shared.metrics import RUN_SECONDS_BUCKETS

runs_submitted = Counter(
    "baro_runs_submitted_total", "Runs accepted by the conductor", ["mode_request"]
)
runs_finished = Counter(
    "baro_runs_finished_total", "Runs that reached a final state", ["mode", "status"]
)
runs_active = Gauge("baro_runs_active", "Runs not yet in a final state, from the run records")
run_wall = Histogram(
    "baro_run_wall_seconds",
    "Wall-clock from submit to final state",
    ["mode"],
    buckets=RUN_SECONDS_BUCKETS,
)
run_agent = Histogram(
    "baro_run_agent_seconds", "Summed agent time of a run", ["mode"], buckets=RUN_SECONDS_BUCKETS
)
run_speedup = Histogram(
    "baro_run_speedup_ratio",
    "Summed agent time divided by the run's wall-clock",
    ["mode"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 6, 8, 12, 16),
)
run_tokens = Counter(
    "baro_run_tokens_total", "Tokens of finished runs by kind and mode", ["mode", "kind"]
)
run_cost = Counter(
    "baro_run_cost_usd_total",
    "US dollars the backends reported for finished runs, by mode",
    ["mode"],
)
stories_finished = Counter(
    "baro_stories_finished_total", "Stories that reached a final status", ["status", "backend"]
)
story_duration = Histogram(
    "baro_story_duration_seconds",
    "From an agent's start to the story's final status",
    ["backend"],
    buckets=RUN_SECONDS_BUCKETS,
)
plan_repairs = Counter(
    "baro_plan_repairs_total", "Enforcement notes recorded on accepted plans", ["mode"]
)

mode_decisions = Counter(
    "baro_mode_decisions_total",
    "Modes runs were confirmed in, by who decided (offline, llm, user, flag)",
    ["mode", "source"],
)

FINAL_STORY = ("integrated", "failed", "blocked", "conflict", "cancelled", "replaced")

# Runs not in a final state. A gauge moved up and down by transitions would drift after a
# restart (a run submitted before it and finished after reads -1), so the set is rebuilt
# from the run records when the conductor starts and kept by every committed transition.
_active: set[str] = set()


def active_runs(records: list[s.RunRecord]) -> None:
    """Start from what the run records say."""
    _active.clear()
    _active.update(r.run_id for r in records if r.state not in s.TERMINAL_RUN_STATES)
    runs_active.set(len(_active))


def transition(old: s.RunRecord | None, new: s.RunRecord, event: s.Event) -> None:
    if new.mode and new.mode_source and (old is None or old.mode_source is None):
        mode_decisions.labels(mode=new.mode, source=new.mode_source).inc()
    if old is None:
        runs_submitted.labels(mode_request=new.request.mode_request).inc()
    if new.state in s.TERMINAL_RUN_STATES:
        _active.discard(new.run_id)
    else:
        _active.add(new.run_id)
    runs_active.set(len(_active))
    if old is not None and not old.stories and new.stories and new.enforcement:
        plan_repairs.labels(mode=new.mode or "focused").inc(len(new.enforcement))
    backend = new.request.backend
    before = {st.story.id: st.status for st in (old.stories if old else [])}
    for st in new.stories:
        if st.status in FINAL_STORY and before.get(st.story.id) != st.status:
            stories_finished.labels(status=st.status, backend=backend).inc()
            if st.started_at and st.finished_at:
                story_duration.labels(backend=backend).observe(
                    max(0.0, st.finished_at - st.started_at)
                )
    was_final = old is not None and old.state in s.TERMINAL_RUN_STATES
    if new.state in s.TERMINAL_RUN_STATES and not was_final:
        mode = new.mode or "focused"
        runs_finished.labels(mode=mode, status=new.state).inc()
        tot = new.totals
        run_wall.labels(mode=mode).observe(tot.wall_s)
        run_agent.labels(mode=mode).observe(tot.agent_s)
        if tot.speedup:
            run_speedup.labels(mode=mode).observe(tot.speedup)
        for kind, value in (
            ("input", tot.tokens.input),
            ("cached_input", tot.tokens.cached_input),
            ("output", tot.tokens.output),
            ("reasoning", tot.tokens.reasoning),
        ):
            if value:
                run_tokens.labels(mode=mode, kind=kind).inc(value)
        if tot.tokens.cost_usd is not None:  # unknown stays unknown, never a 0
            run_cost.labels(mode=mode).inc(tot.tokens.cost_usd)
