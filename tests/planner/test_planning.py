"""baro_planner.planning: which planner runs, and the model flow with the scripted agent as
the backend CLI (a real subprocess answering from its script)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baro_planner.planning import Proposal, Strategy, propose, uses_model
from baro_shared import oneshot
from baro_shared import schemas as s
from baro_shared.oneshot import OneShotResult
from baro_shared.schemas import Caps, Mode, TokenUsage
from baro_shared.settings import Settings

PLAN = {
    "stories": [
        {"id": "S1", "title": "Parse the flag", "write_surface": ["src/cli.py"]},
        {"id": "S2", "title": "Document the flag", "write_surface": ["docs/cli.md"]},
    ]
}
CAPS = Caps(max_stories=4, parallelism=2)
FREE_FORM = "make the command line nicer to use"


def scripted(script: dict[str, object], tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    text = json.dumps(script)

    async def ask(prompt: str, purpose: str) -> OneShotResult:
        return await oneshot.ask("scripted", prompt, settings, purpose=purpose, agent_script=text)

    return ask


def answers(first: list[dict[str, object]], repair: list[dict[str, object]] | None = None):  # type: ignore[no-untyped-def]
    rules = [{"match": {"id": "baro-planner"}, "steps": first}]
    if repair is not None:
        rules.append({"match": {"id": "baro-planner-repair"}, "steps": repair})
    return {"stories": rules}


@pytest.mark.parametrize(
    ("strategy", "mode", "structured", "backend", "installed", "expected"),
    [
        ("auto", "parallel", False, "claude", True, True),
        ("auto", "sequential", False, "codex", True, True),
        ("auto", "parallel", True, "claude", True, False),  # the goal's structure suffices
        ("auto", "parallel", False, "claude", False, False),  # no CLI: no model
        ("auto", "parallel", False, "scripted", True, False),  # no model behind it
        ("auto", "parallel", False, None, True, False),
        ("auto", "focused", False, "claude", True, False),  # focused never asks
        ("llm", "focused", False, "claude", True, False),
        ("llm", "parallel", True, "scripted", True, True),  # asked for: always
        ("llm", "sequential", False, "claude", False, True),  # (and fails clearly)
        ("deterministic", "parallel", False, "claude", True, False),
    ],
)
def test_when_a_model_plans(
    strategy: Strategy,
    mode: Mode,
    structured: bool,
    backend: str | None,
    installed: bool,
    expected: bool,
) -> None:
    assert uses_model(strategy, mode, structured, backend, installed) is expected


async def test_auto_without_a_model_plans_the_goal_as_one_story() -> None:
    proposal = await propose(FREE_FORM, "parallel", CAPS, [], backend="scripted", installed=True)
    assert proposal.ok and proposal.planner == "single"
    assert [st.title for st in proposal.stories] == [FREE_FORM]
    assert proposal.notes == [
        "the goal states no steps or units to split along; planned as one story"
    ]
    assert proposal.tokens == TokenUsage()


async def test_a_structured_goal_needs_no_model(tmp_path: Path) -> None:
    goal = "add tests for a.py, b.py and c.py"
    proposal = await propose(goal, "parallel", CAPS, ["src/a.py", "b.py", "c.py"])
    assert proposal.ok and proposal.planner == "deterministic"
    assert [st.write_surface for st in proposal.stories] == [
        ["tests/test_a.py"],
        ["tests/test_b.py"],
        ["tests/test_c.py"],
    ]


async def test_the_model_plan_is_read_and_its_tokens_counted(tmp_path: Path) -> None:
    ask = scripted(
        answers([{"text": json.dumps(PLAN)}, {"usage": {"input": 300, "output": 40}}]), tmp_path
    )
    proposal = await propose(
        FREE_FORM,
        "parallel",
        CAPS,
        ["src/cli.py"],
        strategy="llm",
        backend="scripted",
        installed=True,
        ask=ask,
    )
    assert proposal.ok and proposal.planner == "llm"
    assert [st.id for st in proposal.stories] == ["S1", "S2"]
    assert proposal.notes == ["planned by scripted (2 stories)"]
    assert proposal.tokens == TokenUsage(input=300, cached_input=0, output=40, cost_usd=0.0)


async def test_an_unusable_answer_is_repaired_once(tmp_path: Path) -> None:
    script = answers(
        [
            {"text": "Sure! Two stories: parse, then document."},
            {"usage": {"input": 100, "output": 10}},
        ],
        [
            {"text": "```json\n" + json.dumps(PLAN) + "\n```"},
            {"usage": {"input": 150, "output": 30}},
        ],
    )
    proposal = await propose(
        FREE_FORM,
        "sequential",
        CAPS,
        [],
        strategy="llm",
        backend="scripted",
        installed=True,
        ask=scripted(script, tmp_path),
    )
    assert proposal.ok and len(proposal.stories) == 2
    assert proposal.notes[1] == (
        "scripted's first plan was not usable (the answer contains no JSON object); "
        "its repaired plan was used"
    )
    assert proposal.tokens == TokenUsage(input=250, cached_input=0, output=40, cost_usd=0.0)


async def test_two_unusable_answers_fail_clearly_and_count_their_tokens(tmp_path: Path) -> None:
    cyclic = {
        "stories": [
            {"id": "S1", "title": "a", "depends_on": ["S2"]},
            {"id": "S2", "title": "b", "depends_on": ["S1"]},
        ]
    }
    script = answers(
        [{"text": json.dumps(cyclic)}, {"usage": {"input": 100, "output": 10}}],
        [{"text": json.dumps(cyclic)}, {"usage": {"input": 120, "output": 12}}],
    )
    proposal = await propose(
        FREE_FORM,
        "parallel",
        CAPS,
        [],
        strategy="llm",
        backend="scripted",
        installed=True,
        ask=scripted(script, tmp_path),
    )
    assert not proposal.ok and proposal.stories == []
    assert proposal.error == (
        "scripted did not return a usable plan, even after one repair: dependency cycle: "
        "S1 -> S2 -> S1 (retry, or give the stories yourself with --plan-file)"
    )
    assert proposal.tokens == TokenUsage(input=220, cached_input=0, output=22, cost_usd=0.0)


async def test_a_failing_cli_is_not_asked_to_repair(tmp_path: Path) -> None:
    script = answers(
        [{"api_error": {"status": 401, "message": "invalid x-api-key"}}],
        [{"text": json.dumps(PLAN)}],
    )
    proposal = await propose(
        FREE_FORM,
        "parallel",
        CAPS,
        [],
        strategy="llm",
        backend="scripted",
        installed=True,
        ask=scripted(script, tmp_path),
    )
    assert not proposal.ok
    assert proposal.error is not None
    assert proposal.error.startswith("the scripted CLI failed while planning: ")
    assert "invalid x-api-key" in proposal.error


async def test_asking_for_a_model_without_its_cli_fails_clearly() -> None:
    proposal: Proposal = await propose(
        FREE_FORM, "parallel", CAPS, [], strategy="llm", backend="codex", installed=False
    )
    assert not proposal.ok
    assert proposal.error == (
        "the codex CLI is not installed, so no model can plan this goal "
        "(install it, or plan without a model)"
    )


async def test_focused_never_asks_even_when_llm_is_asked_for() -> None:
    proposal = await propose(
        "rename foo to bar everywhere",
        "focused",
        CAPS,
        [],
        strategy="llm",
        backend="codex",
        installed=False,
    )
    assert proposal.ok and proposal.planner == "single" and len(proposal.stories) == 1


async def test_a_model_plans_the_clarified_goal_with_all_of_its_envelope() -> None:
    asked: list[str] = []

    async def ask(prompt: str, purpose: str) -> OneShotResult:
        asked.append(prompt)
        return OneShotResult(True, json.dumps(PLAN), texts=[json.dumps(PLAN)])

    envelope = s.GoalEnvelope(
        objective=FREE_FORM + " — the --verbose flag",
        acceptance_criteria=["--verbose prints each step"],
        non_goals=["the config file"],
    )
    proposal = await propose(
        envelope.objective, "sequential", CAPS, [], strategy="llm", backend="claude",
        installed=True, ask=ask, envelope=envelope,
    )  # fmt: skip
    assert proposal.ok
    (prompt,) = asked
    assert f"**Objective:** {envelope.objective}" in prompt
    assert "- --verbose prints each step" in prompt and "- the config file" in prompt
