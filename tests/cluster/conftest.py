"""The cluster suite's world: three clustered nats-servers and each service as its own
process on a disk of its own, agent runners fenced off from everything else.

Layout of the world (the test's temp dir): ``nats/n0..n2`` the servers' stores,
``disks/<service>-<n>`` one process's cache and state (what a pod's volume is),
``user`` the user's repository, ``client`` the test's own cache. A runner runs under
``fence.py``: the whole world is hidden from it except its own disk, so sources and
results can only travel through the object store. See docs/reliability.md "Cluster".
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from baro_cli.commands.fetch import fetch_run
from baro_cli.commands.submit import upload_head
from baro_shared import schemas as s
from baro_shared import sources
from baro_shared.bus import Bus
from baro_shared.embedded import NatsCluster
from baro_shared.settings import Settings
from tests.faults.conftest import (
    Cluster,
    ServiceProcess,
    client,
    running,
    service_env,
    submit_request,
)

__all__ = ["client"]

FENCE = Path(__file__).with_name("fence.py")
REPLICAS = 3


@functools.cache
def fence_works() -> bool:
    """Whether this kernel lets the fence make its namespace (root, or unprivileged user
    namespaces allowed)."""
    with tempfile.TemporaryDirectory(prefix="baro-fence-") as tmp:
        keep = Path(tmp) / "keep"
        probe = [sys.executable, str(FENCE), tmp, str(keep), "--", "true"]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@dataclass
class ClusterWorld(Cluster):
    nats: NatsCluster
    # runners behind the fence; without it (a kernel refusing namespaces) they still run,
    # each on its own disk, and only the test of the fence itself is skipped
    fenced: bool = True

    def disk(self, name: str, n: int) -> Path:
        return self.root / "disks" / f"{name}-{n}"

    def settings(self) -> Settings:
        return super().settings().model_copy(update={"replicas": REPLICAS})

    def start(self, name: str, **env: str) -> ServiceProcess:
        """Start service ``name`` on a disk of its own; a runner behind the fence."""
        n = sum(1 for p in self.processes if p.name == name)
        disk = self.disk(name, n)
        (disk / "tmp").mkdir(parents=True, exist_ok=True)
        own = {
            "BARO_CACHE_DIR": str(disk / "cache"),
            "BARO_STATE_DIR": str(disk / "state"),
            "TMPDIR": str(disk / "tmp"),
        }
        extra = {f"BARO_{k.upper()}": v for k, v in env.items()}
        fenced = self.fenced and name == "agent-runner"
        wrapper = (sys.executable, str(FENCE), str(self.root), str(disk), "--") if fenced else ()
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        proc = ServiceProcess(
            name,
            {**self.env, **own, **extra},
            logs / f"{name}-{n}.log",
            wrapper=wrapper,
            cwd=disk,
        ).start()
        self.processes.append(proc)
        return proc

    def sees(self, proc: ServiceProcess, path: Path) -> bool:
        """Whether ``path`` exists in the filesystem as process ``proc`` sees it."""
        return Path(f"/proc/{proc.pid}/root{path}").exists()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterWorld]:
    nats = NatsCluster(tmp_path / "nats", size=3).start()
    env = service_env(nats.url, tmp_path, replicas=str(REPLICAS), runner_ack_wait_s="10")
    with running(ClusterWorld(nats, tmp_path, env, fenced=fence_works())) as world:
        yield world  # type: ignore[misc]


async def bundle_request(
    client: Bus, repo: Path, goal: str, script: dict, **kw: object
) -> s.RunSubmitted:
    """A run the way ``baro submit --repo`` makes one: HEAD uploaded as a bundle to the
    object store, the run naming only that object (not yet submitted)."""
    request = submit_request(repo, goal, script, **kw)
    source = s.RepoSource(
        kind="bundle",
        location=sources.source_bundle_name(request.run_id),
        commit=request.repo.commit,
    )
    await upload_head(client, repo, source)
    return msgspec.structs.replace(request, repo=source, ts=s.now())


async def submit_bundle(client: Bus, repo: Path, goal: str, script: dict, **kw: object) -> str:
    """Upload and submit a run (see ``bundle_request``); returns its id."""
    request = await bundle_request(client, repo, goal, script, **kw)
    await client.publish(request, f"{request.run_id}.submitted")
    return request.run_id


def parallel_run(sleeps: dict[str, float]) -> dict[str, object]:
    """The script, plan and limits of a parallel run of independent stories: story ``id``
    sleeps ``sleeps[id]`` seconds, then writes ``<id>.txt``."""
    plan = [
        s.Story(id=sid, title=f"write {sid.lower()}.txt", write_surface=[f"{sid.lower()}.txt"])
        for sid in sleeps
    ]
    script = {
        "stories": [
            {
                "match": {"id": sid},
                "steps": [{"sleep": secs}, {"write": f"{sid.lower()}.txt", "content": f"{sid}\n"}],
            }
            for sid, secs in sleeps.items()
        ]
    }
    n = len(sleeps)
    limits = s.Limits(max_stories=n, parallelism=n, story_timeout_s=300, stall_timeout_s=120)
    return {"script": script, "plan": plan, "mode_request": "parallel", "limits": limits}


async def poll(bus: Bus, run_id: str) -> s.RunRecord | None:
    """The run record, or None while the cluster cannot answer (mid-election)."""
    with contextlib.suppress(Exception):
        got = await bus.get_record(run_id)
        return got[0] if got else None
    return None


async def fetched_branch(client: Bus, world: ClusterWorld, run_id: str, repo: Path) -> str:
    """Bring the run's result from the object store into ``repo``; the branch it made."""
    got = await fetch_run(client, world.settings(), run_id, repo)
    assert got.branch is not None, f"run {run_id} delivered no branch"
    return got.branch
