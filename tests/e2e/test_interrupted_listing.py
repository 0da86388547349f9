"""`baro runs` and `baro status` show a local run whose baro process is gone as interrupted,
and a service that receives a command for it does not start the work."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from baro_cli import runflow
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import ACK, Bus, Delivery, Outcome
from baro_shared.processes import current_owner
from baro_shared.service import CommandService
from baro_shared.settings import Settings

BARO = str(Path(sys.executable).parent / "baro")


def gone_owner() -> s.RunOwner:
    """The owner record of a process that has exited."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return s.RunOwner(pid=int(proc.stdout), host=socket.gethostname(), command="baro run")


def record(goal: str, owner: s.RunOwner | None) -> s.RunRecord:
    request = s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal=goal,
        repo=s.RepoSource(kind="path", location="/nowhere", commit="abc"),
        owner=owner,
    )
    return s.RunRecord(run_id=request.run_id, request=request, state="running", owner=owner)


def baro(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("BARO_NATS_URL", None)
    return subprocess.run(
        [BARO, *args, "--nats-url", settings.nats_url], capture_output=True, text=True, env=env
    )


def test_runs_and_status_show_an_interrupted_run(settings: Settings) -> None:
    dead, live, cluster = (
        record("killed goal", gone_owner()),
        record("running goal", current_owner("baro run")),
        record("cluster goal", None),
    )

    async def store() -> None:
        bus = await Bus.open(settings, "test")
        try:
            for rec in (dead, live, cluster):
                assert await bus.create_record(rec)
        finally:
            await bus.close()

    asyncio.run(store())
    listed = baro(settings, "runs")
    assert listed.returncode == 0, listed.stderr
    states = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
    assert states == {dead.run_id: "interrupted", live.run_id: "running", cluster.run_id: "running"}
    only = baro(settings, "runs", "--state", "interrupted", "--json")
    runs = json.loads(only.stdout)["runs"]
    assert [r["run_id"] for r in runs] == [dead.run_id]
    assert "stopped before the run finished" in runs[0]["interrupted"]["reason"]
    shown = baro(settings, "status", dead.run_id)
    assert (
        f"baro resume {dead.run_id} continues it, baro cancel {dead.run_id} ends it" in shown.stdout
    )
    assert json.loads(baro(settings, "status", live.run_id, "--json").stdout)["interrupted"] is None


class Recorder(CommandService):
    """A worker on the merger's consumer that records what it is given to handle."""

    name = "merger"
    consumer = t.MERGER_CONSUMER

    def __init__(self, bus: Bus, settings: Settings) -> None:
        super().__init__(bus, settings)
        self.handled: list[tuple[str, str]] = []

    async def handle(self, delivery: Delivery[s.Command]) -> Outcome:
        cmd = delivery.message
        self.handled.append((cmd.run_id, cmd.__struct_config__.tag))
        return ACK


async def test_a_worker_starts_no_work_for_an_interrupted_run(settings: Settings) -> None:
    dead, live = record("killed goal", gone_owner()), record("running goal", None)
    bus = await Bus.open(settings, "test")
    worker = Recorder(bus, settings)
    task = asyncio.create_task(worker.run())
    try:
        for rec in (dead, live):
            await bus.create_record(rec)
        for rec in (dead, live):
            deliver = s.DeliverRun(
                run_id=rec.run_id, goal="g", slug="g", repo=rec.request.repo,
                publish="local", mode="focused",
            )  # fmt: skip
            archive = s.ArchiveAttempt(run_id=rec.run_id, story_id="S1", attempt=1, bundle="b")
            await bus.publish(deliver, f"{rec.run_id}.deliver")
            await bus.publish(archive, f"{rec.run_id}.archive")
        for _ in range(200):
            info = await bus.js.consumer_info(t.CMD_STREAM, t.MERGER_CONSUMER)
            if len(worker.handled) == 3 and not info.num_pending and not info.num_ack_pending:
                break
            await asyncio.sleep(0.05)
        assert sorted(worker.handled) == sorted(
            [
                (dead.run_id, "cmd.archive"),  # keeping its work goes on
                (live.run_id, "cmd.deliver"),
                (live.run_id, "cmd.archive"),
            ]
        ), "the interrupted run was delivered"
        info = await bus.js.consumer_info(t.CMD_STREAM, t.MERGER_CONSUMER)
        assert info.num_pending == 0 and info.num_ack_pending == 0, "its command is gone"
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await bus.close()
