"""One-shot questions (intake, planner) fail and retry as a story's attempts do: the same
classification and the same budget, with the scripted agent as the CLI (a real subprocess
that answers each asking as its attempt number says)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from baro_shared import oneshot
from baro_shared.schemas import Limits
from baro_shared.settings import Settings

PURPOSE = "planner"


def settings_for(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state", retry_delay_s=0.05)


def script(*per_attempt: list[dict[str, object]], then: list[dict[str, object]]) -> str:
    rules: list[dict[str, object]] = [
        {"match": {"id": f"baro-{PURPOSE}"}, "attempts": [n], "steps": steps}
        for n, steps in enumerate(per_attempt, start=1)
    ]
    rules.append({"match": {"id": f"baro-{PURPOSE}"}, "steps": then})
    return json.dumps({"stories": rules})


def api_error(status: int, message: str) -> list[dict[str, object]]:
    return [
        {"usage": {"input": 10, "output": 1}},
        {"api_error": {"status": status, "message": message}},
    ]


ANSWER: list[dict[str, object]] = [{"usage": {"input": 100, "output": 5}}, {"text": "PONG"}]


async def ask(tmp_path: Path, text: str, limits: Limits | None = None) -> oneshot.OneShotResult:
    return await oneshot.ask(
        "scripted", "ping", settings_for(tmp_path), purpose=PURPOSE, agent_script=text,
        limits=limits,
    )  # fmt: skip


async def test_a_transient_failure_is_asked_again_and_every_asking_counts(tmp_path: Path) -> None:
    answer = await ask(tmp_path, script(api_error(529, "Overloaded"), then=ANSWER))
    assert answer.ok and answer.text == "PONG" and answer.attempts == 2
    assert (answer.usage.input, answer.usage.output) == (110, 6)


async def test_a_persistent_rate_limit_ends_within_the_budget(tmp_path: Path) -> None:
    limits = Limits(max_attempts=3, retry_window_s=600)
    answer = await ask(tmp_path, script(then=api_error(429, "Rate limited")), limits)
    assert not answer.ok and answer.failure == "transient" and answer.attempts == 3
    assert re.match(
        r"gave up after 3 attempts in \d+s \(retry budget: 3 attempts within 600s\): "
        r"API Error: 429 ",
        answer.error or "",
    ), answer.error


@pytest.mark.parametrize(
    ("status", "kind"), [(401, "auth"), (400, "rejected")], ids=["auth", "rejected"]
)
async def test_a_refused_key_or_request_is_asked_once(
    tmp_path: Path, status: int, kind: str
) -> None:
    answer = await ask(tmp_path, script(then=api_error(status, "no")))
    assert not answer.ok and answer.failure == kind and answer.attempts == 1
    if kind == "auth":  # the scripted agent stands in for Claude Code
        assert "set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN in the environment" in (
            answer.error or ""
        )


async def test_the_clis_own_failure_is_asked_again_as_often_as_the_run_allows(
    tmp_path: Path,
) -> None:
    failing = [{"fail": "I could not answer"}]
    once = await ask(tmp_path, script(failing, then=ANSWER))
    assert once.ok and once.attempts == 2, "Limits.retries is 1 by default"
    never = await ask(tmp_path, script(failing, then=ANSWER), Limits(retries=0))
    assert not never.ok and never.failure is None and never.attempts == 1
    assert never.error == "I could not answer"
