"""One retry budget per story: the pure budget and the conductor's decisions under it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from baro_shared import schemas as s
from baro_shared.retry import MAX_DELAY_S, Budget

from .test_core import RUN, Driver, finish, submitted

T = 5000.0


def budget(attempts: int = 4, window: float = 60.0, since: float = T) -> Budget:
    return Budget.of(s.Limits(max_attempts=attempts, retry_window_s=window), since)


def test_backoff_doubles_and_stops_at_the_window() -> None:
    b = budget(attempts=10, window=100.0)
    assert [b.delay(n, T, 5.0) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert b.delay(5, T, 5.0) == 80.0
    assert b.delay(5, T + 90, 5.0) == 10.0, "never past the window's end"
    assert b.delay(9, T, 50.0) == 100.0 and MAX_DELAY_S >= 100.0
    assert b.delay(2, T + 100.5, 5.0) is None, "the window has closed"
    assert b.delay(10, T, 5.0) is None, "every attempt is used"


def test_a_window_of_zero_allows_no_retry() -> None:
    d = one_story(s.Limits(max_attempts=6, retry_window_s=0.0, retries=3))
    d.feed(finish("S1", status="failed", exit_reason="agent_error", ts=T))
    assert d.rec.story("S1").status == "failed" and len(d.commands(s.RunStory)) == 1
    assert budget(window=0.0).delay(1, T, 5.0) is None


def test_the_reason_names_the_budget() -> None:
    reason = budget(attempts=3, window=30.0).spent(3, T + 12.4)
    assert reason == "gave up after 3 attempts in 12s (retry budget: 3 attempts within 30s)"


def one_story(limits: s.Limits) -> Driver:
    d = Driver()
    d.feed(submitted(limits=limits, mode_request="focused"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    assert len(d.commands(s.RunStory)) == 1
    return d


def test_a_permanent_failure_fails_the_story_at_once() -> None:
    for reason in ("rejected", "auth_failed", "retries_exhausted"):
        d = one_story(s.Limits(retries=3))
        d.feed(finish("S1", status="failed", exit_reason=reason, error="no", ts=T))
        assert d.rec.story("S1").status == "failed", reason
        assert len(d.commands(s.RunStory)) == 1, f"{reason}: no second agent run"


def test_a_transient_failure_waits_for_the_runner_within_the_budget() -> None:
    d = one_story(s.Limits(max_attempts=3, retry_window_s=60.0))
    d.feed(finish("S1", status="retryable", error="429", ts=T))
    assert d.rec.story("S1").status == "assigned"
    assert d.rec.story("S1").first_failure_at == T
    d.feed(finish("S1", attempt=2, status="retryable", error="429", ts=T + 10))
    assert d.rec.story("S1").status == "assigned"
    d.feed(finish("S1", attempt=3, status="retryable", error="429", ts=T + 30))
    story = d.rec.story("S1")
    assert story.status == "failed", "a runner that handed back a spent story is overruled"
    assert story.reason and "gave up after 3 attempts in 30s" in story.reason
    assert len(d.commands(s.RunStory)) == 1


def test_the_window_counts_from_the_first_failure() -> None:
    d = one_story(s.Limits(max_attempts=10, retry_window_s=20.0))
    d.feed(finish("S1", status="retryable", error="overloaded", ts=T))
    d.feed(finish("S1", attempt=2, status="retryable", error="overloaded", ts=T + 25))
    assert d.rec.story("S1").status == "failed"


def test_an_agent_failure_is_run_again_only_within_the_budget() -> None:
    d = one_story(s.Limits(retries=5, max_attempts=10, retry_window_s=20.0, heals=0))
    d.feed(finish("S1", status="retryable", error="529", ts=T))
    d.feed(finish("S1", attempt=2, status="failed", exit_reason="agent_error", ts=T + 5))
    assert [m.attempt for m in d.commands(s.RunStory)] == [1, 3], "the same budget"
    d.feed(finish("S1", attempt=3, status="failed", exit_reason="agent_error", ts=T + 21))
    story = d.rec.story("S1")
    assert story.status == "failed" and len(d.commands(s.RunStory)) == 2
    assert story.reason and "not retried: gave up after 3 attempts" in story.reason


OUTCOMES = st.sampled_from(
    [
        ("retryable", "agent_error"),
        ("retryable", "stalled"),
        ("failed", "agent_error"),
        ("failed", "no_changes"),
        ("failed", "rejected"),
        ("failed", "auth_failed"),
        ("failed", "retries_exhausted"),
        ("stalled", "stalled"),
        ("timeout", "timeout"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    outcomes=st.lists(st.tuples(OUTCOMES, st.floats(0.0, 30.0)), min_size=1, max_size=30),
    attempts=st.integers(1, 8),
    window=st.floats(0.0, 120.0),
    retries=st.integers(0, 4),
)
def test_no_story_outlives_its_budget(
    outcomes: list[tuple[tuple[s.AttemptStatus, str], float]],
    attempts: int,
    window: float,
    retries: int,
) -> None:
    """Whatever the attempts report, a story ends within its budget: at most max_attempts
    agent runs, none started after the window closed, and a permanent failure ends it."""
    d = one_story(s.Limits(max_attempts=attempts, retry_window_s=window, retries=retries))
    attempt, clock, starts = 1, T, [T]
    for (status, reason), took in outcomes:
        clock += took
        d.feed(finish("S1", attempt=attempt, status=status, exit_reason=reason, ts=clock))
        story = d.rec.story("S1")
        if story.status == "failed":
            break
        if story.status == "replanning":  # its own attempts end; others may take its place
            assert len(story.setbacks) >= 2, "only a story that failed twice is replanned"
            break
        assert story.status == "assigned"
        assert reason not in ("rejected", "auth_failed", "retries_exhausted")
        attempt += 1  # a hand-back (same command) or a new dispatch: the next agent run
        starts.append(clock)
    story = d.rec.story("S1")
    assert len(starts) <= attempts
    first_failure = story.first_failure_at
    assert first_failure is not None
    assert all(start <= first_failure + window for start in starts[1:])
