"""Benchmark (not a test): what a run's start costs on a long history, with the per-source
object caches cold and warm, locally and on a cluster whose two runners share no disk.

For each synthetic repository (about 1 MB, 100 MB and 1 GB of history, ``synthetic_repo``),
a 4-story parallel plan (given with the run, so no planner) whose scripted agents sleep 2 s
and write one file each:

- **local**: one process runs every service on an embedded nats-server, like ``baro run``;
  the source is the user's repository by path. Cold: the caches are removed before the
  run. Warm: the user commits a small change before each run, so every warm run fetches
  the increment, as a user's next run would.
- **cluster**: each service is its own ``baro service`` process; two agent-runner
  processes each have their own ``BARO_CACHE_DIR`` (they share no disk with each other or
  with the merger); the source is the repository by ``file://`` URL, which git serves with
  its pack protocol as it would over the network. Cold: every cache removed.

Reported per size: submit → first agent (the first ``StoryStarted``), the run's wall-clock,
how much ``BARO_CACHE_DIR`` grows per extra (warm, local) run, and, for comparison, how
long fetching the whole history takes (what preparing a run cost before the caches).
Beside them, at the largest size: how long a story workspace takes to make as a
borrowing repository, a blob-less clone, a shallow clone and a plain local clone of the
cache, and whether the merger can integrate a result made in it.

    .venv/bin/python -m bench.sources_bench [--quick] [--sizes 1mb,100mb,1gb]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from baro_merger.integration import prepare_run
from baro_runner import workspace
from baro_shared import objectcache
from baro_shared import schemas as s
from baro_shared.bus import Bus
from bench import synthetic_repo
from bench.cluster import (
    CORE,
    BenchCluster,
    git,
    local_stack,
    parallel_request,
    timed_run,
    wait_ready,
)

STORIES, SLEEP_S = 4, 2.0


def user_clone(size: str, where: Path) -> Path:
    """The user's repository: a clone of the generated one (hard links, so it costs no
    copy), which the benchmark commits to without touching the generated original."""
    original = synthetic_repo.ensure(size)
    repo = where / "user"
    where.mkdir(parents=True, exist_ok=True)
    git(where, "clone", "--quiet", str(original), str(repo))
    return repo


def user_commits(repo: Path, n: int) -> str:
    """A small change of the user's between two runs: the increment a warm cache fetches."""
    (repo / "NOTES.md").write_text(f"note {n}\n")
    git(repo, "add", "NOTES.md")
    git(repo, "commit", "--quiet", "-m", f"note {n}")
    return git(repo, "rev-parse", "HEAD")


def request(repo: Path, source: s.RepoSource | None = None) -> s.RunSubmitted:
    made = parallel_request(repo, STORIES, SLEEP_S, parallelism=STORIES)
    return made if source is None else msgspec.structs.replace(made, repo=source)


def forget_caches(*cache_dirs: Path) -> None:
    for cache_dir in cache_dirs:
        for name in ("sources", "integration", "workspaces"):
            shutil.rmtree(cache_dir / name, ignore_errors=True)


def cache_bytes(cache_dir: Path) -> int:
    return objectcache.disk_usage(cache_dir)[0] if cache_dir.exists() else 0


async def one_run(bus: Bus, req: s.RunSubmitted) -> tuple[float, float]:
    """(submit → first agent, submit → run final) in seconds."""
    wall, first = await timed_run(bus, req)
    return first, wall


# --------------------------------------------------------------------------- local


async def local_runs(size: str, root: Path, cold: int, warm: int) -> dict[str, list[float]]:
    repo = user_clone(size, root)
    cache_dir = root / "cache"
    out: dict[str, list[float]] = {
        k: [] for k in ("cold_first", "cold_wall", "warm_first", "warm_wall", "growth", "load")
    }
    async with local_stack(root) as (_settings, bus):
        await one_run(bus, request(repo))  # warms the processes, not measured
        for n in range(cold):
            forget_caches(cache_dir)
            user_commits(repo, 1000 + n)
            out["load"].append(os.getloadavg()[0])
            first, wall = await one_run(bus, request(repo))
            out["cold_first"].append(first)
            out["cold_wall"].append(wall)
        for n in range(warm):
            user_commits(repo, n)
            before = cache_bytes(cache_dir)
            out["load"].append(os.getloadavg()[0])
            first, wall = await one_run(bus, request(repo))
            out["warm_first"].append(first)
            out["warm_wall"].append(wall)
            out["growth"].append((cache_bytes(cache_dir) - before) / 1024)
    return out


