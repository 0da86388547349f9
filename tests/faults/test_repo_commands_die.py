"""The repository's own commands die with the baro that runs them: kill -9 of `baro run`
while its merger runs `[verify]`, or while its runner runs `[setup]`, leaves none of the
command's processes running, what it started in the background included."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from baro_shared.processes import process_alive
from tests.conftest import make_repo, run_git
from tests.faults.test_interrupted_runs import BARO, World, until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def hanging(pids: Path) -> str:
    """A shell command that starts a background process and a foreground one, each writing
    its pid to ``pids``, and waits for both for five minutes."""
    sleep = f"sh -c 'echo $$ >> {pids}; exec sleep 300'"
    return f"echo $$ >> {pids}; {sleep} & {sleep}; wait"


@pytest.mark.parametrize("section", ["verify", "setup"])
def test_kill_9_of_baro_run_takes_the_repository_command_along(
    tmp_path: Path, section: str
) -> None:
    pids = tmp_path / "pids"
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    (repo / ".baro.toml").write_text(f"[{section}]\ncommand = {json.dumps(hanging(pids))}\n")
    run_git(repo, "add", ".baro.toml")
    run_git(repo, "commit", "-qm", section)
    world = World(tmp_path, repo, tmp_path)
    script = world.write_json(
        "script.json", {"default": {"steps": [{"write": "b.txt", "content": "b\n"}]}}
    )
    proc = subprocess.Popen(
        [BARO, "run", "add b", "--mode", "focused", "--yes", "--backend", "scripted",
         "--script", str(script)],
        cwd=repo, env=world.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        until(lambda: _recorded(pids) == 3, 180, f"the {section} command to start", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        started = _pids(pids)
        deadline = time.monotonic() + 30
        while alive := [pid for pid in started if process_alive(pid)]:
            assert time.monotonic() < deadline, f"{section} processes outlived baro: {alive}"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _recorded(path: Path) -> int:
    return len(_pids(path))
