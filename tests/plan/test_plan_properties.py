"""Property tests: whatever plan a planner proposes, the accepted plan obeys the rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from baro_conductor.policy import Enforced, enforce
from baro_shared.plan import ancestors, topological_order, validate_plan
from baro_shared.schemas import Caps, Mode, Story
from baro_shared.surfaces import surfaces_overlap

_SURFACE_POOL = [
    "src/a.py",
    "src/b.py",
    "src/",
    "src/*.py",
    "src/api/",
    "src/api/users.py",
    "docs/**",
    "docs/guide.md",
    "*.md",
    "README.md",
    "tests/test_a.py",
    "tests/",
    "pkg/*/mod.py",
    "pkg/a/",
    "lib/x.ts",
    "lib/**/*.ts",
    "lib/y.js",
]
_generated_surface = st.lists(
    st.sampled_from(["a", "b", "src", "lib", "*", "*.py", "x.md", "**", "[ab]*"]),
    min_size=1,
    max_size=3,
).map("/".join)
_surface_entry = st.one_of(st.sampled_from(_SURFACE_POOL), _generated_surface)
_words = st.lists(
    st.sampled_from(["add", "fix", "tests", "parser", "the", "cli", "docs", "for", "x.py"]),
    min_size=1,
    max_size=4,
).map(" ".join)
# parallel has the most rules, so it is drawn most often
_modes: st.SearchStrategy[Mode] = st.sampled_from(["parallel", "sequential", "parallel", "focused"])
_caps = st.builds(
    Caps,
    max_stories=st.integers(min_value=1, max_value=8),
    parallelism=st.sampled_from([4, 2, 1, 3]),
)


@st.composite
def plans(draw: st.DrawFn) -> list[Story]:
    """A random valid plan: a DAG over up to 12 stories, listed in a random order."""
    count = draw(st.integers(min_value=1, max_value=12))
    ids = [f"S{i}" for i in range(1, count + 1)]
    stories = []
    for index, sid in enumerate(ids):
        earlier = ids[:index]
        deps = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        stories.append(
            Story(
                id=sid,
                # "[S1]" is not a substring of "[S12]": every title is findable on its own
                title=f"[{sid}] {draw(_words)}",
                description=draw(st.one_of(st.just(""), _words.map(lambda w, s=sid: f"{w} <{s}>"))),
                depends_on=deps,
                write_surface=draw(
                    st.one_of(
                        st.lists(_surface_entry, max_size=3),
                        # a unit of its own, as an enumerated parallel goal would give
                        st.just([f"units/{sid.lower()}/"]),
                    )
                ),
                acceptance=[f"{sid} acceptance {k}" for k in range(draw(st.integers(0, 2)))],
            )
        )
    return draw(st.permutations(stories))


def carrier(result: Enforced, story_id: str) -> Story:
    by_id = {s.id: s for s in result.stories}
    return by_id[result.carried_by[story_id]]


@settings(max_examples=400, deadline=None)
@given(plans(), _modes, _caps)
def test_accepted_plan_obeys_every_rule(plan: list[Story], mode: Mode, caps: Caps) -> None:
    originals = validate_plan(plan)
    result = enforce(plan, mode, caps, "the goal")
    stories = result.stories

    # valid and acyclic
    assert validate_plan(stories) == stories
    anc = ancestors(stories)
    assert len(topological_order(stories)) == len(stories)

    # the mode's shape
    if mode == "focused":
        assert result.mode == "focused"
        assert len(stories) == 1
    elif mode == "sequential":
        assert result.mode == "sequential"
    else:
        assert result.mode in ("parallel", "sequential")
    assert len(stories) <= caps.max_stories
    if result.mode == "sequential":
        assert [s.depends_on for s in stories] == [[], *([p.id] for p in stories[:-1])]
    if result.mode == "parallel":
        assert caps.parallelism > 1
        assert any(
            a.id not in anc[b.id] and b.id not in anc[a.id]
            for i, a in enumerate(stories)
            for b in stories[i + 1 :]
        ), "a parallel plan has two stories that can run side by side"

    # stories that may run at the same time never write the same files
    for i, a in enumerate(stories):
        for b in stories[i + 1 :]:
            if a.id in anc[b.id] or b.id in anc[a.id]:
                continue
            assert a.write_surface and b.write_surface
            assert not surfaces_overlap(a.write_surface, b.write_surface)

    # no story is lost: every original is carried, whole, by one accepted story
    assert set(result.carried_by) == {s.id for s in originals}
    for original in originals:
        home = carrier(result, original.id)
        assert original.title in home.title or original.title in home.description
        assert original.description in home.description
        assert set(original.acceptance) <= set(home.acceptance)
        if original.write_surface:
            assert not home.write_surface or set(original.write_surface) <= set(home.write_surface)
        else:
            assert home.write_surface == [], "no surface means any file; a merge keeps that"
    for original in originals:
        assert any(original.title in s.title or original.title in s.description for s in stories)

    # every original ordering still holds
    for original in originals:
        for dep in original.depends_on:
            before, after = result.carried_by[dep], result.carried_by[original.id]
            assert before == after or before in anc[after]

    # every repair is written down
    changed = result.mode != mode or {s.id: s for s in stories} != {s.id: s for s in originals}
    if changed:
        assert result.notes


@settings(max_examples=200, deadline=None)
@given(plans(), _modes, _caps)
def test_enforcement_is_deterministic_and_a_fixpoint(
    plan: list[Story], mode: Mode, caps: Caps
) -> None:
    first = enforce(plan, mode, caps, "the goal")
    assert enforce(plan, mode, caps, "the goal") == first
    again = enforce(first.stories, first.mode, caps, "the goal")
    assert again.stories == first.stories
    assert again.mode == first.mode
    assert again.notes == []


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=2, max_value=14),
    st.integers(min_value=2, max_value=8),
    st.integers(min_value=2, max_value=4),
)
def test_independent_units_stay_parallel_and_no_merge_exceeds_an_even_share(
    count: int, max_stories: int, parallelism: int
) -> None:
    units = [
        Story(id=f"U{i}", title=f"unit {i}", write_surface=[f"src/unit{i}.py"])
        for i in range(count)
    ]
    result = enforce(units, "parallel", Caps(max_stories=max_stories, parallelism=parallelism), "g")
    assert result.mode == "parallel"
    assert len(result.stories) == min(count, max_stories)
    assert all(not s.depends_on for s in result.stories)
    sizes = [list(result.carried_by.values()).count(s.id) for s in result.stories]
    assert max(sizes) == -(-count // max_stories)  # the smallest possible largest story