# --------------------------------------------------------------------------- cluster


def cluster_runs(size: str, root: Path, cold: int, warm: int) -> dict[str, list[float]]:
    repo = user_clone(size, root)
    runner_dirs = [root / f"runner-{i}" for i in range(2)]
    out: dict[str, list[float]] = {
        k: [] for k in ("cold_first", "cold_wall", "warm_first", "warm_wall", "load")
    }
    with BenchCluster(root) as cluster:
        for name in CORE:
            cluster.start(name)
        for runner_dir in runner_dirs:
            cluster.start("agent-runner", cache_dir=str(runner_dir), runner_slots="2")
        settings = cluster.settings()
        asyncio.run(wait_ready(settings, 2))

        def url_request(n: int) -> s.RunSubmitted:
            head = user_commits(repo, n)
            source = s.RepoSource(kind="url", location=f"file://{repo}", commit=head)
            return request(repo, source)

        async def measure() -> None:
            bus = await Bus.open(settings, "bench", ensure=False)
            try:
                await one_run(bus, url_request(0))  # warms the processes
                for n in range(cold):
                    forget_caches(root / "cache", *runner_dirs)
                    req = url_request(1000 + n)
                    out["load"].append(os.getloadavg()[0])
                    first, wall = await one_run(bus, req)
                    out["cold_first"].append(first)
                    out["cold_wall"].append(wall)
                for n in range(warm):
                    req = url_request(1 + n)
                    out["load"].append(os.getloadavg()[0])
                    first, wall = await one_run(bus, req)
                    out["warm_first"].append(first)
                    out["warm_wall"].append(wall)
            finally:
                await bus.close()

        asyncio.run(measure())
    return out


# --------------------------------------------------------------------------- baseline


def history_fetch_seconds(size: str, root: Path) -> float:
    """Fetching the whole history into a fresh bare repository: what preparing every run
    cost before the caches (and what a cold URL cache still pays once)."""
    original = synthetic_repo.ensure(size)
    bare = root / f"fetch-{time.monotonic_ns()}.git"
    git(root, "init", "--quiet", "--bare", str(bare))
    started = time.perf_counter()
    git(bare, "fetch", "--quiet", "--no-tags", str(original), "+HEAD:refs/heads/main")
    seconds = time.perf_counter() - started
    shutil.rmtree(bare)
    return seconds


# --------------------------------------------------------------------------- interleaved


async def _warm_prepare(repo: Path, cache_dir: Path, run_id: str) -> float:
    """One warm start's git work, as the merger and one runner do it: the integration
    repository (fetching the user's new commit into the cache) and a story workspace."""
    source = s.RepoSource(kind="path", location=str(repo), commit=git(repo, "rev-parse", "HEAD"))
    started = time.perf_counter()
    prepared = await prepare_run(cache_dir / "integration", run_id, source)
    ws_root = cache_dir / "workspaces" / run_id / "S1-1"
    made = await workspace.prepare(ws_root, source, prepared.base, sources=cache_dir / "sources")
    seconds = time.perf_counter() - started
    await made.remove()
    shutil.rmtree(prepared.repo)
    return seconds


