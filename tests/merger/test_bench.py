"""The integration benchmark stays runnable (its numbers are reported, not asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "merger_bench.py"


def test_measure_integration_runs() -> None:
    spec = importlib.util.spec_from_file_location("merger_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.measure_integration(2) > 0
