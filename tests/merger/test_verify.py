from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from baro_merger.verify import verify
from baro_shared.processes import process_alive


async def test_verify_passes_and_runs_in_a_checkout_of_the_head(bench: Any) -> None:
    user = bench.make_repo("user", {"check.sh": "test -f feature.txt && echo verified\n"})
    prepared = await bench.prepare("r", user)
    result = bench.story(prepared.repo, prepared.base, {"feature.txt": "on\n"})
    head = result.head
    bench.git(prepared.repo, "fetch", "--quiet", str(result.bundle), f"{head}:refs/test/head")
    before = bench.snapshot(user)

    outcome = await verify(prepared.repo, head, "sh check.sh", timeout=30, work_root=bench.root)

    assert outcome.ok and outcome.exit_code == 0 and not outcome.timed_out
    assert "verified" in outcome.output
    assert bench.snapshot(user) == before
    assert [p.name for p in bench.root.iterdir() if p.name.startswith("baro-verify-")] == []


async def test_verify_failure_reports_the_exit_code_and_the_output_tail(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    outcome = await verify(
        prepared.repo,
        prepared.base,
        ["sh", "-c", "for i in $(seq 1 3000); do echo line $i; done; echo boom >&2; exit 3"],
        timeout=30,
        excerpt_chars=200,
    )
    assert not outcome.ok and outcome.exit_code == 3
    assert outcome.output.endswith("line 3000\nboom\n") and len(outcome.output) <= 200


async def test_verify_timeout_kills_the_command(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    pids = bench.root / "pids"
    started = time.monotonic()
    outcome = await verify(
        prepared.repo,
        prepared.base,
        f"echo started; {RECORDED_SLEEP.format(pids=pids)} & {RECORDED_SLEEP.format(pids=pids)}",
        timeout=1,
    )
    assert time.monotonic() - started < 10
    assert not outcome.ok and outcome.timed_out and outcome.exit_code is None
    assert "started" in outcome.output and "timed out" in outcome.output
    await gone(pids, 2)


async def test_a_cancelled_verify_leaves_nothing_running(bench: Any) -> None:
    """The merger stopping mid-verify (its task cancelled) takes the whole command along,
    what it started in the background included."""
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    pids = bench.root / "pids"
    sleep = RECORDED_SLEEP.format(pids=pids)
    task = asyncio.create_task(
        verify(prepared.repo, prepared.base, f"{sleep} & {sleep}", timeout=300)
    )
    deadline = time.monotonic() + 30
    while len(recorded(pids)) < 2:
        assert time.monotonic() < deadline and not task.done(), "the command started"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gone(pids, 2)


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


async def test_verify_with_a_missing_program(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    outcome = await verify(prepared.repo, prepared.base, ["/nonexistent/tool"], timeout=5)
    assert not outcome.ok and outcome.exit_code == 127 and "cannot start" in outcome.output


async def test_verify_makes_its_work_directory(bench: Any) -> None:
    user = bench.make_repo("user", {"a": "1\n"})
    prepared = await bench.prepare("r", user)
    work_root = bench.root / "cache" / "verify"  # a fresh cache: not there yet
    outcome = await verify(prepared.repo, prepared.base, "true", timeout=30, work_root=work_root)
    assert outcome.ok and work_root.is_dir() and list(work_root.iterdir()) == []


async def test_verify_gets_no_baro_or_publishing_secrets(
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
    outcome = await verify(prepared.repo, prepared.base, "env", timeout=30)
    assert outcome.ok
    seen = dict(line.split("=", 1) for line in outcome.output.splitlines() if "=" in line)
    assert not set(secrets) & set(seen)
    assert not any(value in outcome.output for value in secrets.values())
    assert not any(name.startswith(("BARO_", "NATS_")) for name in seen)
    assert seen.get("LANG") == "C.UTF-8" and seen.get("CI") == "1"
