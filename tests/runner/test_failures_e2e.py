"""Failures a user can act on, through the whole stack on a real nats-server.

Each backend's CLI is stood in for by a program that replays what the real CLI printed
when it failed (tests/mappers/cli_failures/, captured from the real CLIs): stdout, stderr
and exit code. The runner starts it exactly as it would start the real CLI, and the
backend's own mapper reads it. The scripted agent plays the provider failures the budget
is about (a persistent 429, a 400).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo
from tests.e2e.conftest import replay, request_for, run_to_end

CAPTURES = Path(__file__).resolve().parents[1] / "mappers" / "cli_failures"
CASES = json.loads((CAPTURES / "cases.json").read_text())
FILES = {"app.py": "def greet():\n    return 'helo'\n"}
BACKENDS = ("claude", "codex", "opencode", "pi")
# an OpenCode or Pi model names its provider, whose key the message then names
PROVIDER_MODEL = "anthropic/claude-sonnet-4-5"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The suite's settings, a short first retry delay, and a stand-in for each CLI."""
    bins = tmp_path / "bin"
    bins.mkdir()
    stand_ins = {f"{backend}_bin": str(bins / backend) for backend in BACKENDS}
    return settings.model_copy(update={"retry_delay_s": 0.2, **stand_ins})


def replaying(settings: Settings, case: str) -> str:
    """Make the case's backend CLI a replay of the real capture; the backend's name."""
    backend = CASES[case]["backend"]
    stub = Path(getattr(settings, f"{backend}_bin"))
    stdout, stderr = CAPTURES / f"{case}.jsonl", CAPTURES / f"{case}.stderr"
    stub.write_text(
        "#!/bin/sh\n"
        f"cat {shlex.quote(str(stdout))}\n"
        f"cat {shlex.quote(str(stderr))} >&2\n"
        f"exit {CASES[case]['exit_code']}\n"
    )
    stub.chmod(0o755)
    return backend


def finished(events: list[s.Event]) -> list[s.StoryFinished]:
    return [e for e in events if isinstance(e, s.StoryFinished)]


def agent_runs(events: list[s.Event]) -> int:
    return len([e for e in events if isinstance(e, s.StoryStarted)])


AUTH_CASES = {
    "claude_401": "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN",
    "claude_not_logged_in": "ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN",
    "codex_401": "CODEX_API_KEY or OPENAI_API_KEY",
    "opencode_401": "ANTHROPIC_API_KEY",
    "pi_401": "ANTHROPIC_API_KEY",
    "pi_no_key": "ANTHROPIC_API_KEY",
}


