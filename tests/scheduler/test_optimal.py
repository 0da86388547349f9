"""The benchmark's yardsticks: the exact optimum of small plans (checked against brute
force on tiny ones) and the interval lower bound (never above the optimum)."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.optimal import interval_bound, list_schedule, on_grid, optimum
from bench.scheduling_bench import SHAPES, dag, durations, lower_bound


def brute_force(deps: dict[str, list[str]], work: dict[str, float], slots: int) -> float:
    """Every assignment of start times on the half-second grid: the true optimum, slowly."""
    ids = list(deps)
    horizon = sum(work.values())
    grid = [i / 2 for i in range(int(horizon * 2) + 1)]
    best = horizon
    for starts in itertools.product(grid, repeat=len(ids)):
        start = dict(zip(ids, starts, strict=True))
        end = {sid: start[sid] + work[sid] for sid in ids}
        if any(start[sid] < end[d] for sid in ids for d in deps[sid]):
            continue
        moments = sorted(set(starts))
        if any(sum(start[s] <= m < end[s] for s in ids) > slots for m in moments):
            continue
        best = min(best, max(end.values()))
    return best


def random_dag(draw_seed: int, n: int) -> tuple[dict[str, list[str]], dict[str, float]]:
    rng = random.Random(draw_seed)
    ids = [f"S{i}" for i in range(n)]
    deps = {
        sid: sorted(rng.sample(ids[:i], rng.randint(0, min(2, i)))) for i, sid in enumerate(ids)
    }
    work = {sid: rng.choice([1.0, 1.5, 2.0]) for sid in ids}
    return deps, work


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.integers(1, 2))
def test_the_optimum_is_the_brute_force_optimum(seed: int, n: int, slots: int) -> None:
    deps, work = random_dag(seed, n)
    found = optimum(deps, work, slots)
    assert found.proven
    assert found.makespan == brute_force(deps, work, slots)


def test_leaving_a_slot_idle_can_beat_every_list_schedule() -> None:
    # S5 started at once would hold a slot while S1 and S2 both want to run after S0
    deps = {"S0": [], "S1": ["S0"], "S2": ["S0"], "S3": ["S1", "S2"], "S4": ["S3"], "S5": []}
    work = {"S0": 1.0, "S1": 3.0, "S2": 3.0, "S3": 2.0, "S4": 3.0, "S5": 3.0}
    every_order = min(
        list_schedule(deps, work, 2, list(order)) for order in itertools.permutations(deps)
    )
    assert every_order == 11.0
    found = optimum(deps, work, 2)
    assert (found.makespan, found.proven) == (9.0, True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 7), st.integers(1, 3))
def test_the_bounds_never_exceed_the_optimum(seed: int, n: int, slots: int) -> None:
    deps, work = random_dag(seed, n)
    best = optimum(deps, work, slots)
    assert best.proven
    assert lower_bound(deps, work, slots) <= interval_bound(deps, work, slots) + 1e-9
    assert interval_bound(deps, work, slots) <= best.makespan + 1e-9


def test_the_bench_shapes_have_a_proven_optimum_up_to_sixteen_stories() -> None:
    for shape in SHAPES:
        for n in (8, 16):
            deps = dag(shape, n, 4)
            work = durations(list(deps))
            found = optimum(deps, work, 4)
            assert found.proven, (shape, n)
            assert interval_bound(deps, work, 4) <= found.makespan


def test_a_bound_between_two_steps_of_the_durations_is_raised_to_the_next() -> None:
    assert on_grid(13.75, [1.0, 1.5, 2.0]) == 14.0
    assert on_grid(14.0, [1.0, 1.5, 2.0]) == 14.0
    assert on_grid(3.2, [1.0, 2.0]) == 4.0
    assert on_grid(3.25, [1.0, 0.3]) == 3.3  # a step of 0.1 s
    assert on_grid(3.2, [1.0, 2**0.5]) == 3.2  # no common step: as it was
    assert on_grid(3.2, []) == 3.2


def test_the_diamond_of_thirty_two_is_bounded_by_what_its_middle_can_pack() -> None:
    # 30 middle stories of 45 s of work on 4 slots cannot end at 11.25 s: 11.5 at best
    deps = dag("diamond", 32, 4)
    assert interval_bound(deps, durations(list(deps)), 4) == 14.0
