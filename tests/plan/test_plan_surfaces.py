"""baro_shared.surfaces.overlap: never "disjoint" when a path is named by both patterns."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baro_shared.surfaces import (
    matches,
    normalize,
    overlap,
    overlapping_surfaces,
    surfaces_overlap,
)

_TOKENS = ["a", "b", "c", ".", "*", "?", "[ab]", "[!a]", "[a-c]", "**"]
_segment = st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=4).map("".join)
_pattern = st.lists(_segment, min_size=1, max_size=3).map("/".join)
_name = st.text(alphabet="abc.", min_size=1, max_size=4)
_path = st.lists(_name, min_size=1, max_size=4).map("/".join)


@settings(max_examples=3000, deadline=None)
@given(_pattern, _pattern, _path)
def test_overlap_is_sound(a: str, b: str, path: str) -> None:
    if matches(a, path) and matches(b, path):
        assert overlap(a, b), f"{path!r} is named by both {a!r} and {b!r}"


@settings(max_examples=500, deadline=None)
@given(_pattern, _pattern)
def test_overlap_is_symmetric(a: str, b: str) -> None:
    assert overlap(a, b) == overlap(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # the class contents were once read as a literal suffix, calling these disjoint
        ("src/[ab].c", "src/?.[cd]"),
        ("[ab]", "[!a]"),
        ("src", "src/x.py"),
        ("src/**", "src/a/b.py"),
        ("src/*/x.py", "src/a"),
        ("src/a/*.py", "src/*/b.py"),
        ("test_*.py", "*_test.py"),
        ("**/test_a.py", "**/test_b.py"),  # a directory named test_a.py may hold test_b.py
        ("docs/", "docs/guide.md"),
    ],
)
def test_overlapping(a: str, b: str) -> None:
    assert overlap(normalize(a), normalize(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("src/*.py", "src/*.ts"),
        ("src/x.py", "src/*.ts"),
        ("tests/test_a.py", "tests/test_b.py"),
        ("docs/**", "src/**"),
        ("a*", "b*"),
        ("src/a/*.py", "src/*/b.ts"),
        ("src/a.py", "src/a.pyi"),
        ("lib/", "library/x.py"),
    ],
)
def test_disjoint(a: str, b: str) -> None:
    assert not overlap(normalize(a), normalize(b))


def test_surfaces_overlap_lists_the_pairs() -> None:
    assert surfaces_overlap(["src/a.py", "docs/**"], ["src/*.py", "x"]) == [
        ("src/a.py", "src/*.py")
    ]


_surface = st.lists(st.one_of(_pattern, _path), max_size=3)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_surface, max_size=6))
def test_the_overlap_index_finds_exactly_the_overlapping_surfaces(
    surfaces: list[list[str]],
) -> None:
    expected = {
        (i, j)
        for i in range(len(surfaces))
        for j in range(i + 1, len(surfaces))
        if surfaces_overlap(surfaces[i], surfaces[j])
    }
    assert overlapping_surfaces(surfaces) == expected


@settings(max_examples=2000, deadline=None)
@given(_pattern, _pattern)
def test_the_quick_paths_agree_with_the_automata(a: str, b: str) -> None:
    """The literal-prefix and component-by-component shortcuts decide as the product
    automaton does (used here on every pair, shortcuts or not)."""
    from baro_shared.surfaces import _automaton, _intersect, is_glob

    if a == b or not (is_glob(a) or is_glob(b)):
        return
    assert overlap(a, b) == _intersect(_automaton(a), _automaton(b))
