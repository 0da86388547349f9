"""The run's token budget in the conductor's decider: each attempt's allowance, no story
started once nothing is left, and a run that says the budget stopped it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from baro_conductor import run_budget
from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, finish, integrated, submitted

LIMITS = {"story_timeout_s": 60.0}


def plan(n: int, *, chained: bool = False) -> list[s.Story]:
    return [
        s.Story(
            id=f"S{i}",
            title=f"story {i}",
            depends_on=[f"S{i - 1}"] if chained and i > 1 else [],
            write_surface=[f"f{i}.txt"],
        )
        for i in range(1, n + 1)
    ]


def start(
    d: Driver, stories: list[s.Story], budget: int, mode: s.Mode, par: int = 1, intake: int = 0
) -> None:
    d.feed(
        submitted(limits=s.Limits(run_token_budget=budget, parallelism=par, **LIMITS))  # type: ignore[arg-type]
    )
    d.feed(
        s.IntakeDecided(
            run_id=RUN,
            decision=s.IntakeDecision(
                mode=mode,
                confidence=0.9,
                reason="r",
                caps=s.Caps(max_stories=len(stories), parallelism=par),
                tokens=s.TokenUsage(input=intake, output=0),
            ),
        )
    )
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))


def allowances(d: Driver) -> dict[tuple[str, int], int | None]:
    return {(c.story.id, c.attempt): c.token_allowance for c in d.commands(s.RunStory)}


def spend(sid: str, tokens: int, attempt: int = 1, **kw: object) -> s.StoryFinished:
    return finish(sid, attempt, tokens=s.TokenUsage(input=tokens, output=0), **kw)  # type: ignore[arg-type]


def stopped(sid: str, tokens: int, attempt: int = 1) -> s.StoryFinished:
    return spend(
        sid, tokens, attempt, status="budget_exceeded", exit_reason=s.RUN_BUDGET_EXCEEDED,
        error="the run's token budget: this story's share is spent",
    )  # fmt: skip


def test_a_sequential_run_gives_each_story_what_is_left() -> None:
    d = Driver()
    start(d, plan(3, chained=True), 5000, "sequential", intake=200)
    assert allowances(d) == {("S1", 1): 4800}, "the intake's tokens count against the run"
    d.feed(spend("S1", 1500))
    d.feed(integrated("S1"))
    assert allowances(d)[("S2", 1)] == 3300
    d.feed(spend("S2", 1500))
    d.feed(integrated("S2"))
    assert allowances(d)[("S3", 1)] == 1800
    d.feed(stopped("S3", 1850))  # stopped just past its allowance
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-S2"))
    rec = d.rec
    assert rec.state == "needs_attention" and rec.budget_reached
    assert rec.reason is not None
    assert rec.reason.startswith("the run's token budget of 5,000 tokens was reached (5,050 spent)")
    assert "S3 failed: token budget exceeded: the run's token budget" in rec.reason
    assert rec.totals.tokens.total == 5050


def test_stories_that_start_together_split_what_is_free() -> None:
    d = Driver()
    start(d, plan(4), 8000, "parallel", par=2)
    assert allowances(d) == {("S1", 1): 4000, ("S2", 1): 4000}
    d.feed(spend("S1", 1000))
    # S2 still holds its 4000; S1's unspent 3000 is free again for the next one
    assert allowances(d)[("S3", 1)] == 3000
    assert run_budget.free(d.rec) == 0


def test_a_story_alone_gets_everything_free_however_many_wait_behind_it() -> None:
    d = Driver()
    start(d, plan(3, chained=True), 9000, "parallel", par=3)
    assert allowances(d) == {("S1", 1): 9000}


def test_nothing_left_and_nothing_running_cancels_the_stories_not_started() -> None:
    d = Driver()
    start(d, plan(4), 1000, "parallel", par=2)
    assert allowances(d) == {("S1", 1): 500, ("S2", 1): 500}
    d.feed(stopped("S1", 600))
    assert d.rec.stories[2].status == "pending", "S2 may leave something"
    d.feed(stopped("S2", 600))
    rec = d.rec
    assert [(x.story.id, x.status) for x in rec.stories] == [
        ("S1", "failed"),
        ("S2", "failed"),
        ("S3", "cancelled"),
        ("S4", "cancelled"),
    ]
    assert rec.stories[2].reason == (
        "not started: the run's token budget of 1,000 tokens was reached (1,200 spent)"
    )
    assert len(d.commands(s.RunStory)) == 2, "no story starts with nothing left"
    d.feed(s.RunDelivered(run_id=RUN, branch=None, base="base", head="base"))
    assert rec.state != "delivered"
    assert d.rec.reason is not None and d.rec.reason.startswith("the run's token budget of 1,000")


def test_ready_stories_wait_for_what_running_ones_leave() -> None:
    d = Driver()
    start(d, plan(4), 3000, "parallel", par=3)
    assert allowances(d) == {("S1", 1): 1000, ("S2", 1): 1000, ("S3", 1): 1000}
    d.feed(spend("S1", 1000))
    assert ("S4", 1) not in allowances(d), "S2 and S3 hold the rest"
    assert d.rec.stories[3].status == "pending"
    d.feed(spend("S2", 200))
    assert allowances(d)[("S4", 1)] == 800  # what S2 left


def test_too_little_to_split_goes_to_the_first_story() -> None:
    d = Driver()
    start(d, plan(3), 2, "parallel", par=3)
    assert allowances(d) == {("S1", 1): 2}


def test_a_retry_with_nothing_left_is_not_run() -> None:
    d = Driver()
    start(d, plan(1), 1000, "focused")
    d.feed(spend("S1", 1000, status="failed", exit_reason="agent_error", error="gave up"))
    (only,) = d.rec.stories
    assert only.status == "failed"
    assert only.reason == (
        "not run again: the run's token budget of 1,000 tokens was reached (1,000 spent)"
    )
    assert len(d.commands(s.RunStory)) == 1


def test_a_retry_gets_what_is_left_after_its_failed_attempt() -> None:
    d = Driver()
    start(d, plan(1), 1000, "focused")
    d.feed(spend("S1", 300, status="failed", exit_reason="agent_error", error="gave up"))
    assert allowances(d) == {("S1", 1): 1000, ("S1", 2): 700}


def test_without_a_run_budget_nothing_changes() -> None:
    d = Driver()
    d.feed(submitted())
    assert run_budget.free(d.rec) is None


@settings(max_examples=80, deadline=None)
@given(
    budget=st.integers(min_value=1, max_value=20_000),
    needs=st.lists(st.integers(min_value=0, max_value=6_000), min_size=1, max_size=6),
    par=st.integers(min_value=1, max_value=4),
    order=st.randoms(use_true_random=False),
)
def test_agents_that_stop_at_their_allowance_keep_the_run_within_its_budget(
    budget: int, needs: list[int], par: int, order: object
) -> None:
    """Whatever the plan, the parallelism and the order stories finish in: while every
    agent stops at its allowance, spent plus what running stories may still spend never
    passes the budget, and every story that starts has something to spend."""
    d = Driver()
    start(d, plan(len(needs)), budget, "parallel", par=par)
    need = {f"S{i}": n for i, n in enumerate(needs, start=1)}
    done: set[tuple[str, int]] = set()
    for _ in range(50):
        rec = d.rec
        assert run_budget.spent(rec) + sum(run_budget.held(x) for x in rec.stories) <= budget
        live = [(c.story.id, c.attempt, c.token_allowance) for c in d.commands(s.RunStory)]
        live = [x for x in live if x[:2] not in done]
        assert all(allowance is not None and allowance > 0 for *_, allowance in live)
        if not live:
            break
        sid, attempt, allowance = order.choice(live)  # type: ignore[attr-defined]
        done.add((sid, attempt))
        assert allowance is not None
        if need[sid] > allowance:
            d.feed(stopped(sid, allowance, attempt))
        else:
            d.feed(spend(sid, need[sid], attempt))
            d.feed(integrated(sid, attempt))
    assert run_budget.spent(d.rec) <= budget
    assert d.rec.state == "integrating" or all(
        x.status in ("integrated", "failed", "cancelled") for x in d.rec.stories
    )
