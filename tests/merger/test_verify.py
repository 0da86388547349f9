from __future__ import annotations

import time
from typing import Any

import pytest

from baro_merger.verify import verify


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
    started = time.monotonic()
    outcome = await verify(
        prepared.repo, prepared.base, "echo started; sleep 30 & sleep 30", timeout=1
    )
    assert time.monotonic() - started < 10
    assert not outcome.ok and outcome.timed_out and outcome.exit_code is None
    assert "started" in outcome.output and "timed out" in outcome.output


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
