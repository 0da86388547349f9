"""One tool-less question per real CLI (what intake and the planner ask), through
``oneshot.ask`` with baro's settings pointing the CLI at the scripted model server."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_shared import oneshot
from tests.cli_contract.conftest import BACKENDS, contract_settings
from tests.cli_contract.model_server import Script, ScriptedModelServer, strings_in

pytestmark = [pytest.mark.cli, pytest.mark.timeout(300)]

ANSWER = '{"mode": "focused", "confidence": 0.9, "reason": "one file"}'


@pytest.mark.parametrize("backend", list(BACKENDS))
async def test_a_question_is_answered_without_tools(
    backend: str,
    model_server: ScriptedModelServer,
    credentials: dict[str, str],
    tmp_path: Path,
) -> None:
    # Codex has no tool-less mode: its question runs in a read-only sandbox, and the
    # server answers with text even though the request offers tools.
    model_server.reset(Script(answer_text=ANSWER, text_only=backend == "codex"))
    settings = contract_settings("nats://127.0.0.1:1", tmp_path, model_server)
    result = await oneshot.ask(
        backend,
        "Which mode fits the goal 'fix the typo in app.py'? Answer in JSON.",
        settings,
        purpose="intake",
        model=BACKENDS[backend].model,
        timeout=240,
    )
    assert result.ok, result.error
    assert result.text == ANSWER

    calls = model_server.model_calls()
    assert calls and all(c.answer == "text" for c in calls)
    api = BACKENDS[backend].api
    assert {c.credential for c in calls} == {credentials[api]}
    if backend != "codex":
        assert all(c.tools == () for c in calls), "the question offered the model tools"
    # one question = one model call in the stream (OpenCode's title call is not in it)
    reported = calls[-1].usage
    assert reported is not None
    assert result.usage.input == reported["input"]
    assert result.usage.cached_input == reported["cached_input"]
    assert result.usage.output == reported["output"]


@pytest.mark.parametrize("backend", list(BACKENDS))
async def test_a_prompt_longer_than_one_argument_may_be_reaches_the_model(
    backend: str,
    model_server: ScriptedModelServer,
    credentials: dict[str, str],
    tmp_path: Path,
) -> None:
    """240 KB: past the kernel's 128 KiB limit on one argument, so only stdin carries it;
    its last words reach the model."""
    model_server.reset(Script(answer_text=ANSWER, text_only=True))
    settings = contract_settings("nats://127.0.0.1:1", tmp_path, model_server)
    marker = "the-last-words-of-the-prompt"
    prompt = "Answer in JSON. " + "context line\n" * 18_000 + marker
    seen: list[str] = []
    model_server.on_body = lambda body: seen.extend(strings_in(body))
    result = await oneshot.ask(
        backend, prompt, settings, purpose="intake", model=BACKENDS[backend].model, timeout=240
    )
    assert result.ok, result.error
    assert any(marker in text for text in seen), "the end of the prompt never reached the model"


REVIEW = '{"verdict": "revise", "reasons": ["app.VALUE is 3; the criterion asks for 2"]}'


async def test_claude_answers_the_critics_question(
    model_server: ScriptedModelServer, credentials: dict[str, str], tmp_path: Path
) -> None:
    """The critic's question as the planner asks it: the verdict is read from a real CLI."""
    from baro_planner.critic import review_story
    from baro_shared.schemas import CheckResult, Story

    model_server.reset(Script(answer_text=REVIEW))
    settings = contract_settings("nats://127.0.0.1:1", tmp_path, model_server)

    async def ask(prompt: str, purpose: str) -> oneshot.OneShotResult:
        return await oneshot.ask(
            "claude", prompt, settings, purpose=purpose, model=BACKENDS["claude"].model,
            timeout=240,
        )  # fmt: skip

    story = Story(id="S1", title="Set VALUE to 2", acceptance=["app.VALUE is 2"])
    checks = [CheckResult(command="pytest -q", result="passed", exit_code=0)]
    review = await review_story("set VALUE to 2", story, "+VALUE = 3\n", checks, ask, "claude")
    assert review.verdict == "revise", review.note
    assert review.reasons == ["app.VALUE is 3; the criterion asks for 2"]
    assert review.note is None and review.tokens.input > 0
    calls = model_server.model_calls()
    assert len(calls) == 1 and calls[0].tools == (), "one question, no tools"
