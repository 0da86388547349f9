"""An in-process stack (all five services) on the test's real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from baro_cli import runflow
from baro_cli.stack import SERVICES
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.service import Host
from baro_shared.settings import Settings
from tests.conftest import run_git, snapshot


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Settings]:
    host = Host(SERVICES, settings, serve_http=False, handle_signals=False)
    task = asyncio.create_task(host.run())
    await asyncio.wait_for(host.started.wait(), 20)
    try:
        yield settings
    finally:
        host.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


@pytest.fixture
async def bus(stack: Settings) -> AsyncIterator[Bus]:
    b = await Bus.open(stack, "test-client", ensure=False)
    try:
        yield b
    finally:
        await b.close()


def request_for(repo: Path, goal: str, script: dict | None = None, **kw: object) -> s.RunSubmitted:
    head = run_git(repo, "rev-parse", "HEAD")
    fields: dict[str, object] = dict(
        run_id=runflow.new_run_id(),
        goal=goal,
        repo=s.RepoSource(kind="path", location=str(repo), commit=head),
        backend="scripted",
        agent_script=json.dumps(script) if script is not None else None,
        limits=s.Limits(story_timeout_s=120, stall_timeout_s=60),
    )
    fields.update(kw)
    return s.RunSubmitted(**fields)  # type: ignore[arg-type]


async def run_to_end(
    bus: Bus,
    request: s.RunSubmitted,
    timeout: float = 90,
    progress: runflow.Progress | None = None,
) -> runflow.RunReport:
    """Submit and follow a run (its progress lines to ``progress``, else nowhere); for a
    local repository, also check that the run left the user's branch, index, working
    tree and stash exactly as they were."""
    user_repo = Path(request.repo.location)
    before = None
    if request.repo.kind == "path" and (user_repo / ".git").is_dir():
        with contextlib.suppress(subprocess.CalledProcessError):  # e.g. a detached HEAD
            before = snapshot(user_repo)
    await runflow.submit(bus, request)
    progress = progress or runflow.Progress(open("/dev/null", "w"), quiet=True)  # noqa: SIM115
    report = await asyncio.wait_for(runflow.follow(bus, request, progress, None), timeout)
    if before is not None:
        assert snapshot(user_repo) == before, "the run changed the user's checkout"
    return report


async def replay(bus: Bus, run_id: str) -> list[s.Event]:
    return [ev async for ev in bus.run_events(run_id, follow=False, idle_timeout=2)]
