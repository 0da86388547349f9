"""A small cluster for benchmarks: an embedded nats-server and each service as its own
``baro service NAME`` process, so runners can be counted and each process measured; or
every service in the benchmark's own process (``local_stack``), as ``baro run`` runs them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baro_cli import runflow
from baro_cli.stack import SERVICES
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.gitutil import BARO_IDENTITY, git_env
from baro_shared.service import Host
from baro_shared.settings import Settings

BARO = str(Path(sys.executable).parent / "baro")
CORE = ("conductor", "intake", "planner", "merger")


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=True, env=git_env(BARO_IDENTITY)
    )
    return out.stdout.decode().strip()


def make_repo(root: Path, files: int = 20) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch=main")
    for i in range(files):
        (repo / f"m{i}.py").write_text(f"X{i} = {i}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "bench repository")
    return repo


def parallel_request(repo: Path, stories: int, sleep_s: float, parallelism: int) -> s.RunSubmitted:
    """A run of ``stories`` independent stories, each sleeping then writing its own file."""
    plan = [
        s.Story(id=f"S{i}", title=f"write out/{i}.txt", write_surface=[f"out/{i}.txt"])
        for i in range(stories)
    ]
    script = {
        "stories": [
            {
                "match": {"id": f"S{i}"},
                "steps": [{"sleep": sleep_s}, {"write": f"out/{i}.txt", "content": f"{i}\n"}],
            }
            for i in range(stories)
        ]
    }
    return s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal=f"bench: {stories} independent stories",
        repo=s.RepoSource(kind="path", location=str(repo), commit=git(repo, "rev-parse", "HEAD")),
        mode_request="parallel",
        backend="scripted",
        agent_script=json.dumps(script),
        limits=s.Limits(
            max_stories=stories, parallelism=parallelism, story_timeout_s=600, stall_timeout_s=600
        ),
        plan=plan,
    )


@dataclass
class BenchCluster:
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    nats: EmbeddedNats | None = None
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    def __enter__(self) -> BenchCluster:
        self.nats = EmbeddedNats(store_dir=self.root / "nats").start()
        self.env = {
            **os.environ,
            "BARO_NATS_URL": self.nats.url,
            "BARO_CACHE_DIR": str(self.root / "cache"),
            "BARO_STATE_DIR": str(self.root / "state"),
            "BARO_LOG_LEVEL": "WARNING",
            "BARO_HTTP_PORT": "0",
            "BARO_MAX_RUNNING_AGENTS": "64",
            **self.env,
        }
        return self

    def start(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        extra = {f"BARO_{k.upper()}": v for k, v in env.items()}
        proc = subprocess.Popen(
            [BARO, "service", name],
            env={**self.env, **extra},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.setdefault(name, []).append(proc)
        return proc

    def settings(self) -> Settings:
        assert self.nats is not None
        return Settings(
            nats_url=self.nats.url, cache_dir=self.root / "client", state_dir=self.root / "state"
        )

    def __exit__(self, *exc: object) -> None:
        for procs in self.procs.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        for procs in self.procs.values():
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.nats:
            self.nats.stop()


@contextlib.asynccontextmanager
async def local_stack(
    root: Path, *, hosts: list[Host] | None = None, **overrides: Any
) -> AsyncIterator[tuple[Settings, Bus]]:
    """Every service in this process on an embedded nats-server (its store, cache and
    state under ``root``), like ``baro run``, and a bus to submit to it. ``overrides`` are
    more settings (an API port and token, say); the services' host is appended to ``hosts``
    for a caller that needs one of them."""
    server = EmbeddedNats(store_dir=root / "nats").start()
    settings = Settings(
        nats_url=server.url,
        cache_dir=root / "cache",
        state_dir=root / "state",
        log_level="WARNING",
        **overrides,
    )
    host = Host(SERVICES, settings, serve_http=False, handle_signals=False)
    if hosts is not None:
        hosts.append(host)
    task = asyncio.create_task(host.run())
    try:
        await asyncio.wait_for(host.started.wait(), 60)
        bus = await Bus.open(settings, "bench", ensure=False)
        try:
            yield settings, bus
        finally:
            await bus.close()
    finally:
        host.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        server.stop()


async def timed_run(bus: Bus, request: s.RunSubmitted) -> tuple[float, float]:
    """Submit ``request`` and follow it to the end: (submit -> delivered, submit -> first
    agent) in seconds; anything but a delivered run is an error."""
    progress = runflow.Progress(open(os.devnull, "w"), quiet=True)  # noqa: SIM115
    started = time.perf_counter()
    await runflow.submit(bus, request)
    report = await runflow.follow(bus, request, progress, None)
    elapsed = time.perf_counter() - started
    if report.status != "delivered" or report.first_agent_s is None:
        raise RuntimeError(f"bench run ended {report.status}: {report.reason}")
    return elapsed, report.first_agent_s


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_all(
    settings: Settings, requests: list[s.RunSubmitted], timeout: float = 900
) -> float:
    """Submit every run, wait until all are final; seconds from the first submit."""
    bus = await Bus.open(settings, "bench", ensure=False)
    try:
        started = time.perf_counter()
        for request in requests:
            await runflow.submit(bus, request)
        pending = {r.run_id for r in requests}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                got = await bus.get_record(run_id)
                if got and got[0].state in s.TERMINAL_RUN_STATES:
                    if got[0].state != "delivered":
                        raise RuntimeError(f"run {run_id} ended {got[0].state}: {got[0].reason}")
                    pending.discard(run_id)
            await asyncio.sleep(0.1)
        if pending:
            raise RuntimeError(f"{len(pending)} runs did not finish in {timeout:.0f}s")
        return time.perf_counter() - started
    finally:
        await bus.close()


async def wait_ready(settings: Settings, runners: int, timeout: float = 60) -> None:
    """Wait until the runner consumer has as many waiting pull requests as runner slots imply."""
    bus = await Bus.open(settings, "bench-ready")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = await bus.js.consumer_info("BARO_CMD", "agent-runner")
            if (info.num_waiting or 0) >= runners:
                return
            await asyncio.sleep(0.2)
    finally:
        await bus.close()
