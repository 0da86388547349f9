"""Expected cost per mode from a repository's past runs: only alike runs, never invented."""

from __future__ import annotations

from baro_intake.estimates import estimates_for, expected_stories, size_band
from baro_shared.schemas import Caps, Estimate, IntakeDecision, PastRun, RepoHistory, TokenUsage


def past(
    run_id: str,
    mode: str,
    stories: int,
    tokens: int | None,
    wall_s: float,
    status: str = "delivered",
) -> PastRun:
    usage = TokenUsage() if tokens is None else TokenUsage(input=tokens - 100, output=100)
    return PastRun(
        run_id=run_id,
        mode=mode,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        stories=stories,
        tokens=usage,
        wall_s=wall_s,
        finished_at=float(len(run_id)),
    )


PARALLEL_3 = IntakeDecision(
    mode="parallel", confidence=0.85, reason="three files", caps=Caps(max_stories=3, parallelism=3)
)


def test_no_history_means_every_mode_is_unknown() -> None:
    assert estimates_for(None, PARALLEL_3) == [
        Estimate(mode="focused"),
        Estimate(mode="sequential"),
        Estimate(mode="parallel"),
    ]
    assert all(
        e.samples == 0 and e.tokens is None and e.wall_s is None
        for e in estimates_for(RepoHistory(), PARALLEL_3)
    )


def test_the_median_of_alike_runs() -> None:
    history = RepoHistory(
        runs=[
            past("f1", "focused", 1, 1000, 30.0),
            past("f2", "focused", 1, 3000, 50.0),
            past("f3", "focused", 1, 2000, 40.0),
            past("p1", "parallel", 3, 9000, 60.0),
            past("p2", "parallel", 2, 7000, 40.0),
            past("p3", "parallel", 12, 90000, 600.0),  # another size band: not alike
            past("s1", "sequential", 3, 8000, 200.0, status="failed"),  # stopped early
        ]
    )
    focused, sequential, parallel = estimates_for(history, PARALLEL_3)
    assert focused == Estimate(mode="focused", samples=3, tokens=2000, wall_s=40.0)
    assert sequential == Estimate(mode="sequential")
    assert parallel == Estimate(mode="parallel", samples=2, tokens=8000, wall_s=50.0)


def test_runs_with_unknown_tokens_count_for_time_only() -> None:
    history = RepoHistory(runs=[past("a", "focused", 1, None, 10.0)])
    focused = estimates_for(history, PARALLEL_3)[0]
    assert focused == Estimate(mode="focused", samples=1, tokens=None, wall_s=10.0)


def test_size_follows_the_suggestion() -> None:
    focused = IntakeDecision(mode="focused", confidence=0.55, reason="r")
    assert expected_stories(focused, "focused") == 1
    assert expected_stories(focused, "parallel") == 2
    assert expected_stories(PARALLEL_3, "sequential") == 3
    assert size_band(1) == (1, 1) and size_band(3) == (2, 3) and size_band(5) == (4, 7)
    assert size_band(40)[0] == 8
