"""Runs whose code the cluster reaches by URL or by an uploaded bundle, on a real
nats-server with all five services in this process, and the `baro` CLI as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baro_shared import schemas as s
from baro_shared.runids import new_run_id
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import bus, stack  # noqa: F401 - fixtures used here too

BIN = Path(sys.executable).parent
FILES = {"app.py": "def greet():\n    return 'helo'\n", "README.md": "# app\n"}
FIX = {
    "default": {
        "steps": [
            {"write": "app.py", "content": "def greet():\n    return 'hello'\n"},
            {"usage": {"input": 300, "cached": 100, "output": 30}},
        ]
    }
}
GOAL = "fix the typo in greet() in app.py"


@dataclass
class Done:
    code: int
    out: str
    err: str


async def baro(
    settings: Settings, *args: str, cwd: Path | None = None, timeout: float = 180
) -> Done:
    """The `baro` command as a subprocess (without blocking this event loop, which runs
    the services it talks to)."""
    env = {
        **os.environ,
        "BARO_NATS_URL": settings.nats_url,
        "BARO_CACHE_DIR": str(settings.cache_dir),
        "BARO_STATE_DIR": str(settings.state_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "baro"),
        *args,
        cwd=str(cwd) if cwd else None,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Done(proc.returncode or 0, out.decode(), err.decode())


def remote_repo(tmp_path: Path, files: dict[str, str] = FILES) -> tuple[Path, str]:
    """A bare repository standing for a git server, and its head commit."""
    work = make_repo(tmp_path / "upstream", files)
    bare = tmp_path / "server" / "app.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    run_git(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    return bare, run_git(work, "rev-parse", "HEAD")


def clone_of(bare: Path, where: Path) -> Path:
    run_git(where.parent, "clone", "--quiet", str(bare), str(where))
    return where


def url_request(location: str, script: dict[str, Any] = FIX, **kw: Any) -> s.RunSubmitted:
    fields: dict[str, Any] = dict(
        run_id=new_run_id(),
        goal=GOAL,
        repo=s.RepoSource(kind="url", location=location),
        backend="scripted",
        agent_script=json.dumps(script),
        limits=s.Limits(story_timeout_s=120, stall_timeout_s=60),
    )
    fields.update(kw)
    return s.RunSubmitted(**fields)


def branches(repo: Path) -> list[str]:
    return run_git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()
