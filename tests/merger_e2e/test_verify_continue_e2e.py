"""The verification gate and `--continue`, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git, snapshot
from tests.e2e.conftest import replay, request_for, run_to_end

from .conftest import show

BARO = str(Path(sys.executable).parent / "baro")
VERIFY = "[verify]\ncommand = \"python3 -c 'import app; assert app.VALUE == 2, app.VALUE'\"\n"
FILES = {"app.py": "VALUE = 1\n", ".baro.toml": VERIFY}


def writes(value: int) -> dict[str, object]:
    return {"default": {"steps": [{"write": "app.py", "content": f"VALUE = {value}\n"}]}}


async def test_a_passing_verify_delivers(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    request = request_for(repo, "set VALUE to 2 in app.py", writes(2), mode_request="focused")
    report = await run_to_end(bus, request)
    assert report.status == "delivered", report.reason
    delivered = [e for e in await replay(bus, request.run_id) if isinstance(e, s.RunDelivered)]
    assert [(d.verify, d.branch) for d in delivered] == [("passed", report.branch)]


async def test_a_failing_verify_needs_attention_and_publishes_nothing(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    bare = tmp_path / "remote.git"
    run_git(tmp_path, "init", "--quiet", "--bare", str(bare))
    run_git(repo, "remote", "add", "origin", str(bare))
    request = request_for(
        repo, "set VALUE to 2 in app.py", writes(3), mode_request="focused", publish="push"
    )
    report = await run_to_end(bus, request)

    assert report.status == "needs_attention"
    failing = (
        "the run's checks failed: python3 -c 'import app; assert app.VALUE == 2, app.VALUE': "
        "failed (exit code 1)"
    )
    # a result whose checks still fail is partial: delivered as a checkpoint
    assert report.branch == "baro/set-value-to-2-in-app-py-checkpoint"
    assert report.reason == (
        f"a partial result, delivered as {report.branch} (a checkpoint, not published): "
        f"{failing}; R1 failed: failed: the agent finished without changing any file"
    )
    (check,) = report.run_checks
    assert "AssertionError: 3" in check["output"] and report.verify == "failed"
    # its repair story (R1) writes VALUE = 3 again: no change, retried once, then failed;
    # what is left is a partial result
    assert [d["action"] for d in report.decisions] == ["run_repair", "retry", "checkpoint"]
    assert [(st["id"], st["status"]) for st in report.stories] == [
        ("S1", "integrated"), ("R1", "failed"),
    ]  # fmt: skip
    # the result is there to look at, but not claimed done
    assert report.publish_note == (
        f"{report.branch} is in your repository only: a partial result (a checkpoint) is "
        "never published"
    )
    assert run_git(bare, "for-each-ref") == "", "nothing was pushed"


async def test_continue_moves_the_baro_branch_forward(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"app.py": "VALUE = 1\n"}, dirty=True)
    first = await run_to_end(
        bus, request_for(repo, "set VALUE to 2 in app.py", writes(2), mode_request="focused")
    )
    assert first.status == "delivered" and first.branch is not None
    branch, tip = first.branch, run_git(repo, "rev-parse", first.branch)

    follow = {"default": {"steps": [{"append": "app.py", "content": "NAME = 'app'\n"}]}}
    request = request_for(
        repo, "also add NAME to app.py", follow, mode_request="focused", continue_branch=branch
    )
    # as `baro run --continue` submits it: pinned to the branch's head
    request = msgspec.structs.replace(
        request, repo=s.RepoSource(kind="path", location=str(repo), commit=tip)
    )
    second = await run_to_end(bus, request)

    assert second.status == "delivered", second.reason
    assert second.branch == branch, "the same branch, moved forward"
    assert second.base == tip
    new_tip = run_git(repo, "rev-parse", branch)
    assert run_git(repo, "rev-parse", f"{new_tip}^") == tip, "a fast-forward by one commit"
    assert show(repo, branch, "app.py") == "VALUE = 2\nNAME = 'app'\n"
    assert run_git(repo, "branch", "--list", "baro/*").split() == [branch]


def baro(*args: str, cwd: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BARO_CACHE_DIR": str(settings.cache_dir),
        "BARO_STATE_DIR": str(settings.state_dir / "cli"),
    }
    return subprocess.run(
        [BARO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_continue_mistakes_are_one_line(settings: Settings, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"app.py": "VALUE = 1\n"})
    run_git(repo, "branch", "baro/earlier")
    before = snapshot(repo)
    cases = [
        ("main", "--continue main: not a baro branch (expected baro/<name>)"),
        ("baro/nope", "--continue baro/nope: there is no branch baro/nope in"),
    ]
    for name, needle in cases:
        out = baro(
            "run", "more", "--backend", "scripted", "--continue", name, cwd=repo, settings=settings
        )
        assert out.returncode == 2 and out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], out.stderr
    run_git(repo, "checkout", "--quiet", "baro/earlier")
    out = baro(
        "run", "more", "--backend", "scripted", "--continue", "baro/earlier", cwd=repo,
        settings=settings,
    )  # fmt: skip
    assert out.returncode == 2
    assert "it is checked out in" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    run_git(repo, "checkout", "--quiet", "main")
    assert snapshot(repo) == before


async def test_a_verify_that_fails_silently_says_how_it_failed(bus: Bus, tmp_path: Path) -> None:
    files = {**FILES, ".baro.toml": '[verify]\ncommand = "exit 3"\n'}
    repo = make_repo(tmp_path / "user", files, dirty=True)
    report = await run_to_end(
        bus, request_for(repo, "set VALUE to 2 in app.py", writes(2), mode_request="focused")
    )
    assert report.status == "needs_attention"
    # the run gate names the check and how it failed, output or not
    assert report.reason is not None
    assert "the run's checks failed: exit 3: failed (exit code 3); R1 failed" in report.reason
    (check,) = report.run_checks
    assert (check["command"], check["exit_code"], check["output"]) == ("exit 3", 3, "")
