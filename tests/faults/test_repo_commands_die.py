"""The repository's own commands die with the baro that runs them: kill -9 of `baro run`
while its merger runs `[verify]`, or while its runner runs `[setup]`, leaves none of the
command's processes running, what it started in the background included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import make_repo, run_git
from tests.faults.test_interrupted_runs import BARO, World, until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def hanging(pids: Path, marker: str) -> str:
    """A shell command that starts a background process and a foreground one, each writing
    its pid to ``pids``, and waits for both for five minutes. Every process of it carries
    ``marker`` on its command line: a fenced command runs in a PID namespace of its own,
    where the pids it writes are not the host's, so survivors are found by the marker."""
    sleep = f"sh -c 'echo $$ >> {pids}; exec sleep {marker}'"
    return f"echo $$ >> {pids}; {sleep} & {sleep}; wait # {marker}"


def _carrying(marker: str) -> list[int]:
    """The host's processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("section", ["verify", "setup"])
def test_kill_9_of_baro_run_takes_the_repository_command_along(
    tmp_path: Path, section: str
) -> None:
    pids = tmp_path / "pids"
    marker = f"300.{os.getpid()}{time.monotonic_ns() % 1_000_000}"
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    (repo / ".baro.toml").write_text(
        f"[{section}]\ncommand = {json.dumps(hanging(pids, marker))}\n"
    )
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
        deadline = time.monotonic() + 30
        while alive := _carrying(marker):
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
