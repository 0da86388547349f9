"""The enforcement benchmark stays runnable (its numbers are reported, not asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from baro_shared.plan import validate_plan

BENCH = Path(__file__).resolve().parents[2] / "bench" / "policy_bench.py"


def test_every_shape_is_a_valid_plan_and_is_measured() -> None:
    spec = importlib.util.spec_from_file_location("policy_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for shape in bench.SHAPES:
        assert len(validate_plan(bench.plan(shape, 40))) == 40
    result = bench.measure(sizes=(20,), repeat=1)
    assert set(result) == {f"{shape}_20" for shape in bench.SHAPES}
    assert all(
        times and all(t > 0 for t in times) for row in result.values() for times in row.values()
    )
