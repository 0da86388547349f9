"""The run gate's runner (baro_merger.verify.run_gate): checks on a throwaway checkout of
the integrated head, never the user's checkout, with no credential in their environment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from baro_merger.verify import run_gate
from baro_shared.checks import OUTPUT_CHARS, Check
from baro_shared.processes import process_alive
from baro_shared.schemas import CheckResult

RECORDED_SLEEP = "sh -c 'echo $$ >> {pids}; exec sleep 300'"


def recorded(pids: Path) -> list[int]:
    return [int(x) for x in pids.read_text().split()] if pids.exists() else []


async def gone(pids: Path, count: int) -> None:
    """Every one of the ``count`` processes recorded in ``pids`` has stopped."""
    listed = recorded(pids)
    assert len(listed) == count, listed
    deadline = time.monotonic() + 30
    while alive := [pid for pid in listed if process_alive(pid)]:
        assert time.monotonic() < deadline, f"still running: {alive}"
        await asyncio.sleep(0.05)


def configured(command: str | tuple[str, ...], timeout: float = 30) -> Check:
    return Check(command, "configured", timeout)


async def gate_one(bench: Any, prepared: Any, head: str, check: Check, **kw: Any) -> CheckResult:
    (result,) = await run_gate(prepared.repo, head, prepared.base, [check], **kw)
    return result


async def test_a_check_passes_and_runs_in_a_checkout_of_the_head(bench: Any) -> None:
    user = bench.make_repo("user", {"check.sh": "test -f feature.txt && echo verified\n"})
    prepared = await bench.prepare("r", user)
    result = bench.story(prepared.repo, prepared.base, {"feature.txt": "on\n"})
    head = result.head
    bench.git(prepared.repo, "fetch", "--quiet", str(result.bundle), f"{head}:refs/test/head")
    before = bench.snapshot(user)

    outcome = await gate_one(bench, prepared, head, configured("sh check.sh"), work_root=bench.root)

    assert (outcome.result, outcome.exit_code) == ("passed", 0)
    assert "verified" in outcome.output
    assert bench.snapshot(user) == before
    assert [p.name for p in bench.root.iterdir() if p.name.startswith("baro-verify-")] == []


async def test_a_failure_reports_the_exit_code_and_the_output_tail(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    loud = ("sh", "-c", "for i in $(seq 1 3000); do echo line $i; done; echo boom >&2; exit 3")
    outcome = await gate_one(bench, prepared, prepared.base, configured(loud))
    assert (outcome.result, outcome.exit_code) == ("failed", 3)
    assert outcome.output.endswith("line 3000\nboom\n") and len(outcome.output) <= OUTPUT_CHARS


async def test_a_timeout_kills_the_check(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    pids = bench.root / "pids"
    sleep = RECORDED_SLEEP.format(pids=pids)
    started = time.monotonic()
    slow = configured(f"echo started; {sleep} & {sleep}", timeout=1)
    outcome = await gate_one(bench, prepared, prepared.base, slow)
    assert time.monotonic() - started < 10
    assert outcome.result == "failed" and outcome.exit_code is None
    assert "started" in outcome.output and "timed out" in (outcome.note or "")
    await gone(pids, 2)


async def test_a_cancelled_gate_leaves_nothing_running(bench: Any) -> None:
    """The merger stopping mid-gate (its task cancelled) takes the whole command along,
    what it started in the background included."""
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    pids = bench.root / "pids"
    sleep = RECORDED_SLEEP.format(pids=pids)
    check = configured(f"{sleep} & {sleep}", timeout=300)
    task = asyncio.create_task(run_gate(prepared.repo, prepared.base, prepared.base, [check]))
    deadline = time.monotonic() + 30
    while len(recorded(pids)) < 2:
        assert time.monotonic() < deadline and not task.done(), "the command started"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gone(pids, 2)


async def test_a_missing_program_is_skipped_never_passed(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    outcome = await gate_one(bench, prepared, prepared.base, configured(("/nonexistent/tool",)))
    assert outcome.result == "skipped" and "cannot start" in (outcome.note or "")


async def test_the_gate_makes_its_work_directory(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    work_root = bench.root / "cache" / "verify"  # a fresh cache: not there yet
    outcome = await gate_one(
        bench, prepared, prepared.base, configured("true"), work_root=work_root
    )
    assert outcome.result == "passed" and work_root.is_dir() and list(work_root.iterdir()) == []


async def test_a_detected_check_failing_on_the_base_too_is_skipped(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    result = bench.story(prepared.repo, prepared.base, {"b": "2\n"})
    bench.git(prepared.repo, "fetch", "--quiet", str(result.bundle), f"{result.head}:refs/test/h")
    broken = Check(("sh", "-c", "exit 1"), "detected", 30)
    outcome = await gate_one(bench, prepared, result.head, broken)
    assert outcome.result == "skipped" and "fails at the base as well" in (outcome.note or "")


async def test_the_checks_get_no_baro_or_publishing_secrets(
    bench: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "BARO_API_TOKEN": "baro-api-token-value",
        "BARO_NATS_PASSWORD": "nats-password-value",
        "NATS_TOKEN": "plain-nats-token-value",
        "GH_TOKEN": "gh-token-value",
        "GITHUB_TOKEN": "github-token-value",
        "ANTHROPIC_API_KEY": "anthropic-key-value",
        "OPENAI_API_KEY": "openai-key-value",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BARO_TEST_HARMLESS", "x")
    monkeypatch.setenv("LANG", "C.UTF-8")
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    outcome = await gate_one(bench, prepared, prepared.base, configured("env"))
    assert outcome.result == "passed"
    seen = dict(line.split("=", 1) for line in outcome.output.splitlines() if "=" in line)
    assert not set(secrets) & set(seen)
    assert not any(value in outcome.output for value in secrets.values())
    assert not any(name.startswith(("BARO_", "NATS_")) for name in seen)
    assert seen.get("LANG") == "C.UTF-8" and seen.get("CI") == "1"
