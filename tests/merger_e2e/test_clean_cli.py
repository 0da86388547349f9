"""`baro clean`: what it refuses, and --all over several runs."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_repo, run_git

BARO = str(Path(sys.executable).parent / "baro")


def baro_clean(
    tmp_path: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
        "BARO_STATE_DIR": str(tmp_path / "state"),
    }
    return subprocess.run(
        [BARO, "clean", *args], cwd=cwd or tmp_path, env=env, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def one_line(out: subprocess.CompletedProcess[str], needle: str) -> None:
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr


def kept_run(tmp_path: Path, repo: Path, run_id: str) -> None:
    """What a finished run leaves: a workspace, an integration repository, refs."""
    (tmp_path / "cache" / "workspaces" / run_id / "S1-1" / "repo").mkdir(parents=True)
    bare = tmp_path / "cache" / "integration" / f"{run_id}.git"
    run_git(tmp_path, "init", "--quiet", "--bare", str(bare))
    head = run_git(repo, "rev-parse", "HEAD")
    run_git(repo, "update-ref", f"refs/baro/{run_id}/base", head)
    run_git(repo, "update-ref", f"refs/baro/{run_id}/S1/1", head)


def test_mistakes_are_one_line(tmp_path: Path) -> None:
    one_line(baro_clean(tmp_path, "r1", "--all"), "either a run id or --all")
    one_line(baro_clean(tmp_path, "--repo", str(tmp_path / "nowhere")), "is not a git repository")
    one_line(baro_clean(tmp_path, "../etc"), "is not a run id")


def test_all_removes_every_run_and_lists_first(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    run_git(repo, "branch", "baro/result")
    for run_id in ("run-1", "run-2"):
        kept_run(tmp_path, repo, run_id)
    listed = baro_clean(tmp_path, cwd=repo)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[1:] == [
        f"  run-1: 1 workspace(s) in {tmp_path / 'cache/workspaces/run-1'} (S1-1), the integration "
        f"repository {tmp_path / 'cache/integration/run-1.git'}, 2 ref(s) under refs/baro/run-1/",
        f"  run-2: 1 workspace(s) in {tmp_path / 'cache/workspaces/run-2'} (S1-1), the integration "
        f"repository {tmp_path / 'cache/integration/run-2.git'}, 2 ref(s) under refs/baro/run-2/",
    ]
    dry = baro_clean(tmp_path, "--all", "--dry-run", cwd=repo)
    assert dry.stdout.count("would remove for run") == 2
    assert (tmp_path / "cache" / "workspaces" / "run-1").exists()

    cleaned = baro_clean(tmp_path, "--all", cwd=repo)
    assert cleaned.returncode == 0, cleaned.stderr
    assert cleaned.stdout.splitlines() == [
        f"run run-{n}: removed 1 workspace(s) ({tmp_path / f'cache/workspaces/run-{n}'}), its "
        f"integration repository, 2 ref(s) under refs/baro/run-{n}/ in {repo}"
        for n in (1, 2)
    ]
    assert run_git(repo, "for-each-ref", "refs/baro/") == ""
    assert list((tmp_path / "cache" / "integration").iterdir()) == []
    assert run_git(repo, "branch", "--list", "baro/*").split() == ["baro/result"], "results stay"
    assert baro_clean(tmp_path, "--all", cwd=repo).stdout.strip() == "nothing to clean"


def test_all_waits_for_a_running_baro(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    kept_run(tmp_path, repo, "run-1")
    lock = tmp_path / "state" / "nats" / "lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write(json.dumps({"pid": os.getpid(), "command": "baro up", "server_pid": None}))
        held.flush()
        out = baro_clean(tmp_path, "--all", cwd=repo)
    one_line(out, f"baro up (pid {os.getpid()}) holds this machine's run store")
    assert (tmp_path / "cache" / "workspaces" / "run-1").exists()