def warm_prepare_ratios(sizes: tuple[str, ...], root: Path, rounds: int) -> Raw:
    """A warm start's git work per history size, the sizes taken in turn within each
    round (so a loaded machine weighs on all alike), and each size's time over each
    smaller size's of the same round: 1.0 is a start that does not grow with history.
    The 100 MB and 1 GB repositories have the same tree at their head (about 18 MB), so
    their ratio is history alone; against 1 MB it also holds the larger checkout."""
    repos = {size: user_clone(size, root / size) for size in sizes}
    caches = {size: root / size / "cache" for size in sizes}
    seconds: dict[str, list[float]] = {size: [] for size in sizes}
    for size in sizes:  # the cold start of each cache, not measured
        asyncio.run(_warm_prepare(repos[size], caches[size], "cold"))
    for n in range(rounds):
        for size in sizes:
            user_commits(repos[size], n)
            seconds[size].append(asyncio.run(_warm_prepare(repos[size], caches[size], f"r{n}")))
    raw: Raw = {}
    for i, size in enumerate(sizes):
        raw[f"{size}_warm_prepare_s"] = (seconds[size], "s", 3, None)
        for smaller in sizes[:i]:
            ratios = [a / b for a, b in zip(seconds[size], seconds[smaller], strict=True)]
            raw[f"{size}_warm_prepare_vs_{smaller}"] = (ratios, "x", 2, None)
    return raw


def measure_prepare(
    quick: bool = False, sizes: tuple[str, ...] = tuple(synthetic_repo.SIZES)
) -> Raw:
    with tempfile.TemporaryDirectory(prefix="baro-prepare-", dir=_tmp_root()) as tmp:
        loads = [os.getloadavg()[0]]
        raw = warm_prepare_ratios(sizes, Path(tmp), 5 if quick else 9)
        loads.append(os.getloadavg()[0])
    raw["load_1min"] = (loads, "load", 2, None)
    return raw


# --------------------------------------------------------------------------- workspaces


def workspace_strategies(size: str, root: Path, repeat: int) -> dict[str, list[float]]:
    """Seconds to make a story workspace at the head, four ways, from one warm cache; a
    strategy whose result the merger cannot integrate is reported as an error."""
    original = synthetic_repo.ensure(size)
    cache = root / "cache.git"
    git(root, "clone", "--quiet", "--bare", str(original), str(cache))
    git(cache, "config", "uploadpack.allowFilter", "true")
    base = git(cache, "rev-parse", "HEAD")
    url = f"file://{cache}"

    def borrowed(ws: Path) -> None:
        git(root, "init", "--quiet", str(ws))
        (ws / ".git" / "objects" / "info" / "alternates").write_text(f"{cache / 'objects'}\n")
        git(ws, "checkout", "--quiet", "-B", "baro-story", base)

    def blobless(ws: Path) -> None:
        git(root, "clone", "--quiet", "--filter=blob:none", "--no-checkout", url, str(ws))
        git(ws, "checkout", "--quiet", "-B", "baro-story", base)

    def shallow(ws: Path) -> None:
        git(root, "clone", "--quiet", "--depth=1", "--no-checkout", url, str(ws))
        git(ws, "checkout", "--quiet", "-B", "baro-story", base)

    def local_clone(ws: Path) -> None:
        git(root, "clone", "--quiet", "--no-checkout", str(cache), str(ws))
        git(ws, "checkout", "--quiet", "-B", "baro-story", base)

    out: dict[str, list[float]] = {}
    for name, make in (
        ("borrowed", borrowed),
        ("blobless", blobless),
        ("shallow", shallow),
        ("local_clone", local_clone),
    ):
        times = []
        for n in range(repeat):
            ws = root / f"ws-{name}-{n}"
            started = time.perf_counter()
            make(ws)
            times.append(time.perf_counter() - started)
            if n == 0:
                integrable(ws, cache, base, root / f"int-{name}")
            shutil.rmtree(ws)
        out[name] = times
    return out


def integrable(ws: Path, cache: Path, base: str, integration: Path) -> None:
    """The merger's path for a story made in ``ws``: bundle base..head, import it into a
    repository borrowing the cache, merge it with ``git merge-tree``."""
    (ws / "pkg00" / "story.txt").write_text("a story's change\n")
    git(ws, "add", "-A")
    git(ws, "commit", "--quiet", "-m", "story")
    bundle = integration.with_suffix(".bundle")
    git(ws, "bundle", "create", "--quiet", str(bundle), "baro-story", f"^{base}")
    git(integration.parent, "init", "--quiet", "--bare", str(integration))
    (integration / "objects" / "info" / "alternates").write_text(f"{cache / 'objects'}\n")
    git(integration, "fetch", "--quiet", str(bundle), "baro-story:refs/story")
    git(integration, "merge-tree", "--write-tree", base, "refs/story")
    shutil.rmtree(integration)
    bundle.unlink()


