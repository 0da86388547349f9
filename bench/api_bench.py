"""Benchmark (not a test): the HTTP front door and remote sources, end to end.

An embedded nats-server and all five services in this process, the intake serving the
API on a free port, the scripted agent as the backend, and a bare repository reached by
file:// URL. Measured:

- ``POST /v1/runs`` latency (request to 202), sequential submissions;
- one run through the API: submit -> ``run.finished`` on its event stream;
- a burst of runs submitted at once: until every one is delivered;
- ``baro submit``'s upload: bundling HEAD and putting it in the object store;
- ``baro fetch``: downloading the result bundle and delivering it into a clone.

    .venv/bin/python bench/api_bench.py [BURST]      (default: 10)
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from baro_cli.commands.fetch import fetch_run
from baro_cli.commands.submit import upload_head
from baro_cli.stack import SERVICES
from baro_intake.api_host import ApiHostedIntake
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.gitutil import git_env
from baro_shared.schemas import RepoSource
from baro_shared.service import Host
from baro_shared.settings import Settings
from baro_shared.sources import source_bundle_name

TOKEN = "bench-token-0123456789abcdef"
SCRIPT = {"default": {"steps": [{"write": "app.py", "content": "print('hello')\n"}]}}
IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, env=git_env(IDENTITY), check=True
    )
    return done.stdout.decode().strip()


def _repository(root: Path, files: int = 200, commits: int = 20) -> tuple[Path, Path]:
    work = root / "work"
    (work / "src").mkdir(parents=True)
    _git(work, "init", "--quiet", "--initial-branch=main")
    for c in range(commits):
        for i in range(files):
            if c == 0 or i % commits == c:
                (work / "src" / f"m{i:03}.py").write_text(f"V = {c}\n" * 40)
        (work / "app.py").write_text(f"print('helo {c}')\n")
        _git(work, "add", "-A")
        _git(work, "commit", "--quiet", "-m", f"commit {c}")
    bare = root / "app.git"
    _git(root, "clone", "--quiet", "--bare", str(work), str(bare))
    return work, bare


def _body(location: str, n: int) -> dict:
    return {
        "goal": f"fix the greeting in app.py ({n})",
        "repo": {"kind": "url", "location": location},
        "mode": "focused",
        "backend": "scripted",
        "agent_script": SCRIPT,
    }


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


async def _until_finished(client: httpx.AsyncClient, run_id: str) -> None:
    async with client.stream("GET", f"/v1/runs/{run_id}/events") as resp:
        async for line in resp.aiter_lines():
            if line.startswith("event: run.finished"):
                return


async def main(burst: int) -> None:
    with tempfile.TemporaryDirectory(prefix="baro-api-bench-") as tmp:
        root = Path(tmp)
        work, bare = _repository(root)
        nats = EmbeddedNats(store_dir=root / "nats").start()
        settings = Settings(
            nats_url=nats.url,
            cache_dir=root / "cache",
            state_dir=root / "state",
            api_port=0,
            api_token=SecretStr(TOKEN),
        )
        host = Host(SERVICES, settings, serve_http=False, handle_signals=False)
        task = asyncio.create_task(host.run())
        await host.started.wait()
        front = next(svc for svc in host.services if isinstance(svc, ApiHostedIntake))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with httpx.AsyncClient(base_url=front.url, headers=headers, timeout=120) as c:
                await _bench_api(c, f"file://{bare}", burst)
            bus = await Bus.open(settings, "bench", ensure=False)
            try:
                await _bench_upload_and_fetch(bus, settings, work, root)
            finally:
                await bus.close()
        finally:
            host.stop()
            await task
            nats.stop()


async def _bench_api(c: httpx.AsyncClient, url: str, burst: int) -> None:
    latencies = []
    for n in range(20):
        started = time.perf_counter()
        got = await c.post("/v1/runs", json={**_body(url, n), "confirm": "picker"})
        latencies.append(time.perf_counter() - started)
        assert got.status_code == 202, got.text
        await c.post(f"/v1/runs/{got.json()['run_id']}/cancel")
    print(f"POST /v1/runs (20 sequential): {_ms(latencies)}")

    one = []
    for n in range(3):
        started = time.perf_counter()
        run_id = (await c.post("/v1/runs", json=_body(url, 100 + n))).json()["run_id"]
        await _until_finished(c, run_id)
        one.append(time.perf_counter() - started)
    print(f"one run via the API, submit -> run.finished on SSE (3 runs): {_ms(one)}")

    started = time.perf_counter()
    ids = [
        (await c.post("/v1/runs", json=_body(url, 200 + n))).json()["run_id"] for n in range(burst)
    ]
    await asyncio.gather(*(_until_finished(c, run_id) for run_id in ids))
    elapsed = time.perf_counter() - started
    states = [(await c.get(f"/v1/runs/{run_id}")).json()["state"] for run_id in ids]
    print(
        f"burst of {burst} runs: all finished in {elapsed:.1f} s "
        f"({burst / elapsed:.2f} runs/s); states: {sorted(set(states))}"
    )


async def _bench_upload_and_fetch(bus: Bus, settings: Settings, work: Path, root: Path) -> None:
    head = _git(work, "rev-parse", "HEAD")
    source = RepoSource(kind="bundle", location=source_bundle_name("bench-upload"), commit=head)
    started = time.perf_counter()
    await upload_head(bus, work, source)
    upload_s = time.perf_counter() - started
    size = (await bus.objects.get_info(source.location)).size or 0
    print(
        f"baro submit upload (200 files, 20 commits): {size / 1024:.0f} KiB in {upload_s * 1000:.0f} ms"
    )

    runs = [r for r in await bus.list_records() if r.delivered and r.delivered.result_bundle]
    clone = root / "clone"
    _git(root, "clone", "--quiet", str(root / "app.git"), str(clone))
    started = time.perf_counter()
    got = await fetch_run(bus, settings, runs[0].run_id, clone)
    print(
        f"baro fetch into a clone: {(time.perf_counter() - started) * 1000:.0f} ms ({got.branch})"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
