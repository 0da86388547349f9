"""baro_shared.plan: validation messages, DAG helpers, reading a plan file."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baro_shared.inputs import MAX_PLAN_STORIES
from baro_shared.plan import (
    PlanError,
    ancestors,
    find_cycle,
    may_run_together,
    plan_from_json,
    stories_from_data,
    topological_order,
    validate_plan,
)
from baro_shared.schemas import Story


def story(sid: str, *deps: str, surface: tuple[str, ...] = ("x",), title: str = "") -> Story:
    return Story(
        id=sid, title=title or f"do {sid}", depends_on=list(deps), write_surface=list(surface)
    )


def rejection(stories: list[Story]) -> str:
    with pytest.raises(PlanError) as caught:
        validate_plan(stories)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- rejections


def test_no_stories() -> None:
    assert rejection([]) == "the plan has no stories"


def test_empty_id_names_the_position() -> None:
    assert rejection([story("S1"), Story(id="  ", title="t")]) == "story #2 has an empty id"


def test_unusable_id() -> None:
    assert "story id 'a.b' is not usable" in rejection([Story(id="a.b", title="t")])
    assert "is not usable" in rejection([Story(id="has space", title="t")])


def test_duplicate_id() -> None:
    assert rejection([story("S1"), story("S2"), story("S1")]) == "duplicate story id 'S1'"


def test_duplicate_id_after_stripping() -> None:
    assert rejection([story("S1"), story(" S1 ")]) == "duplicate story id 'S1'"


def test_empty_title() -> None:
    assert rejection([Story(id="S1", title=" \n ")]) == "story 'S1' has an empty title"


def test_unknown_dependency() -> None:
    message = rejection([story("S1"), story("S2", "S9")])
    assert message == "story 'S2' depends on unknown story 'S9'"


def test_self_dependency() -> None:
    assert rejection([story("S1", "S1")]) == "story 'S1' depends on itself"


def test_duplicate_dependency() -> None:
    message = rejection([story("S1"), story("S2", "S1", "S1")])
    assert message == "story 'S2' lists dependency 'S1' twice"


def test_empty_dependency() -> None:
    assert rejection([story("S1"), story("S2", " ")]) == "story 'S2' has an empty dependency"


def test_cycle_is_named_in_dependency_order() -> None:
    plan = [story("S1", "S3"), story("S2", "S1"), story("S3", "S2")]
    assert rejection(plan) == "dependency cycle: S1 -> S3 -> S2 -> S1"


def test_cycle_starts_at_its_first_story_in_plan_order() -> None:
    plan = [story("A"), story("B", "A", "D"), story("C", "B"), story("D", "C")]
    assert rejection(plan) == "dependency cycle: B -> D -> C -> B"


def test_two_story_cycle() -> None:
    assert rejection([story("S1", "S2"), story("S2", "S1")]) == "dependency cycle: S1 -> S2 -> S1"


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/etc/passwd", "absolute path '/etc/passwd'"),
        ("C:\\src\\x.py", "absolute path"),
        ("src/../../x.py", "leaves the repository"),
        (".git/config", "inside .git"),
        ("./.git/hooks/", "inside .git"),
        (".GIT/hooks/x", "inside .git"),
        ("src/.Git/config", "inside .git"),
        (".git. /hooks/x", "inside .git"),
        ("GIT~1/hooks", "inside .git"),
        (".g\u200cit/hooks", "inside .git"),
        (".gi?/hooks/x", "could name a .git directory"),
        ("src/.[Gg][Ii][Tt]/**", "could name a .git directory"),
        ("src/a\x00.py", "contains a control character"),
        ("src/\x1b[31m.py", "contains a control character"),
        ("", "empty path"),
        (".", "names the repository root"),
    ],
)
def test_unsafe_paths(path: str, words: str) -> None:
    message = rejection([story("S1", surface=("ok.py", path))])
    assert message.startswith("story 'S1' has an unsafe write surface: ")
    assert words in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "fix\x00it"),
        ("title", "\x1b]0;owned\x07"),
        ("description", "line\rover"),
        ("description", "bad \ud800 half"),
        ("acceptance", "done\x9b"),
    ],
)
def test_control_characters_in_prose_are_refused(field: str, value: str) -> None:
    fields: dict[str, object] = {"id": "S1", "title": "t"}
    fields[field] = [value] if field == "acceptance" else value
    message = rejection([Story(**fields)])  # type: ignore[arg-type]
    assert message.startswith("story 'S1': ")
    assert "U+" in message and "only newlines and tabs" in message


def test_newlines_and_tabs_are_prose() -> None:
    (cleaned,) = validate_plan([Story(id="S1", title="t", description="a\n\tb")])
    assert cleaned.description == "a\n\tb"


def test_too_many_stories_are_refused() -> None:
    many = [story(f"S{i}") for i in range(MAX_PLAN_STORIES + 1)]
    message = rejection(many)
    assert f"baro takes at most {MAX_PLAN_STORIES}" in message
    assert validate_plan(many[:MAX_PLAN_STORIES])


# --------------------------------------------------------------------------- what passes


def test_valid_plan_is_cleaned() -> None:
    raw = Story(
        id=" S1 ",
        title="  Add   tests ",
        description="  why \n",
        write_surface=["./src/", "src\\a.py", "src/a.py", "docs/*.md"],
        acceptance=["  passes ", "", "passes"],
    )
    (cleaned,) = validate_plan([raw, Story(id="S2", title="t", depends_on=[" S1"])])[:1]
    assert cleaned.id == "S1"
    assert cleaned.title == "Add tests"
    assert cleaned.description == "why"
    assert cleaned.write_surface == ["src/**", "src/a.py", "docs/*.md"]
    assert cleaned.acceptance == ["passes"]


def test_validation_is_idempotent() -> None:
    plan = [story("S1", surface=("src/",)), story("S2", "S1")]
    once = validate_plan(plan)
    assert validate_plan(once) == once


def test_a_story_may_declare_no_surface() -> None:
    assert validate_plan([story("S1", surface=())])[0].write_surface == []


# --------------------------------------------------------------------------- graph helpers


def test_topological_order_keeps_plan_order_among_free_stories() -> None:
    plan = [story("S3", "S1"), story("S2"), story("S1"), story("S4", "S3", "S2")]
    assert topological_order(plan) == ["S2", "S1", "S3", "S4"]


def test_topological_order_names_a_cycle() -> None:
    with pytest.raises(PlanError, match=r"dependency cycle: S1 -> S2 -> S1"):
        topological_order([story("S1", "S2"), story("S2", "S1")])


def test_ancestors_are_transitive() -> None:
    plan = [story("A"), story("B", "A"), story("C", "B"), story("D")]
    assert ancestors(plan) == {"A": set(), "B": {"A"}, "C": {"A", "B"}, "D": set()}


def test_find_cycle_none_for_a_dag() -> None:
    assert find_cycle([story("A"), story("B", "A")]) is None


def test_may_run_together() -> None:
    a = story("A", surface=("src/a.py",))
    b = story("B", surface=("src/b.py",))
    c = story("C", "A", surface=("src/c.py",))
    glob = story("G", surface=("src/*.py",))
    silent = story("N", surface=())
    plan = [a, b, c, glob, silent]
    anc = ancestors(plan)
    assert may_run_together(a, b, anc)
    assert not may_run_together(a, c, anc), "ordered"
    assert not may_run_together(a, glob, anc), "glob overlaps"
    assert not may_run_together(a, silent, anc), "no surface means any file"
    assert not may_run_together(a, a, anc)


# --------------------------------------------------------------------------- plan files


def plan_file_error(text: str) -> str:
    with pytest.raises(PlanError) as caught:
        plan_from_json(text)
    return str(caught.value)


def test_plan_from_json_round_trips_plan_output() -> None:
    document = {
        "stories": [
            {"id": "S1", "title": "a", "write_surface": ["src/"]},
            {"id": "S2", "title": "b", "depends_on": ["S1"], "acceptance": ["ok"]},
        ],
        "enforcement": ["a note"],
        "mode": "sequential",
    }
    stories = plan_from_json(json.dumps(document).encode())
    assert [s.id for s in stories] == ["S1", "S2"]
    assert stories[0].write_surface == ["src/**"]
    assert stories[1].depends_on == ["S1"]


def test_plan_from_json_bad_json_says_where() -> None:
    message = plan_file_error('{"stories": [\n  {"id": "S1",}\n]}')
    assert message.startswith("the plan is not valid JSON: ")
    assert "line 2 column" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", 'the plan must be a JSON object {"stories": [...]}, not a list'),
        ("{}", 'the plan has no "stories" key'),
        ('{"stories": {}}', '"stories" must be a list, not an object'),
        ('{"stories": []}', "the plan has no stories"),
        ('{"stories": [3]}', "stories[0] must be an object, not a number"),
        ('{"stories": [{"title": "t"}]}', "stories[0] has no 'id'"),
        ('{"stories": [{"id": "S1"}]}', "stories[0] has no 'title'"),
        ('{"stories": [{"id": 1, "title": "t"}]}', "stories[0].id must be a string, not a number"),
        (
            '{"stories": [{"id": "S1", "title": "t", "depends_on": "S0"}]}',
            "stories[0].depends_on must be a list of strings, not a string",
        ),
        (
            '{"stories": [{"id": "S1", "title": "t", "write_surface": [null]}]}',
            "stories[0].write_surface[0] must be a string, not null",
        ),
        (
            '{"stories": [{"id": "S1", "title": "t"}, {"id": "S2", "title": "t", "dependsOn": ["S1"]}]}',
            "stories[1] has unknown field 'dependsOn' (known: id, title, description, "
            "depends_on, write_surface, acceptance, backend, model, effort)",
        ),
    ],
)
def test_plan_from_json_shape_errors(text: str, expected: str) -> None:
    assert plan_file_error(text) == expected


def test_plan_from_json_runs_validation() -> None:
    text = '{"stories": [{"id": "S1", "title": "t", "depends_on": ["S1"]}]}'
    assert plan_file_error(text) == "story 'S1' depends on itself"


def test_stories_from_data_accepts_parsed_json() -> None:
    assert stories_from_data({"stories": [{"id": "S1", "title": "t"}]})[0].title == "t"


# --------------------------------------------------------------------------- robustness

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["stories", "id", "title", "description", "depends_on", "write_surface", "x"]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_any_json_is_a_plan_or_one_clear_plan_error(document: object) -> None:
    try:
        stories_from_data(document)
    except PlanError as exc:
        assert str(exc) and "\n" not in str(exc)


def test_deeply_nested_json_is_a_plan_error() -> None:
    assert "nested too deeply" in plan_file_error("[" * 100_000)
