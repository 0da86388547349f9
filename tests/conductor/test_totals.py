"""The run's figures (baro_shared.totals): one definition, the same in every view.

Summed agent time is every attempt's agent process time; speedup is that over the
wall-clock; tokens and their price add up per story and per run, and a price nobody
reported stays unknown instead of becoming $0.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baro_conductor.observe import active_runs, runs_active, transition
from baro_intake import api_views
from baro_merger.prbody import totals_table
from baro_shared import schemas as s
from baro_shared.totals import run_totals, speedup
from tests.conductor.test_core import RUN, Driver, finish, integrated, started_to_plan, submitted


def stories(*ids: str, chained: bool = False) -> list[s.Story]:
    return [
        s.Story(
            id=sid,
            title=f"story {sid}",
            depends_on=[ids[i - 1]] if chained and i else [],
            write_surface=[f"{sid.lower()}.txt"],
        )
        for i, sid in enumerate(ids)
    ]


def deliver(d: Driver) -> s.RunFinished:
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-last"))
    (fin,) = d.commands(s.RunFinished)
    return fin


def assert_identity(totals: s.Totals, attempts: list[s.StoryFinished]) -> None:
    assert totals.agent_s == round(sum(a.agent_seconds for a in attempts), 3)
    assert totals.speedup == round(totals.agent_s / totals.wall_s, 3)


def test_sequential_run_speedup_is_agent_time_over_wall_clock() -> None:
    d = Driver()
    started_to_plan(d, stories("S1", "S2", chained=True), mode="sequential")
    attempts = [finish("S1", agent_seconds=1.5), finish("S2", agent_seconds=2.5)]
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"))
    d.feed(attempts[0])
    d.feed(integrated("S1"))
    d.feed(s.StoryStarted(run_id=RUN, story_id="S2", attempt=1, runner="x"))
    d.feed(attempts[1])
    d.feed(integrated("S2"))
    fin = deliver(d)
    assert fin.totals.wall_s == d.clock - d.rec.created_at
    assert_identity(fin.totals, attempts)
    assert fin.totals.speedup is not None and fin.totals.speedup < 1  # one agent at a time


def test_parallel_agents_add_up_past_the_wall_clock() -> None:
    d = Driver()
    started_to_plan(d, stories("A", "B", "C"), mode="parallel", par=3)
    assert len(d.commands(s.RunStory)) == 3
    attempts = [finish(sid, agent_seconds=9.0) for sid in "ABC"]
    for sid in "ABC":
        d.feed(s.StoryStarted(run_id=RUN, story_id=sid, attempt=1, runner="x"))
    for attempt in attempts:
        d.feed(attempt)
    for sid in "ABC":
        d.feed(integrated(sid))
    fin = deliver(d)
    assert_identity(fin.totals, attempts)
    assert fin.totals.speedup is not None and fin.totals.speedup > 1


def test_every_attempt_counts_retried_and_stale_ones_too() -> None:
    d = Driver()
    started_to_plan(d, stories("S1"))
    first = finish(
        "S1", status="failed", exit_reason="agent_error", agent_seconds=3.25,
        tokens=s.TokenUsage(input=100, output=10, cost_usd=0.125),
    )  # fmt: skip
    second = finish(
        "S1", attempt=2, agent_seconds=4.5, tokens=s.TokenUsage(input=200, output=20, cost_usd=0.25)
    )
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"))
    d.feed(first)
    assert len(d.commands(s.RunStory)) == 2, "the agent's own failure is retried"
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=2, runner="x"))
    d.feed(second)
    d.feed(first)  # delivered again: counted once
    d.feed(integrated("S1", attempt=2))
    fin = deliver(d)
    assert_identity(fin.totals, [first, second])
    story = d.rec.story("S1")
    assert story is not None and story.agent_seconds == 7.75
    assert story.tokens == s.TokenUsage(input=300, output=30, cost_usd=0.375)
    assert fin.totals.tokens.cost_usd == 0.375


def test_a_price_nobody_reported_is_unknown_not_zero() -> None:
    d = Driver()
    started_to_plan(d, stories("A", "B"), mode="parallel", par=2)
    priced = finish("A", tokens=s.TokenUsage(input=100, output=10, cost_usd=0.5))
    unpriced = finish("B", tokens=s.TokenUsage(input=100, output=10))  # e.g. Codex
    for attempt in (priced, unpriced):
        d.feed(s.StoryStarted(run_id=RUN, story_id=attempt.story_id, attempt=1, runner="x"))
        d.feed(attempt)
    d.feed(integrated("A"))
    d.feed(integrated("B"))
    fin = deliver(d)
    assert fin.totals.tokens.cost_usd == 0.5  # what was reported, not a guess for B
    b = d.rec.story("B")
    assert b is not None and b.tokens.cost_usd is None
    view = api_views.detail(d.rec)
    assert [st.tokens.cost_usd for st in view.stories] == [0.5, None]

    alone = Driver()
    started_to_plan(alone, stories("S1"))
    alone.feed(finish("S1", tokens=s.TokenUsage(input=100, output=10)))
    alone.feed(integrated("S1"))
    fin = deliver(alone)
    assert fin.totals.tokens.cost_usd is None
    assert api_views.totals_out(alone.rec).tokens.cost_usd is None
    assert "| ? | " in "\n".join(totals_table(alone.rec, alone.clock))


def test_every_view_shows_the_record_s_figures() -> None:
    d = Driver()
    started_to_plan(d, stories("S1"))
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"))
    d.feed(finish("S1", agent_seconds=2.0, tokens=s.TokenUsage(input=7, output=3, cost_usd=0.01)))
    # while it runs: the record's figures are as of its last transition, the API's as of now
    running = d.rec.totals
    assert running == run_totals(d.rec, d.rec.updated_at)
    later = api_views.totals_out(d.rec, now=d.rec.updated_at + 10)
    assert later.wall_s == running.wall_s + 10 and later.agent_s == running.agent_s
    d.feed(integrated("S1"))
    fin = deliver(d)
    view = api_views.totals_out(d.rec, now=d.clock + 1000)  # a finished run's figures stay
    assert (view.wall_s, view.agent_s, view.speedup) == (
        fin.totals.wall_s,
        fin.totals.agent_s,
        fin.totals.speedup,
    )
    assert view.tokens.cost_usd == fin.totals.tokens.cost_usd == 0.01
    assert d.rec.totals == fin.totals


@settings(max_examples=60, deadline=None)
@given(
    seconds=st.lists(st.floats(min_value=0.0, max_value=500.0), min_size=1, max_size=6),
    costs=st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=5)), min_size=6),
)
def test_summed_agent_time_is_the_attempts_and_speedup_its_ratio(
    seconds: list[float], costs: list[float | None]
) -> None:
    d = Driver()
    started_to_plan(d, stories("S1"))
    attempts = []
    for n, secs in enumerate(seconds, start=1):
        last = n == len(seconds)
        attempt = finish(
            "S1",
            attempt=n,
            status="success" if last else "retryable",
            agent_seconds=secs,
            tokens=s.TokenUsage(input=10, output=1, cost_usd=costs[n - 1]),
        )
        attempts.append(attempt)
        d.feed(attempt)
    totals = d.rec.totals
    assert totals.agent_s == round(sum(seconds), 3)
    assert totals.speedup == speedup(totals.agent_s, totals.wall_s)
    if totals.speedup is not None:
        assert totals.speedup == round(totals.agent_s / totals.wall_s, 3)
    known = [c for c in costs[: len(seconds)] if c is not None]
    if known:
        assert totals.tokens.cost_usd == pytest.approx(sum(known), abs=1e-8)
    else:
        assert totals.tokens.cost_usd is None


def test_runs_active_comes_from_the_records_after_a_restart() -> None:
    d = Driver()
    d.feed(submitted())
    before_restart = d.rec
    active_runs([before_restart])  # a new conductor reads the records
    assert runs_active._value.get() == 1
    d.feed(s.CancelRequested(run_id=RUN))
    transition(before_restart, d.rec, s.CancelRequested(run_id=RUN))
    assert runs_active._value.get() == 0, "a run finished after a restart never reads -1"
    active_runs([])
    transition(None, before_restart, submitted())
    transition(before_restart, d.rec, s.CancelRequested(run_id=RUN))
    transition(before_restart, d.rec, s.CancelRequested(run_id=RUN))  # a second conductor
    assert runs_active._value.get() == 0
