"""`baro cancel RUN`: the running agent's process is gone, nothing more is dispatched, the run
is cancelled, and everything stays inspectable (record, events, the attempt's refs)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from tests.conftest import eventually, make_repo, run_git
from tests.e2e.conftest import replay, request_for
from tests.scheduler.conftest import story

BARO = str(Path(sys.executable).parent / "baro")
FILES = {"README.md": "# cancel me\n"}


async def baro(*args: str, cwd: Path, state_dir: Path | None = None) -> tuple[int, str, str]:
    """The real CLI in a subprocess, without blocking the stack running in this loop."""
    env = {**os.environ, "BARO_STATE_DIR": str(state_dir or cwd / "cli-state")}
    env.pop("BARO_NATS_URL", None)
    proc = await asyncio.create_subprocess_exec(
        BARO,
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[-1].startswith("Z"))


async def test_cancel_stops_the_agent_and_dispatch_and_keeps_the_attempt(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {
        "stories": [
            {
                "match": {"id": "S1"},
                "steps": [
                    {"write": "partial.txt", "content": "work in progress\n"},
                    {"hang": None},
                ],
            }
        ]
    }
    # the agent's process group, as the runner records it (inside its sandbox the agent
    # sees only its own namespace's pids)
    groups = stack.cache_dir / "agent-groups"

    def agent_group() -> int | None:
        found = [int(p.name) for p in groups.glob("*")] if groups.is_dir() else []
        return found[0] if len(found) == 1 else None

    plan = [story("S1", "Start the work", ["partial.txt"]), story("S2", "Go on", [], ["S1"])]
    request = request_for(
        repo, "start the work, then go on", script, mode_request="sequential", plan=plan
    )
    await bus.publish(request, f"{request.run_id}.submitted")

    async def agent_running() -> bool:
        got = await bus.get_record(request.run_id)
        first = got[0].story("S1") if got else None
        partial = next(iter(stack.cache_dir.rglob("partial.txt")), None)
        return first is not None and first.status == "running" and partial is not None

    await eventually(agent_running)
    await eventually(lambda: agent_group() is not None)
    pid = agent_group()
    assert pid is not None and alive(pid)

    code, out, err = await baro(
        "cancel", request.run_id, "--nats-url", stack.nats_url, "--json", cwd=tmp_path
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["state"] == "cancelled" and result["previous_state"] == "running"
    assert result["agents_stopped"] == ["S1"] and result["agents_stopping"] == []
    assert {st["id"]: st["status"] for st in result["stories"]} == {
        "S1": "cancelled",
        "S2": "cancelled",
    }

    await eventually(lambda: not alive(pid), timeout=30)

    got = await bus.get_record(request.run_id)
    assert got is not None
    record = got[0]
    assert record.state == "cancelled" and record.reason == "cancelled by user"
    assert record.story("S1").counted_attempts == ["1:cancelled"]  # type: ignore[union-attr]

    ref = f"refs/baro/{request.run_id}/S1/1"

    async def ref_kept() -> bool:
        refs = run_git(repo, "for-each-ref", "--format=%(refname)", f"refs/baro/{request.run_id}/")
        return ref in refs.split()

    await eventually(ref_kept)
    assert run_git(repo, "show", f"{ref}:partial.txt") == "work in progress"

    events = await replay(bus, request.run_id)
    started = [ev.story_id for ev in events if isinstance(ev, s.StoryStarted)]
    assert started == ["S1"], "nothing was dispatched after the cancel"
    assert any(isinstance(ev, s.CancelRequested) for ev in events)
    finished = [ev for ev in events if isinstance(ev, s.RunFinished)]
    assert [ev.status for ev in finished] == ["cancelled"]
    stopped = [ev for ev in events if isinstance(ev, s.StoryFinished)]
    assert [(ev.story_id, ev.status) for ev in stopped] == [("S1", "cancelled")]

    again, _, err = await baro("cancel", request.run_id, "--nats-url", stack.nats_url, cwd=tmp_path)
    assert again == 1 and err.strip() == (
        f"baro: run {request.run_id} already finished (cancelled): nothing to cancel"
    )


async def test_cancel_of_an_unknown_run_is_one_clear_line(stack: Settings, tmp_path: Path) -> None:
    code, out, err = await baro("cancel", "no-such-run", "--nats-url", stack.nats_url, cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"baro: no run 'no-such-run' on NATS at {stack.nats_url}: check the id "
        "(baro prints it when the run starts)"
    ]


async def test_cancel_without_a_reachable_nats_is_one_clear_line(tmp_path: Path) -> None:
    code, out, err = await baro(
        "cancel", "some-run", "--nats-url", "nats://127.0.0.1:1", cwd=tmp_path
    )
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot reach NATS at nats://127.0.0.1:1" in lines[0]
    assert "--nats-url" in lines[0] and "Traceback" not in err


async def test_cancel_finds_this_machines_embedded_server(
    stack: Settings, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    # the test's server keeps its store where a `baro run` on this machine keeps it
    assert nats_server.store_dir == tmp_path / "nats"
    code, _, err = await baro("cancel", "no-such-run", cwd=tmp_path, state_dir=tmp_path)
    assert code == 2
    assert f"no run 'no-such-run' on NATS at {nats_server.url}" in err
