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