@pytest.mark.parametrize("case", sorted(AUTH_CASES))
async def test_an_authentication_failure_fails_once_and_names_the_variable(
    case: str, bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    backend = replaying(settings, case)
    repo = make_repo(tmp_path / "user", FILES)
    model = PROVIDER_MODEL if backend in ("opencode", "pi") else None
    # retries=3: a permanent failure is not run again however many retries are allowed
    request = request_for(repo, "fix greet", backend=backend, model=model)
    request.limits.retries = 3
    report = await run_to_end(bus, request)

    assert report.status == "failed"
    events = await replay(bus, request.run_id)
    story = finished(events)
    assert [(f.status, f.exit_reason) for f in story] == [("failed", "auth_failed")]
    assert agent_runs(events) == 1, "no second agent run"
    error = story[0].error or ""
    assert f"set {AUTH_CASES[case]} in the environment baro runs in" in error
    assert "does not reach baro's agents" in error
    assert AUTH_CASES[case] in (report.reason or ""), report.reason


async def test_an_agent_that_exits_without_a_result_shows_its_stderr(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    replaying(settings, "pi_no_key")
    repo = make_repo(tmp_path / "user", FILES)
    request = request_for(repo, "fix greet", backend="pi", model=PROVIDER_MODEL)
    report = await run_to_end(bus, request)

    error = finished(await replay(bus, request.run_id))[0].error or ""
    assert error.startswith("pi exited with code 1 without a result; its stderr ends: ")
    assert "No API key found for anthropic." in error
    assert "No API key found for anthropic." in (report.reason or "")


async def test_a_cli_that_only_reconnects_stalls_and_ends_within_the_budget(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    """Codex without a network prints "Reconnecting... waiting for network" for ever (real
    capture): no progress, so the stall timer ends each attempt, and the budget the run."""
    lines = (CAPTURES / "codex_no_network.jsonl").read_text().splitlines()
    stub = Path(settings.codex_bin)
    stub.write_text(
        "#!/bin/sh\n"
        + "".join(f"echo {shlex.quote(line)}\n" for line in lines)
        + f"while :; do echo {shlex.quote(lines[-1])}; sleep 0.1; done\n"
    )
    stub.chmod(0o755)
    repo = make_repo(tmp_path / "user", FILES)
    limits = s.Limits(max_attempts=2, story_timeout_s=120, stall_timeout_s=2.0)
    request = request_for(repo, "fix greet", backend="codex", limits=limits)
    report = await run_to_end(bus, request)

    assert report.status == "failed"
    story = finished(await replay(bus, request.run_id))
    assert [(f.status, f.exit_reason) for f in story] == [
        ("retryable", "stalled"),
        ("failed", "retries_exhausted"),
    ]
    assert "no progress for 2s; the agent kept retrying: Reconnecting... waiting for network" in (
        story[-1].error or ""
    )


async def test_a_persistent_rate_limit_ends_within_the_story_budget(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    """Every attempt gets a 429: the runner hands the story back with a delay that never
    runs past the budget's window, the conductor does not start a second cycle, and the run
    ends saying the budget is spent."""
    repo = make_repo(tmp_path / "user", FILES)
    script = {"default": {"steps": [{"api_error": {"status": 429, "message": "slow down"}}]}}
    window = 3.0
    limits = s.Limits(max_attempts=50, retry_window_s=window, story_timeout_s=60, retries=1)
    request = request_for(repo, "fix greet", script, limits=limits)
    report = await run_to_end(bus, request)

    assert report.status == "failed"
    events = await replay(bus, request.run_id)
    story = finished(events)
    *handed_back, last = story
    assert handed_back and all(f.status == "retryable" for f in handed_back)
    assert (last.status, last.exit_reason) == ("failed", "retries_exhausted")
    opened = story[0].ts
    for f in handed_back:
        assert f.retry_after_s is not None
        assert f.ts + f.retry_after_s <= opened + window + 0.001, "no retry after the window"
    assert last.ts >= opened + window - 0.5 or len(story) == 50
    assert [f.attempt for f in story] == list(range(1, len(story) + 1))
    assert agent_runs(events) == len(story), "one budget: no fresh cycle from the conductor"
    assert "retry budget: 50 attempts within 3s" in (last.error or "")
    assert "slow down" in (report.reason or "")


async def test_the_attempts_of_the_budget_bound_a_transient_failure(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {"default": {"steps": [{"api_error": {"status": 529, "message": "Overloaded"}}]}}
    limits = s.Limits(max_attempts=3, retry_window_s=600, story_timeout_s=60, retries=1)
    request = request_for(repo, "fix greet", script, limits=limits)
    report = await run_to_end(bus, request)

    assert report.status == "failed"
    events = await replay(bus, request.run_id)
    story = finished(events)
    assert [(f.attempt, f.status) for f in story] == [
        (1, "retryable"),
        (2, "retryable"),
        (3, "failed"),
    ]
    assert (story[-1].error or "").startswith("gave up after 3 attempts in ")
    assert agent_runs(events) == 3


async def test_a_rejected_request_costs_exactly_one_agent_run(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {"default": {"steps": [{"api_error": {"status": 400, "message": "bad request"}}]}}
    request = request_for(repo, "fix greet", script, limits=s.Limits(retries=3))
    report = await run_to_end(bus, request)

    assert report.status == "failed"
    events = await replay(bus, request.run_id)
    assert [(f.status, f.exit_reason) for f in finished(events)] == [("failed", "rejected")]
    assert agent_runs(events) == 1
