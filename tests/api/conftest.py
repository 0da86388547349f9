"""The HTTP API served by the intake service, with all five services behind it on a real
nats-server, and git repositories the cluster reaches by URL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from baro_cli.stack import SERVICES
from baro_intake.api_host import ApiHostedIntake
from baro_shared.service import Host
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git

TOKEN = "test-token-0123456789abcdef"
FILES = {"app.py": "def greet():\n    return 'helo'\n", "README.md": "# app\n"}
FIX_SCRIPT = {
    "default": {
        "steps": [
            {"write": "app.py", "content": "def greet():\n    return 'hello'\n"},
            {"usage": {"input": 400, "cached": 100, "output": 40}},
        ]
    }
}


@dataclass
class Api:
    url: str
    settings: Settings
    client: httpx.AsyncClient  # sends the token


async def serve(settings: Settings, services: dict[str, Any]) -> AsyncIterator[Api]:
    host = Host(services, settings, serve_http=False, handle_signals=False)
    task = asyncio.create_task(host.run())
    await asyncio.wait_for(host.started.wait(), 30)
    front = next(svc for svc in host.services if isinstance(svc, ApiHostedIntake))
    for _ in range(300):
        if front.ready():
            break
        await asyncio.sleep(0.1)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=front.url, headers=headers, timeout=60) as client:
        try:
            yield Api(front.url, settings, client)
        finally:
            host.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    """The whole stack, the intake serving the API on a free port with a token."""
    cfg = settings.model_copy(update={"api_port": 0, "api_token": SecretStr(TOKEN)})
    async for served in serve(cfg, SERVICES):
        yield served


@pytest.fixture
async def api_without_token(settings: Settings) -> AsyncIterator[Api]:
    cfg = settings.model_copy(update={"api_port": 0, "api_token": None})
    async for served in serve(cfg, {"intake": SERVICES["intake"]}):
        yield served


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the API process at ``url`` answers /readyz (or exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the API at {url} never became ready")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bare_remote(tmp_path: Path, files: dict[str, str] = FILES) -> tuple[Path, str]:
    """A bare repository (what a git server holds) and its head commit."""
    work = make_repo(tmp_path / "work", files)
    bare = tmp_path / "remote.git"
    run_git(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    return bare, run_git(work, "rev-parse", "HEAD")


def run_body(location: str, goal: str = "fix the typo in greet() in app.py", **kw: Any) -> dict:
    body: dict[str, Any] = {
        "goal": goal,
        "repo": {"kind": "url", "location": location},
        "backend": "scripted",
        "agent_script": FIX_SCRIPT,
        "limits": {"story_timeout_s": 120, "stall_timeout_s": 120},
    }
    body.update(kw)
    return body


async def wait_for_state(
    client: httpx.AsyncClient, run_id: str, states: set[str], timeout: float = 120
) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    view: dict = {}
    while asyncio.get_running_loop().time() < deadline:
        got = await client.get(f"/v1/runs/{run_id}")
        if got.status_code == 200:
            view = got.json()
            if view["state"] in states:
                return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} never reached {states}; last seen: {view.get('state')}")


async def sse_events(
    client: httpx.AsyncClient,
    run_id: str,
    *,
    follow: bool = True,
    last_id: int | str | None = None,
    agent: bool = False,
) -> list[dict]:
    """Read the run's event stream to its end: [{id, event, data}] (``id`` an int, or with
    ``agent`` the text ``N-M``)."""
    headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
    events: list[dict] = []
    current: dict[str, Any] = {}
    params = {"follow": "true" if follow else "false"}
    if agent:
        params["agent"] = "true"
    async with client.stream(
        "GET", f"/v1/runs/{run_id}/events", params=params, headers=headers
    ) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line == "":
                if "data" in current:
                    events.append(current)
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(": ")
                if key == "data":
                    current["data"] = json.loads(value)
                elif key == "id":
                    current["id"] = value if agent else int(value)
                elif key == "event":
                    current["event"] = value
    return events
