"""Only the full scheduling series replaces the figures README and bench/results.json
hold: a series of some shapes, or with other settings, only prints."""

from __future__ import annotations

from bench.scheduling_bench import SHAPES, SIZES, not_recorded


def test_the_full_series_is_recorded_and_a_partial_one_is_not() -> None:
    shapes, sizes = list(SHAPES), list(SIZES)
    assert not_recorded(shapes, sizes, 4, 1.0, True) is None
    assert not_recorded(list(reversed(shapes)), sizes, 4, 1.0, True) is None
    assert not_recorded(["layered"], sizes, 4, 1.0, True) is not None
    assert not_recorded(shapes, [8], 4, 1.0, True) is not None
    assert not_recorded(shapes, sizes, 8, 1.0, True) is not None
    assert not_recorded(shapes, sizes, 4, 2.0, True) is not None
    assert not_recorded(shapes, sizes, 4, 1.0, False) is not None
