"""`baro cancel RUN` from another terminal, on a run a local `baro run` owns: the agent it
stops still reports, and its attempt is kept under refs/baro/<run>/ in the user's
repository before that `baro run` stops its services, as the cancel says."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_repo, run_baro, run_git
from tests.e2e.test_after_a_local_run import env_for, start_run

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")


def test_cancel_from_another_terminal_keeps_the_stopped_attempt(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    repo = make_repo(tmp_path / "repo", {"README.md": "# cancel me\n"})
    reached = tmp_path / "reached"
    steps = [
        {"write": "partial.txt", "content": "work in progress\n"},
        {"run": f"touch {reached}"},
        {"hang": None},
    ]
    run, run_id = start_run(env, repo, "add partial.txt", steps, "--json")
    try:
        deadline = time.monotonic() + 120
        while not reached.exists():
            assert run.poll() is None and time.monotonic() < deadline, "the agent started"
            time.sleep(0.05)

        cancelled = run_baro("cancel", run_id, cwd=tmp_path, env=env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"run {run_id}: cancelled (was running)" in cancelled.stdout
        assert f"every attempt's commits are kept under refs/baro/{run_id}/" in cancelled.stdout

        out, err = run.communicate(timeout=120)
        assert run.returncode == 130, err
        # what `baro cancel` promised is true once both commands have returned
        ref = f"refs/baro/{run_id}/S1/1"
        kept = run_git(repo, "for-each-ref", "--format=%(refname)", f"refs/baro/{run_id}/")
        assert ref in kept.split(), err
        assert run_git(repo, "show", f"{ref}:partial.txt") == "work in progress"
        report = json.loads(out)
        assert report["status"] == "cancelled"
        assert [(st["id"], st["status"], st["attempt"]) for st in report["stories"]] == [
            ("S1", "cancelled", 1)
        ]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
