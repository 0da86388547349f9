"""Running the scripted agent under supervision: outcome, stalls, floods, process groups."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from baro_runner import agent
from baro_runner.backends import AgentCommand
from baro_shared import schemas as s
from baro_shared.backends import scripted_binary
from baro_shared.mappers import mapper_for
from baro_shared.settings import Settings


def command(tmp_path: Path, script: dict) -> AgentCommand:
    binary = scripted_binary(Settings())
    assert binary
    env = {
        **os.environ,
        "BARO_AGENT_SCRIPT": json.dumps(script),
        "BARO_STORY_ID": "S1",
        "BARO_ATTEMPT": "1",
    }
    repo = tmp_path / "ws"
    repo.mkdir(exist_ok=True)
    return AgentCommand(
        [binary, "-p", "do it", "--output-format", "stream-json", "--verbose"], env, repo
    )


async def supervise(
    cmd: AgentCommand,
    limits: agent.Limits | None = None,
    stop: str | None = None,
    backend: str = "scripted",
):
    events: list[s.NormalizedEvent] = []

    async def sink(e: s.NormalizedEvent) -> None:
        events.append(e)

    async def stop_check() -> str | None:
        return stop

    outcome = await agent.run_agent(
        cmd, mapper_for(backend), limits or agent.Limits(30, 60), sink, stop_check
    )
    return outcome, events


def shell(tmp_path: Path, script: str) -> AgentCommand:
    """A stand-in CLI: a shell script run as the agent."""
    repo = tmp_path / "ws"
    repo.mkdir(exist_ok=True)
    return AgentCommand(["/bin/sh", "-c", script], dict(os.environ), repo)


async def test_success_reports_usage_and_file_changes(tmp_path: Path) -> None:
    script = {
        "default": {
            "steps": [
                {"write": "a.txt", "content": "x"},
                {"usage": {"input": 10, "cached": 5, "output": 3}},
            ]
        }
    }
    outcome, events = await supervise(command(tmp_path, script))
    assert outcome.status == "success"
    assert (
        outcome.usage.input == 15 and outcome.usage.cached_input == 5 and outcome.usage.output == 3
    )
    assert any(isinstance(e, s.FileChanged) and e.path.endswith("a.txt") for e in events)
    assert (tmp_path / "ws" / "a.txt").read_text() == "x"


async def test_rate_limit_is_retryable_and_bad_request_is_not(tmp_path: Path) -> None:
    limited, _ = await supervise(
        command(
            tmp_path,
            {"default": {"steps": [{"api_error": {"status": 429, "message": "slow down"}}]}},
        )
    )
    assert limited.status == "retryable"
    bad, _ = await supervise(
        command(
            tmp_path, {"default": {"steps": [{"api_error": {"status": 400, "message": "bad"}}]}}
        )
    )
    assert bad.status == "failed"


async def test_crash_without_result_is_a_failure(tmp_path: Path) -> None:
    outcome, _ = await supervise(command(tmp_path, {"default": {"steps": [{"crash": 7}]}}))
    assert outcome.status == "failed" and outcome.exit_code == 7


async def test_stall_is_detected_and_the_agent_killed(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome, _ = await supervise(
        command(tmp_path, {"default": {"steps": [{"text": "thinking"}, {"hang": 60}]}}),
        agent.Limits(stall_timeout=1.0, wall_timeout=60, check_every=0.1),
    )
    assert outcome.status == "stalled"
    assert time.monotonic() - started < 10


async def test_outside_stop_cancels(tmp_path: Path) -> None:
    outcome, _ = await supervise(
        command(tmp_path, {"default": {"steps": [{"hang": 60}]}}),
        agent.Limits(30, 60, check_every=0.1),
        stop="run cancelled",
    )
    assert outcome.status == "cancelled" and outcome.error == "run cancelled"


async def test_token_budget_stops_the_story(tmp_path: Path) -> None:
    script = {"default": {"steps": [{"usage": {"input": 5000, "output": 500}}]}}
    outcome, _ = await supervise(command(tmp_path, script), agent.Limits(30, 60, token_budget=1000))
    assert outcome.status == "budget_exceeded"


def slow_spender(calls: int, tokens: int, pause: float) -> dict:
    """An agent that spends ``tokens`` per model call, ``calls`` times, pausing between."""
    steps: list[dict] = []
    for _ in range(calls):
        steps += [{"model_call": {"input": tokens}}, {"sleep": pause}]
    return {"default": {"steps": [*steps, {"write": "done.txt", "content": "x"}]}}


async def test_a_story_budget_stops_the_agent_as_its_usage_streams(tmp_path: Path) -> None:
    script = slow_spender(calls=20, tokens=1000, pause=1.0)
    outcome, events = await supervise(
        command(tmp_path, script), agent.Limits(30, 60, token_budget=2500, check_every=0.1)
    )
    assert outcome.status == "budget_exceeded" and outcome.exit_reason == "budget_exceeded"
    assert outcome.error == "token budget of 2,500 exceeded (3,000 spent)"  # at the third call
    assert not (tmp_path / "ws" / "done.txt").exists(), "stopped mid-story"
    # no result line came: the tokens are what its calls streamed (the third, or one more
    # if the machine was too slow to stop it within a second)
    assert outcome.usage.input in (3000, 4000) and outcome.usage.output is None
    assert [e.usage for e in events if isinstance(e, s.Usage)] == [outcome.usage]


async def test_the_run_s_allowance_stops_the_agent_and_says_so(tmp_path: Path) -> None:
    outcome, _ = await supervise(
        command(tmp_path, slow_spender(calls=20, tokens=1000, pause=1.0)),
        agent.Limits(30, 60, run_allowance=1500, run_budget=9000, check_every=0.1),
    )
    assert outcome.status == "budget_exceeded"
    assert outcome.exit_reason == s.RUN_BUDGET_EXCEEDED
    assert outcome.error == (
        "the run's token budget of 9,000: this story's share of 1,500 tokens is spent (2,000 spent)"
    )


async def test_a_budget_the_agent_stays_under_lets_it_finish(tmp_path: Path) -> None:
    outcome, _ = await supervise(
        command(tmp_path, slow_spender(calls=2, tokens=1000, pause=0.0)),
        agent.Limits(30, 60, token_budget=5000, run_allowance=5000, check_every=0.1),
    )
    assert outcome.status == "success"
    assert outcome.usage.input == 2000


async def test_flood_keeps_lines_bounded(tmp_path: Path) -> None:
    script = {"default": {"steps": [{"flood": {"lines": 50, "bytes": 6_000_000}}]}}
    outcome, events = await supervise(command(tmp_path, script))
    assert outcome.oversize_lines == 50
    assert all(len(getattr(e, "text", "")) <= 40_000 for e in events)


async def test_children_do_not_outlive_the_story(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    script = {
        "default": {
            "steps": [{"run": f"sleep 120 >/dev/null 2>&1 & echo $! > {marker}"}, {"text": "done"}]
        }
    }
    outcome, _ = await supervise(command(tmp_path, script))
    assert outcome.status == "success"
    pid = int(marker.read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the agent's background child survived the story")


CAPTURES = Path(__file__).resolve().parents[1] / "mappers" / "cli_failures"


async def test_retry_chatter_is_not_progress(tmp_path: Path) -> None:
    """Codex without a network prints "Reconnecting... waiting for network" for ever (real
    capture): that is a stall, and a transient one, not progress."""
    lines = (CAPTURES / "codex_no_network.jsonl").read_text().splitlines()
    reconnect = lines[-1]
    assert "waiting for network" in reconnect
    head = "\n".join(lines[:2])
    script = f"printf '%s\\n' '{head}'; while :; do printf '%s\\n' '{reconnect}'; sleep 0.05; done"
    started = time.monotonic()
    outcome, _ = await supervise(
        shell(tmp_path, script),
        agent.Limits(stall_timeout=1.0, wall_timeout=60, check_every=0.1),
        backend="codex",
    )
    assert time.monotonic() - started < 30
    assert outcome.lines > 10, "the chatter went on the whole time"
    assert (outcome.status, outcome.exit_reason, outcome.failure) == (
        "retryable",
        "stalled",
        "transient",
    )
    assert outcome.error == (
        "no progress for 1s; the agent kept retrying: "
        "Reconnecting... waiting for network (Connection failed: error sending request)"
    )


async def test_work_keeps_a_slow_agent_alive(tmp_path: Path) -> None:
    """Progress is the model or its tools at work: a message every 0.3 s for 2 s never
    stalls under a 1 s stall timeout."""
    message = '{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"step"}}'
    done = '{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":2}}'
    script = (
        'echo \'{"type":"thread.started","thread_id":"t"}\'; '
        f"for i in 1 2 3 4 5 6 7; do echo '{message}'; sleep 0.3; done; echo '{done}'"
    )
    outcome, _ = await supervise(
        shell(tmp_path, script),
        agent.Limits(stall_timeout=1.0, wall_timeout=60, check_every=0.1),
        backend="codex",
    )
    assert outcome.status == "success", outcome.error


async def test_an_exit_without_a_result_shows_the_end_of_stderr(tmp_path: Path) -> None:
    secret = "sk-ant-" + "x" * 30
    script = (
        'echo \'{"type":"session","version":3,"id":"s"}\'; '
        'for i in $(seq 1 20); do echo "noise line $i" >&2; done; '
        f"echo 'Error: the key {secret} was refused' >&2; "
        "printf 'y%.0s' $(seq 1 2000) >&2; echo >&2; exit 1"
    )
    outcome, _ = await supervise(shell(tmp_path, script), backend="pi")
    assert outcome.status == "failed" and outcome.exit_code == 1
    error = outcome.error or ""
    assert error.startswith("pi exited with code 1 without a result; its stderr ends: ")
    assert secret not in error and "[redacted]" in error
    assert "noise line 18" in error and "noise line 17" not in error, "the last lines only"
    assert "y" * 200 + "…" in error and "y" * 201 not in error, "each line cut short"
    assert len(error) < 1200, "bounded"
