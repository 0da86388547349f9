"""baro_conductor.policy.enforce: each rule, on small hand-made plans."""

from __future__ import annotations

import pytest

from baro_conductor.policy import enforce
from baro_shared.plan import PlanError, ancestors
from baro_shared.schemas import Caps, Story


def story(
    sid: str, *deps: str, surface: tuple[str, ...] = (), acceptance: tuple[str, ...] = ()
) -> Story:
    return Story(
        id=sid,
        title=f"title of {sid}",
        description=f"description of {sid}",
        depends_on=list(deps),
        write_surface=list(surface),
        acceptance=list(acceptance),
    )


def caps(max_stories: int = 10, parallelism: int = 4) -> Caps:
    return Caps(max_stories=max_stories, parallelism=parallelism)


def deps_of(stories: list[Story]) -> dict[str, list[str]]:
    return {s.id: s.depends_on for s in stories}


# --------------------------------------------------------------------------- focused


def test_focused_single_story_is_left_alone() -> None:
    only = story("S1", surface=("src/a.py",))
    result = enforce([only], "focused", caps(1, 1), "fix it")
    assert result.mode == "focused"
    assert result.stories == [only]
    assert result.notes == []


def test_focused_collapses_into_one_story_carrying_everything() -> None:
    plan = [
        story("S1", surface=("src/a.py",), acceptance=("a works",)),
        story("S2", "S1", surface=("src/b.py", "src/a.py"), acceptance=("b works", "a works")),
        story("S3", surface=("docs/**",), acceptance=("documented",)),
    ]
    result = enforce(plan, "focused", caps(5, 3), "Make the parser strict\nmore detail")
    (one,) = result.stories
    assert one.id == "S1"
    assert one.title == "Make the parser strict"
    assert one.depends_on == []
    assert one.description.startswith("Make the parser strict\nmore detail\n\n")
    for sid in ("S1", "S2", "S3"):
        assert f"## {sid}: title of {sid}\ndescription of {sid}" in one.description
    assert one.acceptance == ["a works", "b works", "documented"]
    assert one.write_surface == ["src/a.py", "src/b.py", "docs/**"]
    assert result.carried_by == {"S1": "S1", "S2": "S1", "S3": "S1"}
    assert len(result.notes) == 1
    assert "focused mode runs exactly one story" in result.notes[0]
    assert "(S1, S2, S3)" in result.notes[0]


def test_focused_collapse_with_a_story_without_surface_declares_none() -> None:
    plan = [story("S1", surface=("src/a.py",)), story("S2")]
    result = enforce(plan, "focused", caps(), "goal")
    assert result.stories[0].write_surface == []
    assert "S2 declared none" in result.notes[0]


def test_focused_collapse_lists_stories_in_dependency_order() -> None:
    plan = [story("S2", "S1"), story("S1")]
    (one,) = enforce(plan, "focused", caps(), "").stories
    assert one.id == "S1"
    assert one.title == "title of S1", "without a goal the first story's title is used"
    assert one.description.index("## S1:") < one.description.index("## S2:")


# --------------------------------------------------------------------------- story cap


def test_cap_merges_a_chain_into_balanced_neighbours() -> None:
    plan = [story("S1"), story("S2", "S1"), story("S3", "S2"), story("S4", "S3")]
    result = enforce(plan, "sequential", caps(2, 1), "goal")
    assert [s.id for s in result.stories] == ["S1", "S3"]
    assert deps_of(result.stories) == {"S1": [], "S3": ["S1"]}
    assert result.carried_by == {"S1": "S1", "S2": "S1", "S3": "S3", "S4": "S3"}
    merged = result.stories[1]
    assert merged.title == "title of S3 (and 1 more)"
    assert "## S3: title of S3" in merged.description
    assert "## S4: title of S4" in merged.description
    assert result.notes[0].startswith("the plan has 4 stories and the story cap is 2")
    assert any("merged S4 ('title of S4') into S3 ('title of S3')" in n for n in result.notes)


def test_cap_in_parallel_prefers_stories_that_could_not_run_together_anyway() -> None:
    plan = [
        story("S1", surface=("src/a.py",)),
        story("S2", surface=("docs/x.md",)),
        story("S3", surface=("lib/",)),
        story("S4", surface=("src/*.py",)),
    ]
    result = enforce(plan, "parallel", caps(3, 3), "goal")
    assert result.carried_by["S4"] == "S1"
    assert result.mode == "parallel"
    assert any("write surfaces overlap: src/a.py ~ src/*.py" in n for n in result.notes)


def test_cap_balances_independent_units() -> None:
    plan = [story(f"S{i}", surface=(f"src/m{i}.py",)) for i in range(1, 7)]
    result = enforce(plan, "parallel", caps(3, 3), "goal")
    sizes = sorted(list(result.carried_by.values()).count(s.id) for s in result.stories)
    assert sizes == [2, 2, 2]
    assert result.mode == "parallel"


