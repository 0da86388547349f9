"""baro_planner.llm_plan: the prompt's contract and bounds, strict parsing, the repair prompt."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baro_planner.llm_plan import build_plan_prompt, parse_plan, repair_prompt
from baro_shared.plan import PlanError
from baro_shared.schemas import Caps, Mode

PLAN = {
    "stories": [
        {"id": "S1", "title": "Parse the flag", "write_surface": ["src/cli.py"]},
        {"id": "S2", "title": "Use the flag", "depends_on": ["S1"], "acceptance": ["works"]},
    ]
}
PLAN_JSON = json.dumps(PLAN, indent=2)


# --------------------------------------------------------------------------- prompt


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("focused", "output EXACTLY ONE story"),
        ("sequential", "a short chain of stories run one at a time"),
        (
            "parallel",
            "only when neither depends on the other AND their write surfaces share no file",
        ),
    ],
)
def test_prompt_states_the_mode_contract(mode: Mode, words: str) -> None:
    prompt = build_plan_prompt("Do it", mode, Caps(max_stories=4, parallelism=3), ["a.py"])
    assert f"Execution mode (already decided; do not reconsider it): {mode}" in prompt
    assert words in prompt
    assert '"write_surface"' in prompt and '"depends_on"' in prompt
    assert prompt.rstrip().endswith("Goal:\n<<<\nDo it\n>>>")


def test_prompt_caps() -> None:
    parallel = build_plan_prompt("g", "parallel", Caps(max_stories=5, parallelism=3), [])
    assert "At most 5 stories. This is a cap, not a target." in parallel
    assert "At most 3 stories run at the same time." in parallel
    assert "one last story, depending on all of them, registers them" in parallel
    assert "the tests for that change are one story" in parallel
    focused = build_plan_prompt("g", "focused", Caps(max_stories=5, parallelism=3), [])
    assert "At most 1 story." in focused
    assert "run at the same time" not in focused


def test_prompt_lists_all_files_when_few() -> None:
    prompt = build_plan_prompt("g", "sequential", Caps(), ["b.py", "a.py", "a.py"])
    assert "Repository files (2 of 2):\na.py\nb.py" in prompt


def test_file_list_is_bounded_and_summarized() -> None:
    files = [f"src/pkg{i}/mod{j}.py" for i in range(50) for j in range(40)] + ["README.md"]
    files.append("src/pkg7/deep/parser.py")
    prompt = build_plan_prompt("Make parser.py strict", "parallel", Caps(), files, max_files=25)
    listed = prompt.split("Repository files (25 of 2002):\n", 1)[1].split("\n... and", 1)[0]
    assert len(listed.splitlines()) == 25
    assert "src/pkg7/deep/parser.py" in listed, "files the goal names come first"
    assert "README.md" in listed, "then the shallowest"
    assert "... and 1977 more, by directory:" in prompt
    assert "... and 10 more directories" in prompt
    assert len(prompt) < 6000


def test_zero_files() -> None:
    assert "Repository files: (none listed)" in build_plan_prompt("g", "parallel", Caps(), [])


# --------------------------------------------------------------------------- parsing


def test_parse_bare_json() -> None:
    stories = parse_plan(PLAN_JSON)
    assert [s.id for s in stories] == ["S1", "S2"]
    assert stories[1].depends_on == ["S1"]


def test_parse_json_in_prose_and_fences() -> None:
    text = f"Here is the plan {{ as asked }}:\n\n```json\n{PLAN_JSON}\n```\nLet me know!"
    assert [s.title for s in parse_plan(text)] == ["Parse the flag", "Use the flag"]


def test_parse_prefers_the_object_holding_stories() -> None:
    text = '{"thinking": "two steps"}\n' + PLAN_JSON
    assert len(parse_plan(text)) == 2


def test_parse_braces_inside_strings() -> None:
    plan = {"stories": [{"id": "S1", "title": "Handle {} and }{ in templates"}]}
    assert parse_plan("ok: " + json.dumps(plan))[0].title == "Handle {} and }{ in templates"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("I could not plan this.", "the answer contains no JSON object"),
        ('```json\n{"stories": [\n```', "the answer contains no JSON object"),
        ('{"plan": []}', 'the plan has no "stories" key'),
        ('{"stories": []}', "the plan has no stories"),
        (
            '{"stories": [{"id": "S1", "title": "a", "depends_on": ["S2"]}]}',
            "story 'S1' depends on unknown story 'S2'",
        ),
        (
            '{"stories": [{"id": "S1", "title": "a", "depends_on": ["S2"]}, {"id": "S2", "title": "b", "depends_on": ["S1"]}]}',
            "dependency cycle: S1 -> S2 -> S1",
        ),
        (
            '{"stories": [{"id": "S1", "title": "a", "write_surface": ["../x"]}]}',
            "leaves the repository",
        ),
        (
            '{"stories": [{"id": "S1", "title": "a", "writes": ["x"]}]}',
            "stories[0] has unknown field 'writes'",
        ),
    ],
)
def test_parse_errors(text: str, error: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_plan(text)
    assert error in str(caught.value)


# --------------------------------------------------------------------------- repair


def test_repair_prompt_carries_the_error_the_answer_and_the_shape() -> None:
    prompt = repair_prompt('```json\n{"stories": [}\n```', "the answer contains no JSON object")
    assert "Problem: the answer contains no JSON object" in prompt
    assert '{"stories": [}' in prompt
    assert '"write_surface"' in prompt
    assert "exactly one JSON object" in prompt


def test_repair_prompt_is_bounded() -> None:
    prompt = repair_prompt("x" * 100_000, "too long")
    assert len(prompt) < 25_000
    assert "[... answer cut here ...]" in prompt


def test_a_repaired_answer_parses() -> None:
    bad = '{"stories": [{"id": "S1", "title": "a", "depends_on": ["S1"]}]}'
    with pytest.raises(PlanError) as caught:
        parse_plan(bad)
    assert "S1" in repair_prompt(bad, str(caught.value))
    assert parse_plan('{"stories": [{"id": "S1", "title": "a"}]}')[0].id == "S1"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]":,abS1 \n`', max_size=80))
def test_any_answer_is_a_plan_or_one_clear_plan_error(text: str) -> None:
    try:
        parse_plan(text)
    except PlanError as exc:
        assert str(exc) and "\n" not in str(exc)


def test_deeply_nested_answer_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="the answer contains no JSON object"):
        parse_plan('{"stories": ' + "[" * 100_000)


def test_a_run_of_braces_before_the_plan_is_skipped() -> None:
    assert len(parse_plan("{" * 50_000 + PLAN_JSON[1:])) == 2