# --------------------------------------------------------------------------- report

# name -> (values, unit, digits, target): ``bench.__main__.figure`` makes each a figure
Raw = dict[str, tuple[list[float], str, int, str | None]]


def _ratio(top: list[float], bottom: list[float]) -> list[float]:
    return [statistics.median(top) / statistics.median(bottom)] if top and bottom else []


def measure(quick: bool = False, sizes: tuple[str, ...] = tuple(synthetic_repo.SIZES)) -> Raw:
    """Every figure of the scenario, raw. Beside the seconds, ratios against baselines
    measured in this same process: each size's warm start against the smallest size's
    (1.0 is a start independent of history), the warm start against fetching the whole
    history (what every run paid before the caches), and each workspace strategy against
    a borrowing workspace."""
    cold, warm = (2, 3) if quick else (3, 5)
    raw: Raw = {}
    loads: list[float] = []
    smallest_warm: list[float] = []
    for size in sizes:
        synthetic_repo.ensure(size)
        with tempfile.TemporaryDirectory(prefix=f"baro-sources-{size}-", dir=_tmp_root()) as tmp:
            root = Path(tmp)
            fetches = [history_fetch_seconds(size, root) for _ in range(1 if quick else 2)]
            raw[f"{size}_history_fetch_s"] = (fetches, "s", 2, None)
            local = asyncio.run(local_runs(size, root / "local", cold, warm))
            cold_target = "<= 3" if size == "1gb" else None
            raw[f"{size}_local_cold_first_agent_s"] = (local["cold_first"], "s", 2, cold_target)
            raw[f"{size}_local_warm_first_agent_s"] = (local["warm_first"], "s", 2, "<= 1")
            raw[f"{size}_local_cold_wall_s"] = (local["cold_wall"], "s", 2, None)
            raw[f"{size}_local_warm_wall_s"] = (local["warm_wall"], "s", 2, None)
            raw[f"{size}_cache_growth_per_run_kb"] = (local["growth"], "KB", 0, "<= 1024")
            smallest_warm = smallest_warm or local["warm_first"]
            raw[f"{size}_warm_first_agent_vs_{sizes[0]}"] = (
                _ratio(local["warm_first"], smallest_warm),
                "x",
                2,
                None,
            )
            raw[f"{size}_warm_first_agent_vs_history_fetch"] = (
                _ratio(local["warm_first"], fetches),
                "x",
                2,
                None,
            )
            cluster = cluster_runs(size, root / "cluster", cold, warm)
            raw[f"{size}_cluster_cold_first_agent_s"] = (cluster["cold_first"], "s", 2, None)
            raw[f"{size}_cluster_warm_first_agent_s"] = (cluster["warm_first"], "s", 2, "<= 1")
            raw[f"{size}_cluster_cold_wall_s"] = (cluster["cold_wall"], "s", 2, None)
            raw[f"{size}_cluster_warm_wall_s"] = (cluster["warm_wall"], "s", 2, None)
            loads += local["load"] + cluster["load"]
    largest = sizes[-1]
    with tempfile.TemporaryDirectory(prefix="baro-workspaces-", dir=_tmp_root()) as tmp:
        made = workspace_strategies(largest, Path(tmp), 3 if quick else 5)
        for name, values in made.items():
            raw[f"{largest}_workspace_{name}_s"] = (values, "s", 3, None)
            if name != "borrowed":
                raw[f"{largest}_workspace_{name}_vs_borrowed"] = (
                    _ratio(values, made["borrowed"]),
                    "x",
                    2,
                    None,
                )
    raw["load_1min"] = (loads, "load", 2, None)
    return raw


def _tmp_root() -> Path:
    """Beside the generated repositories: one file system, so local clones hard-link."""
    synthetic_repo.ROOT.mkdir(parents=True, exist_ok=True)
    return synthetic_repo.ROOT.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=",".join(synthetic_repo.SIZES))
    args = parser.parse_args()
    raw = measure(args.quick, tuple(x for x in args.sizes.split(",") if x))
    print(json.dumps({name: values for name, (values, *_unit) in raw.items()}, indent=2))


if __name__ == "__main__":
    main()
