"""Mistakes get one clear line, a non-zero exit, and nothing written into the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo, run_git, snapshot

BARO = str(Path(sys.executable).parent / "baro")


def baro(
    *args: str, cwd: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BARO_CACHE_DIR": str(cwd / ".." / "cache"),
        "BARO_STATE_DIR": str(cwd / ".." / "state"),
    }
    env.update(env_extra or {})
    return subprocess.run(
        [BARO, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert out.stdout == ""


def test_not_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "f.txt").write_text("x")
    out = baro("run", "fix it", "--backend", "scripted", cwd=plain)
    assert_one_line_error(out, "is not a git repository", "--repo")
    assert sorted(p.name for p in plain.iterdir()) == ["f.txt"]


def test_repository_without_commits(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    run_git(repo, "init", "--quiet")
    out = baro("run", "fix it", "--backend", "scripted", cwd=repo)
    assert_one_line_error(out, "has no commits yet")
    assert run_git(repo, "for-each-ref") == ""


@pytest.mark.parametrize(
    ("args", "env", "needles"),
    [
        (["run", "   "], {}, ["the goal is empty"]),
        (["run", "\u00a0\u200b\u2003"], {}, ["the goal is empty"]),  # no-break, zero-width
        (["run", "fix it", "--backend", "nope"], {}, ["unknown backend 'nope'", "scripted"]),
        (
            ["run", "fix it", "--backend", "codex"],
            {"BARO_CODEX_BIN": "/nonexistent/codex"},
            ["codex CLI is not installed"],
        ),
        (["run", "fix it", "--mode", "turbo"], {}, ["unknown mode 'turbo'"]),
        (
            ["run", "fix it", "--backend", "scripted", "--surface", "loose"],
            {},
            ["unknown surface policy 'loose'", "strict or warn"],
        ),
        (
            ["run", "fix it", "--backend", "scripted"],
            {"BARO_RUNNER_SLOTS": "two", "BARO_KEEP_RUNS": "-1"},
            [
                "invalid BARO_RUNNER_SLOTS: Input should be a valid integer",
                "; invalid BARO_KEEP_RUNS: Input should be greater than or equal to 0",
            ],
        ),
        (
            ["run", "fix it", "--backend", "scripted", "--nats-url", "nats://127.0.0.1:1"],
            {},
            ["cannot reach NATS"],
        ),
    ],
)
def test_bad_arguments_leave_the_repository_untouched(
    tmp_path: Path, args: list[str], env: dict[str, str], needles: list[str]
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"}, dirty=True)
    before = snapshot(repo)
    out = baro(*args, cwd=repo, env_extra=env)
    assert_one_line_error(out, *needles)
    assert snapshot(repo) == before
    assert run_git(repo, "for-each-ref", "refs/baro") == ""