def test_cap_repoints_dependencies_and_keeps_the_plan_acyclic() -> None:
    # S3 depends on S2 which depends on S1; merging S1 with S3 alone would be a cycle
    plan = [
        story("S1", surface=("a",)),
        story("S2", "S1", surface=("b",)),
        story("S3", "S2", surface=("c",)),
        story("S4", "S1", surface=("d",)),
    ]
    result = enforce(plan, "parallel", caps(2, 2), "goal")
    assert len(result.stories) == 2
    anc = ancestors(result.stories)  # raises on a cycle
    carried = result.carried_by
    for original in plan:
        for dep in original.depends_on:
            a, b = carried[dep], carried[original.id]
            assert a == b or a in anc[b]


def test_cap_of_one_in_sequential_mode_gives_one_story() -> None:
    plan = [story("S1"), story("S2"), story("S3", "S1")]
    result = enforce(plan, "sequential", caps(1, 1), "goal")
    assert len(result.stories) == 1
    for sid in ("S1", "S2", "S3"):
        assert f"title of {sid}" in result.stories[0].description


def test_merging_with_a_story_without_surface_says_so() -> None:
    plan = [story("S1", surface=("a.py",)), story("S2")]
    result = enforce(plan, "parallel", caps(1, 2), "goal")
    assert result.stories[0].write_surface == []
    assert any("declares no write surface, as one of them had none" in n for n in result.notes)


# --------------------------------------------------------------------------- sequential


def test_sequential_turns_a_dag_into_a_chain_in_plan_order() -> None:
    plan = [story("A"), story("B", "A"), story("C", "A"), story("D", "B", "C")]
    result = enforce(plan, "sequential", caps(10, 1), "goal")
    assert result.mode == "sequential"
    assert deps_of(result.stories) == {"A": [], "B": ["A"], "C": ["B"], "D": ["C"]}
    assert result.notes == [
        "sequential mode runs one story at a time, in this order: A -> B -> C -> D"
    ]


def test_sequential_chain_already_in_order_needs_no_note() -> None:
    plan = [story("S2", "S1"), story("S1")]
    result = enforce(plan, "sequential", caps(), "goal")
    assert [s.id for s in result.stories] == ["S1", "S2"]
    assert result.notes == []


# --------------------------------------------------------------------------- parallel


def test_parallel_disjoint_plan_is_left_alone() -> None:
    plan = [
        story("S1", surface=("src/a.py",)),
        story("S2", surface=("src/b.py",)),
        story("S3", "S1", "S2", surface=("src/*.py",)),
    ]
    result = enforce(plan, "parallel", caps(), "goal")
    assert result.mode == "parallel"
    assert result.stories == plan
    assert result.notes == []


def test_parallel_overlapping_surfaces_are_serialized() -> None:
    plan = [
        story("S1", surface=("src/api/",)),
        story("S2", surface=("src/api/users.py",)),
        story("S3", surface=("docs/**",)),
    ]
    result = enforce(plan, "parallel", caps(), "goal")
    assert result.mode == "parallel"
    assert deps_of(result.stories) == {"S1": [], "S2": ["S1"], "S3": []}
    assert result.notes == [
        "S2 now runs after S1 (write surfaces overlap: src/api/users.py ~ src/api/**)"
    ]


def test_parallel_story_without_surface_is_ordered_against_every_other() -> None:
    plan = [
        story("S1", surface=("a.py",)),
        story("S2", surface=("b.py",)),
        story("S3"),
        story("S4", surface=("c.py",)),
        story("S5", surface=("d.py",)),
    ]
    result = enforce(plan, "parallel", caps(), "goal")
    assert deps_of(result.stories) == {
        "S1": [],
        "S2": [],
        "S3": ["S2", "S1"],
        "S4": ["S3"],
        "S5": ["S3"],
    }
    assert result.mode == "parallel"
    assert "S3 now runs after S2 and S1 (S3 declares no write surface" in result.notes[0]


def test_parallel_without_two_independent_stories_runs_as_sequential() -> None:
    plan = [story("S1", surface=("src/",)), story("S2", surface=("src/x.py",))]
    result = enforce(plan, "parallel", caps(), "goal")
    assert result.mode == "sequential"
    assert deps_of(result.stories) == {"S1": [], "S2": ["S1"]}
    assert any(
        n.startswith("parallel mode needs two stories that can run side by side")
        for n in result.notes
    )


def test_parallel_single_story_runs_as_sequential_with_the_reason() -> None:
    result = enforce([story("S1", surface=("a",))], "parallel", caps(), "goal")
    assert result.mode == "sequential"
    assert result.notes == [
        "parallel mode needs two stories that can run side by side, but the plan has a "
        "single story; running as sequential"
    ]


def test_parallelism_cap_of_one_runs_as_sequential() -> None:
    plan = [story("S1", surface=("a",)), story("S2", surface=("b",))]
    result = enforce(plan, "parallel", caps(10, 1), "goal")
    assert result.mode == "sequential"
    assert "the parallelism cap is 1" in result.notes[0]
    assert deps_of(result.stories) == {"S1": [], "S2": ["S1"]}


# --------------------------------------------------------------------------- invalid input


def test_an_invalid_plan_is_rejected_not_repaired() -> None:
    with pytest.raises(PlanError, match="dependency cycle: S1 -> S2 -> S1"):
        enforce([story("S1", "S2"), story("S2", "S1")], "parallel", caps(), "goal")
