"""The enforcement benchmark stays runnable (its numbers are reported, not asserted)."""

from __future__ import annotations

from baro_shared.plan import validate_plan
from bench.policy_bench import SHAPES, measure, plan


def test_every_shape_is_a_valid_plan_and_is_measured() -> None:
    for shape in SHAPES:
        assert len(validate_plan(plan(shape, 40))) == 40
    result = measure(sizes=(20,), repeat=1)
    assert set(result) == {f"{shape}_20" for shape in SHAPES}
    assert all(
        times and all(t > 0 for t in times) for row in result.values() for times in row.values()
    )
