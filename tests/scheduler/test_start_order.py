"""The conductor's start order: the critical path first, packed better only where the
plan's sizes show a strictly shorter schedule; the same plan always gets the same order."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from baro_shared.plan import critical_path
from baro_shared.schemas import Story
from baro_shared.start_order import _ranks, start_ranks
from bench.optimal import list_schedule, optimum
from bench.scheduling_bench import dag, durations, stories_of


def _plan(seed: int, n: int) -> tuple[dict[str, list[str]], dict[str, float]]:
    rng = random.Random(seed)
    ids = [f"S{i}" for i in range(n)]
    deps = {
        sid: sorted(rng.sample(ids[:i], rng.randint(0, min(3, i)))) for i, sid in enumerate(ids)
    }
    return deps, {sid: rng.choice([0.5, 1.0, 1.5, 2.0, 3.0]) for sid in ids}


def _critical_path_order(stories: list[Story]) -> list[str]:
    chain = critical_path(stories)
    return sorted(
        (st.id for st in stories),
        key=lambda sid: (-chain[sid], -(next(x.effort for x in stories if x.id == sid) or 1.0)),
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000), st.integers(1, 40), st.integers(1, 6))
@example(1026, 39, 4)  # stories ending at the same moment free their slots in id order
def test_the_order_is_never_worse_than_the_critical_path_s_and_always_the_same(
    seed: int, n: int, slots: int
) -> None:
    deps, work = _plan(seed, n)
    stories = stories_of(deps, work)
    rank = start_ranks(stories, slots)
    assert sorted(rank.values()) == list(range(n))
    order = sorted(deps, key=rank.__getitem__)
    assert list_schedule(deps, work, slots, order) <= list_schedule(
        deps, work, slots, _critical_path_order(stories)
    )
    _ranks.cache_clear()
    assert start_ranks(stories, slots) == rank  # computed afresh: the same


def test_a_wide_layer_is_packed_to_the_optimum_the_longest_first_order_misses() -> None:
    # a root, 14 stories of 2, 1.5 and 1 s, a join: longest-first on 4 slots ends at 8 s
    deps = dag("diamond", 16, 4)
    work = durations(list(deps))
    stories = stories_of(deps, work)
    assert list_schedule(deps, work, 4, _critical_path_order(stories)) == 8.0
    rank = start_ranks(stories, 4)
    assert list_schedule(deps, work, 4, sorted(deps, key=rank.__getitem__)) == 7.5
    assert optimum(deps, work, 4).makespan == 7.5


def test_without_sizes_or_room_to_pack_the_order_is_the_critical_path_s() -> None:
    chain = {f"S{i}": [f"S{i - 1}"] if i else [] for i in range(6)}
    side = {"T0": [], "T1": ["T0"]}
    stories = stories_of({**chain, **side})  # no efforts: every story counts 1
    rank = start_ranks(stories, 2)
    # nothing beats the chain's 6: longest chain first, then plan order
    assert sorted(rank, key=rank.__getitem__) == ["S0", "S1", "S2", "S3", "S4", "T0", "S5", "T1"]
