"""Workspace setup from .baro.toml end to end, and `baro clean` of what a failed run kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end

from .conftest import agent_events, finished_events, refs_of, show, tree

BARO = str(Path(sys.executable).parent / "baro")
SETUP = """[setup]
copy = [".env"]
command = "mkdir -p .deps && echo installed > .deps/marker && echo dependencies ready"
"""
FILES = {"app.py": "print('app')\n", ".baro.toml": SETUP}


def user_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = make_repo(tmp_path / "user", files, dirty=True)
    (repo / ".env").write_text("SECRET=swordfish\n")  # untracked, not ignored: the hard case
    return repo


async def test_setup_prepares_the_workspace_and_stays_out_of_the_branch(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    repo = user_repo(tmp_path, FILES)
    script = {
        "default": {
            "steps": [
                {"run": "grep -q swordfish .env && test -f .deps/marker && echo yes > checked.txt"},
                {"write": "app.py", "content": "print('fixed')\n"},
            ]
        }
    }
    request = request_for(repo, "fix app.py", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert report.branch is not None
    # the agent saw the copied .env and the setup's output; the branch has neither
    assert show(repo, report.branch, "checked.txt") == "yes\n"
    assert tree(repo, report.branch) == [".baro.toml", "app.py", "checked.txt"]
    for ref in refs_of(repo, f"refs/baro/{request.run_id}/"):
        assert show(repo, ref, ".env") is None, ref
    events = await agent_events(bus, request.run_id, "S1")
    setup = [
        e.event
        for e in events
        if isinstance(e.event, s.CommandRun) and e.event.command.startswith("baro setup:")
    ]
    assert len(setup) == 1
    assert setup[0].exit_code == 0 and "dependencies ready" in setup[0].output
    assert "copied 1 file(s) (.env)" in setup[0].command
    assert events[0].event is setup[0], "setup is reported before the agent starts"


async def test_a_failing_setup_fails_the_story_and_keeps_its_workspace_until_clean(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    toml = '[setup]\ncommand = "echo resolving; echo could not resolve left-pad >&2; exit 7"\n'
    repo = user_repo(tmp_path, {"app.py": "print('app')\n", ".baro.toml": toml})
    request = request_for(
        repo, "fix app.py", None, mode_request="focused", limits=s.Limits(retries=0)
    )
    report = await run_to_end(bus, request)

    assert report.status == "failed"
    assert report.reason is not None
    assert "setup command `echo resolving;" in report.reason
    assert "failed with exit code 7" in report.reason
    assert "could not resolve left-pad" in report.reason
    events = await replay(bus, request.run_id)
    (finished,) = finished_events(events, "S1")
    assert finished.exit_reason == "setup_failed" and finished.status == "failed"
    assert finished.workspace is not None
    kept = Path(finished.workspace)
    assert kept.is_dir() and (kept / "repo" / "app.py").exists()
    assert not any(isinstance(e, s.StoryStarted) for e in events), "no agent was started"

    env = {
        **os.environ,
        "BARO_CACHE_DIR": str(stack.cache_dir),
        "BARO_STATE_DIR": str(tmp_path / "st"),
    }

    def baro_clean(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BARO, "clean", *args, "--repo", str(repo)],
            env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    listed = baro_clean()
    assert listed.returncode == 0, listed.stderr
    assert f"  {request.run_id}: 1 workspace(s) in" in listed.stdout
    assert kept.is_dir(), "listing removes nothing"

    cleaned = baro_clean(request.run_id)
    assert cleaned.returncode == 0, cleaned.stderr
    line = cleaned.stdout.strip()
    assert line.startswith(f"run {request.run_id}: removed 1 workspace(s)")
    assert "its integration repository" in line
    assert not kept.exists()
    assert not (stack.integration_dir / f"{request.run_id}.git").exists()
    assert refs_of(repo, f"refs/baro/{request.run_id}/") == {}
    again = baro_clean(request.run_id)
    assert again.stdout.strip() == f"nothing to clean for run {request.run_id}"
    assert run_git(repo, "branch", "--list").split() == ["*", "main"]
