"""Driving the real `baro run` (embedded stack, scripted agent) and reading back what it left.

After the CLI exits, its embedded server's store (under BARO_STATE_DIR) is opened with a
fresh nats-server, so the tests read the run record and the events the run really wrote.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest
from nats.js.errors import NoKeysError

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from tests.conftest import make_repo

BARO = str(Path(sys.executable).parent / "baro")
GOAL = "fix the typo in greet() in app.py"
FILES = {"app.py": "def greet():\n    return 'helo'\n", "README.md": "# app\n"}
FIX = {"write": "app.py", "content": "def greet():\n    return 'hello'\n"}
INTAKE_REPLY = {
    "mode": "sequential",
    "confidence": 0.77,
    "reason": "two steps over the same module",
    "vague": False,
    "max_stories": 2,
    "parallelism": 1,
}
SCRIPT: dict[str, Any] = {
    "stories": [
        {
            "match": {"id": "baro-intake"},
            "steps": [
                {"text": json.dumps(INTAKE_REPLY)},
                {"usage": {"input": 400, "cached": 100, "output": 30}},
            ],
        }
    ],
    "default": {"steps": [FIX, {"usage": {"input": 500, "cached": 300, "output": 80}}]},
}
RUN_TIMEOUT_S = 180
JSON_LINE = re.compile(r'\{"run_id".*\}')
RUN_ID = re.compile(r"run (\d{8}-\d{6}-[0-9a-f]{6}) submitted")
CPR_REQUEST = "\x1b[6n"


@dataclass
class Workspace:
    root: Path
    repo: Path
    script: Path
    env: dict[str, str]

    @property
    def store(self) -> Path:
        return Path(self.env["BARO_STATE_DIR"]) / "nats"


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    env = {
        **os.environ,
        "BARO_STATE_DIR": str(tmp_path / "state"),
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
        "BARO_LOG_LEVEL": "WARNING",
        "TERM": "xterm-256color",
        "TMPDIR": str(tmp_path),
    }
    env.pop("BARO_INTAKE", None)
    return Workspace(tmp_path, repo, script, env)


def run_args(ws: Workspace, *extra: str, goal: str = GOAL) -> list[str]:
    return [
        "run",
        goal,
        "--repo",
        str(ws.repo),
        "--backend",
        "scripted",
        "--script",
        str(ws.script),
        "--json",
        *extra,
    ]


def spawn(ws: Workspace, args: list[str]) -> pexpect.spawn:
    """`baro` on a real pseudo-terminal (stdin, stdout and stderr are all the terminal)."""
    return pexpect.spawn(
        BARO,
        args,
        env=ws.env,
        cwd=str(ws.root),
        encoding="utf-8",
        codec_errors="replace",
        timeout=RUN_TIMEOUT_S,
        dimensions=(50, 240),
    )


def wait_for_picker(child: pexpect.spawn) -> str:
    """Wait until the picker is drawn, answering its cursor-position request as a terminal does."""
    child.expect_exact(CPR_REQUEST)
    before = child.before
    child.send("\x1b[1;1R")
    child.expect_exact("Esc cancels")
    return before + child.before


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF, timeout=RUN_TIMEOUT_S)
    output = child.before
    child.close()
    assert child.exitstatus is not None, f"baro was killed by signal {child.signalstatus}"
    return child.exitstatus, output


def run_headless(ws: Workspace, args: list[str]) -> subprocess.CompletedProcess[str]:
    """`baro` with no terminal at all: stdin from /dev/null, output to pipes."""
    return subprocess.run(
        [BARO, *args],
        env=ws.env,
        cwd=str(ws.root),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


def summary_json(output: str) -> dict[str, Any]:
    found = JSON_LINE.findall(output)
    assert found, f"no JSON summary in the output:\n{output}"
    return json.loads(found[-1])


def run_id_in(output: str) -> str:
    found = RUN_ID.search(output)
    assert found, f"no run id in the output:\n{output}"
    return found.group(1)


@dataclass
class Stored:
    record: s.RunRecord
    events: list[s.Event]
    history: s.RepoHistory | None


def stored_run(ws: Workspace, run_id: str) -> Stored:
    """The run record and events as the CLI's embedded server stored them."""
    return asyncio.run(_read_store(ws.store, run_id))


async def _read_store(store: Path, run_id: str) -> Stored:
    server = await asyncio.to_thread(EmbeddedNats(store_dir=store).start)
    try:
        bus = await Bus.open(Settings(nats_url=server.url), "picker-test", ensure=False)
        try:
            got = await bus.get_record(run_id)
            assert got is not None, f"no record for run {run_id}"
            events = [ev async for ev in bus.run_events(run_id, follow=False, idle_timeout=2)]
            history = None
            keys = await _history_keys(bus)
            if keys:
                entry = await bus.history.get(keys[0])
                history = s.history_decoder.decode(entry.value) if entry.value else None
            return Stored(got[0], events, history)
        finally:
            await bus.close()
    finally:
        await asyncio.to_thread(server.stop)


async def _history_keys(bus: Bus) -> list[str]:
    try:
        return list(await bus.history.keys())
    except NoKeysError:
        return []


def kinds(events: list[s.Event]) -> list[str]:
    return [type(ev).__name__ for ev in events]
