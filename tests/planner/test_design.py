"""The design note parallel stories share: read strictly, asked once (and repaired once)
through the scripted agent answering as ``baro-architect``, or made offline from the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baro_planner.design import (
    MAX_NOTE_CHARS,
    DesignError,
    ask_for_note,
    design_prompt,
    offline_note,
    read_note,
    side_by_side,
)
from baro_planner.planning import propose
from baro_shared import oneshot
from baro_shared.oneshot import OneShotResult
from baro_shared.schemas import Caps, Story, TokenUsage
from baro_shared.settings import Settings

CAPS = Caps(max_stories=8, parallelism=4)
FILES = [
    "src/shop/api/app.py",
    "src/shop/api/routes/__init__.py",
    "src/shop/api/routes/tags.py",
    "src/shop/api/routes/notes.py",
    "tests/test_tags.py",
]
ENDPOINTS = (
    "Add a users endpoint, an orders endpoint and a products endpoint, each in its own module"
)
NOTE = (
    "Every endpoint module defines `router = APIRouter(prefix=...)` like routes/tags.py and is "
    "registered in app.py by the run's last step; shared request models live in each module."
)


def scripted(script: dict[str, object], tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    text = json.dumps(script)
    asked: list[tuple[str, str]] = []

    async def ask(prompt: str, purpose: str) -> OneShotResult:
        asked.append((purpose, prompt))
        return await oneshot.ask("scripted", prompt, settings, purpose=purpose, agent_script=text)

    return ask, asked


def architect(first: list[object], repair: list[object] | None = None) -> dict[str, object]:
    rules: list[object] = [{"match": {"id": "baro-architect"}, "steps": first}]
    if repair is not None:
        rules.append({"match": {"id": "baro-architect-repair"}, "steps": repair})
    return {"stories": rules}


# --------------------------------------------------------------------------- reading


def test_a_plain_note_is_read_as_it_is() -> None:
    assert read_note(f"```markdown\n{NOTE}\n```") == NOTE
    assert read_note("Tests live in tests/; each story adds its own test file and runs it.")


@pytest.mark.parametrize(
    "note",
    [
        "Skip the slow tests while you work.",
        "Commit with --no-verify so the hooks stay out of the way.",
        "Mark flaky cases with pytest.mark.skip.",
        "Disable the pre-commit hooks for this change.",
        "Do not run the tests; the merge will.",
        "Add `# type: ignore` where mypy complains.",
        "Set HUSKY=0 before committing.",
        "Feel free to delete failing assertions.",
    ],
)
def test_a_note_that_gets_around_the_checks_is_rejected(note: str) -> None:
    with pytest.raises(DesignError, match="get around the checks"):
        read_note(note)


def test_an_empty_or_oversized_note_is_rejected() -> None:
    with pytest.raises(DesignError, match="empty"):
        read_note("  \n")
    with pytest.raises(DesignError, match="too long"):
        read_note("word " * (MAX_NOTE_CHARS // 4))


# --------------------------------------------------------------------------- offline


def _endpoint_stories() -> list[Story]:
    from baro_planner.deterministic import plan_goal

    stories = plan_goal(ENDPOINTS, "parallel", CAPS, FILES)
    assert stories is not None
    return stories


def test_the_offline_note_says_who_writes_what_and_whose_files_to_follow() -> None:
    note = offline_note(_endpoint_stories(), FILES)
    assert "3 stories run side by side" in note
    assert "- S1 (Add a users endpoint): src/shop/api/routes/users.py" in note
    assert "- S3 (Add a products endpoint): src/shop/api/routes/products.py" in note
    assert "do not change it unless your story says so" in note
    assert "new files in src/shop/api/routes/ follow notes.py, tags.py" in note
    assert offline_note(_endpoint_stories(), FILES) == note, "deterministic"


def test_only_stories_that_can_overlap_in_time_are_side_by_side() -> None:
    chain = [Story(id="A", title="a"), Story(id="B", title="b", depends_on=["A"])]
    assert side_by_side(chain) == []
    fan = [*chain, Story(id="C", title="c")]
    assert [st.id for st in side_by_side(fan)] == ["A", "B", "C"]
    diamond = [
        Story(id="A", title="a"),
        Story(id="B", title="b", depends_on=["A"]),
        Story(id="C", title="c", depends_on=["A"]),
        Story(id="D", title="d", depends_on=["B", "C"]),
    ]
    assert [st.id for st in side_by_side(diamond)] == ["B", "C"]


# --------------------------------------------------------------------------- asking


def test_the_question_names_the_stories_their_files_and_the_repository() -> None:
    prompt = design_prompt(ENDPOINTS, _endpoint_stories(), FILES)
    assert "- S2: Add an orders endpoint (writes src/shop/api/routes/orders.py)" in prompt
    assert "src/shop/api/routes/tags.py" in prompt
    assert prompt.rstrip().endswith(f"Goal:\n<<<\n{ENDPOINTS}\n>>>")


async def test_the_architect_answers_and_its_tokens_are_counted(tmp_path: Path) -> None:
    ask, asked = scripted(
        architect([{"text": NOTE}, {"usage": {"input": 200, "output": 60}}]), tmp_path
    )
    note = await ask_for_note(ENDPOINTS, _endpoint_stories(), FILES, ask, "scripted")
    assert (note.text, note.source, note.notes) == (NOTE, "model", [])
    assert note.tokens == TokenUsage(input=200, cached_input=0, output=60, cost_usd=0.0)
    assert [purpose for purpose, _ in asked] == ["architect"]


async def test_an_unusable_note_is_repaired_once(tmp_path: Path) -> None:
    script = architect(
        [{"text": "Skip the tests until the end."}, {"usage": {"input": 100, "output": 10}}],
        [{"text": NOTE}, {"usage": {"input": 120, "output": 40}}],
    )
    ask, asked = scripted(script, tmp_path)
    note = await ask_for_note(ENDPOINTS, _endpoint_stories(), FILES, ask, "scripted")
    assert note.text == NOTE and note.source == "model"
    assert note.tokens == TokenUsage(input=220, cached_input=0, output=50, cost_usd=0.0)
    assert "get around the checks" in asked[1][1], "the repair says what was wrong"
    assert note.notes == [
        "scripted's first design note was not usable (the note tells agents to get around "
        'the checks ("Skip the tests")); its repair was used'
    ]


async def test_two_unusable_notes_fall_back_to_the_planners_summary(tmp_path: Path) -> None:
    bad = [{"text": "Use --no-verify."}, {"usage": {"input": 10, "output": 1}}]
    ask, _ = scripted(architect(bad, bad), tmp_path)
    stories = _endpoint_stories()
    note = await ask_for_note(ENDPOINTS, stories, FILES, ask, "scripted")
    assert note.source == "offline" and note.text == offline_note(stories, FILES)
    assert note.tokens == TokenUsage(input=20, cached_input=0, output=2, cost_usd=0.0)
    assert note.notes[0].startswith("scripted's design note was not usable, even after one repair")
    assert note.notes[0].endswith("the planner's own summary was used")


# --------------------------------------------------------------------------- in planning


async def test_a_structured_parallel_goal_gets_the_offline_note_without_a_question(
    tmp_path: Path,
) -> None:
    ask, asked = scripted(architect([{"text": NOTE}]), tmp_path)
    proposal = await propose(
        ENDPOINTS, "parallel", CAPS, FILES, backend="scripted", installed=True, ask=ask, design=True
    )
    assert proposal.ok and proposal.design is not None
    assert proposal.design.source == "offline" and asked == []
    assert proposal.design.text == offline_note(proposal.stories, FILES)


async def test_no_note_outside_parallel_mode_or_for_one_story(tmp_path: Path) -> None:
    ask, asked = scripted(architect([{"text": NOTE}]), tmp_path)
    kw = {"backend": "scripted", "installed": True, "ask": ask, "design": True, "strategy": "llm"}
    chain = await propose("First add a.py, then use it in b.py", "sequential", CAPS, [], **kw)  # type: ignore[arg-type]
    assert chain.design is None
    single = await propose("Add a.py", "focused", CAPS, [], **kw)  # type: ignore[arg-type]
    assert single.design is None
    assert all(purpose.startswith("planner") for purpose, _ in asked), "no architect question"


async def test_asked_for_a_model_the_architect_writes_the_note_for_the_plan(tmp_path: Path) -> None:
    ask, asked = scripted(architect([{"text": NOTE}]), tmp_path)
    proposal = await propose(
        ENDPOINTS,
        "parallel",
        CAPS,
        FILES,
        strategy="llm",
        backend="scripted",
        installed=True,
        ask=ask,
        design=True,
    )
    # the model plans too (strategy llm): the note comes first and the plan prompt carries it
    assert [purpose for purpose, _ in asked][:2] == ["architect", "planner"]
    assert "Shared design (every story will receive it" in asked[1][1]
    assert NOTE in asked[1][1]
    assert proposal.design is not None and proposal.design.text == NOTE


async def test_a_given_plan_is_not_planned_again_only_given_a_note(tmp_path: Path) -> None:
    given = [
        Story(id="A", title="Write docs/a.md", write_surface=["docs/a.md"]),
        Story(id="B", title="Write docs/b.md", write_surface=["docs/b.md"]),
    ]
    proposal = await propose("docs", "parallel", CAPS, ["docs/index.md"], design=True, given=given)
    assert proposal.planner == "given" and proposal.stories == given
    assert (
        proposal.design is not None and "- A (Write docs/a.md): docs/a.md" in proposal.design.text
    )
    assert "new files in docs/ follow index.md" in proposal.design.text
