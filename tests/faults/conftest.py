"""The fault suite's world: a real nats-server and each service as its own process.

Services run as ``baro service NAME`` subprocesses so a test can kill, stop, or restart any
one of them; the test talks to the bus through its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from baro_cli import runflow
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats, NatsCluster
from baro_shared.settings import Settings
from tests.conftest import run_git

BARO = str(Path(sys.executable).parent / "baro")
CORE_SERVICES = ("conductor", "intake", "planner", "merger")


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    # what the command runs under (e.g. a fence), and where
    wrapper: tuple[str, ...] = ()
    cwd: Path | None = None

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [*self.wrapper, BARO, "service", self.name],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def runner_id(self) -> str:
        return f"baro-{self.name}@{socket.gethostname()}:{self.pid}"

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Cluster:
    nats: EmbeddedNats | NatsCluster
    root: Path
    env: dict[str, str]
    processes: list[ServiceProcess] = field(default_factory=list)

    def settings(self) -> Settings:
        return Settings(
            nats_url=self.nats.url,
            cache_dir=self.root / "client-cache",
            state_dir=self.root / "state",
        )

    def start(self, name: str, **env: str) -> ServiceProcess:
        extra = {f"BARO_{k.upper()}": v for k, v in env.items()}
        n = sum(1 for p in self.processes if p.name == name)
        proc = ServiceProcess(name, {**self.env, **extra}, self.root / f"{name}-{n}.log").start()
        self.processes.append(proc)
        return proc

    def start_core(self) -> None:
        for name in CORE_SERVICES:
            self.start(name)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log_tail()}" for p in self.processes)


def service_env(nats_url: str, root: Path, **settings: str) -> dict[str, str]:
    """The environment of the world's service processes (``settings``: BARO_* overrides)."""
    return {
        **os.environ,
        "BARO_NATS_URL": nats_url,
        "BARO_CACHE_DIR": str(root / "cache"),
        "BARO_STATE_DIR": str(root / "state"),
        "BARO_RUNNER_ACK_WAIT_S": "3",
        "BARO_RUNNER_SLOTS": "2",
        "BARO_LOG_LEVEL": "INFO",
        "BARO_HTTP_PORT": "0",
        **{f"BARO_{k.upper()}": v for k, v in settings.items()},
    }


@contextlib.contextmanager
def running(world: Cluster) -> Iterator[Cluster]:
    """The world, its processes stopped and its NATS too when the test ends."""
    try:
        yield world
    finally:
        for proc in world.processes:
            proc.stop(timeout=15)
        world.nats.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nats = EmbeddedNats(store_dir=tmp_path / "nats").start()
    with running(Cluster(nats, tmp_path, service_env(nats.url, tmp_path))) as world:
        yield world


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[Bus]:
    bus = await Bus.open(cluster.settings(), "fault-test")
    try:
        yield bus
    finally:
        await bus.close()


def submit_request(repo: Path, goal: str, script: dict, **kw: object) -> s.RunSubmitted:
    fields: dict[str, object] = dict(
        run_id=runflow.new_run_id(),
        goal=goal,
        repo=s.RepoSource(
            kind="path", location=str(repo), commit=run_git(repo, "rev-parse", "HEAD")
        ),
        backend="scripted",
        agent_script=json.dumps(script),
        limits=s.Limits(story_timeout_s=300, stall_timeout_s=120, retries=0),
    )
    fields.update(kw)
    return s.RunSubmitted(**fields)  # type: ignore[arg-type]


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, cluster: Cluster
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{cluster.logs()}")


async def record(bus: Bus, run_id: str) -> s.RunRecord | None:
    got = await bus.get_record(run_id)
    return got[0] if got else None


async def wait_story(
    bus: Bus,
    cluster: Cluster,
    run_id: str,
    story: str,
    status: str,
    *,
    attempt: int | None = None,
    timeout: float = 90,
) -> s.RunRecord:
    async def check() -> bool:
        rec = await record(bus, run_id)
        st = rec.story(story) if rec else None
        return bool(st and st.status == status and (attempt is None or st.attempt >= attempt))

    await eventually(check, timeout, f"{story} {status}", cluster)
    rec = await record(bus, run_id)
    assert rec is not None
    return rec


async def wait_final(bus: Bus, cluster: Cluster, run_id: str, timeout: float = 120) -> s.RunRecord:
    async def check() -> bool:
        rec = await record(bus, run_id)
        return bool(rec and rec.state in s.TERMINAL_RUN_STATES)

    async def describe() -> str:
        rec = await record(bus, run_id)
        if rec is None:
            return "no record"
        stories = ", ".join(f"{st.story.id}={st.status}#{st.attempt}" for st in rec.stories)
        kinds = [type(ev).__name__ for ev in await events_of(bus, run_id)]
        consumers = []
        for name in ("intake", "planner", "agent-runner", "merger"):
            info = await bus.js.consumer_info("BARO_CMD", name)
            consumers.append(
                f"{name}: pending={info.num_pending} ack_pending={info.num_ack_pending}"
            )
        info = await bus.js.consumer_info("BARO_EVT", "conductor")
        consumers.append(
            f"conductor: pending={info.num_pending} ack_pending={info.num_ack_pending}"
        )
        return (
            f"state={rec.state} prepared={rec.prepared} integrating={rec.integrating_batch} "
            f"stories: {stories}\nevents: {kinds}\n" + "; ".join(consumers)
        )

    try:
        await eventually(check, timeout, f"run {run_id} to finish", cluster)
    except pytest.fail.Exception as exc:
        raise AssertionError(f"{await describe()}\n{exc}") from None
    rec = await record(bus, run_id)
    assert rec is not None
    return rec


async def events_of(bus: Bus, run_id: str) -> list[s.Event]:
    return [ev async for ev in bus.run_events(run_id, follow=False, idle_timeout=2)]


def story_commits(repo: Path, branch: str, base: str) -> list[str]:
    body = run_git(
        repo, "log", "--format=%(trailers:key=Baro-Story,valueonly)", f"{base}..{branch}"
    )
    return [line.strip() for line in body.splitlines() if line.strip()]
