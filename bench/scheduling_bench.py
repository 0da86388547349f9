"""Benchmark (not a test): how close the conductor's schedule comes to the best possible one.

Synthetic DAGs (chain, wide fan-out, diamond, random layered) run on the real stack (an
embedded nats-server, the five services in this process, real git) with the scripted
agent sleeping a fixed time per story (1, 1.5 or 2 s) and writing one file. Each story of
the plan states its size (``effort``, its scripted duration), as a plan that estimates
sizes would; ``--no-effort`` runs the same plans without it.

The yardstick is the best achievable makespan: the exact optimum for plans of up to 16
stories (``bench.optimal``: branch and bound, proven), else a lower bound (the interval
bound, at least max(critical path, total work / parallelism)), so ``vs best`` is never
flattering. The span runs from the accepted plan to the last story integrated; the whole
run, submit to finish, is reported beside it. ``eff`` is the span over the plain
max(critical path, work / parallelism) bound, and ``span/id`` the span over the
conductor's own policy (critical path first) run with zero overhead.

The overhead columns say where the time goes, as means per story:

- ``ready->assigned``: the conductor seeing a dependency integrated (or the plan accepted)
  and dispatching the story;
- ``assigned->started``: a runner taking the command, cloning the workspace at the base,
  starting the agent;
- ``agent extra``: the agent's start-to-finish time beyond its scripted sleep (process
  start, commit, bundle, upload);
- ``finished->integrated``: waiting for the merger (one batch of finished stories at a
  time) and merging; ``of which conductor`` is the conductor's part of it (seeing the
  finish, sending the integration command); ``batch`` the stories per merger batch
  (those answered with the same integration head).

The machine's load average is printed with each row: other work on the machine shows up
in every overhead column; so does the disk, and ``file ms`` says what one new file cost in
the run's folder just before it started. A series makes its runs' folders in memory
(``/dev/shm``) where the machine has it, else in the system's temporary folder (``--dir``
chooses): a disk that makes files slowly near recently deleted ones (ext4 without a
journal, as on the machines these figures come from) adds its own spread to every ratio,
which is the disk's, not the schedule's. The runs' folders are removed when the series
ends, not between runs: one run's removal would slow the next on such a disk. The
agent-runner's bytecode is compiled first, as an installed baro has it
(``installed_bytecode``).

    .venv/bin/python -m bench.scheduling_bench [--parallelism N] [--sizes 8,16,32,64]
                                               [--shapes chain,fanout,diamond,layered]
                                               [--scale X] [--repeat N] [--dir FOLDER]
                                               [--no-write]

The full series (every shape and size, parallelism 4, the plans' sizes) replaces the
scheduling figures in bench/results.json and README's table; any other only prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from baro_cli import runflow
from baro_cli.stack import SERVICES
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.gitutil import git_env
from baro_shared.service import Host
from baro_shared.settings import Settings
from baro_shared.start_order import start_ranks
from bench.optimal import interval_bound, list_schedule, optimum

SHAPES = ("chain", "fanout", "diamond", "layered")
MAX_EXACT = 16  # plans up to this size are measured against their proven optimum
DURATIONS = (1.0, 1.5, 2.0)
_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


# --------------------------------------------------------------------------- DAGs


def dag(shape: str, n: int, parallelism: int, seed: int = 7) -> dict[str, list[str]]:
    """Story id -> the ids it depends on, in plan order."""
    ids = [f"S{i:02}" for i in range(1, n + 1)]
    if shape == "chain":
        return {sid: ids[i - 1 : i] for i, sid in enumerate(ids)}
    if shape == "fanout":  # every story fans out from the run's base
        return {sid: [] for sid in ids}
    if shape == "diamond":  # a root, a wide middle, one story joining them all
        middle = ids[1:-1]
        return {ids[0]: [], **{sid: [ids[0]] for sid in middle}, ids[-1]: middle}
    if shape == "layered":
        rng = random.Random(seed)
        deps: dict[str, list[str]] = {}
        previous: list[str] = []
        remaining = list(ids)
        while remaining:
            width = min(len(remaining), rng.randint(max(1, parallelism // 2), 2 * parallelism))
            layer, remaining = remaining[:width], remaining[width:]
            for sid in layer:
                count = min(len(previous), rng.randint(1, 2))
                deps[sid] = sorted(rng.sample(previous, count)) if previous else []
            previous = layer
        return deps
    raise ValueError(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")


def durations(ids: list[str], scale: float = 1.0) -> dict[str, float]:
    return {sid: DURATIONS[i % len(DURATIONS)] * scale for i, sid in enumerate(ids)}


def lower_bound(deps: dict[str, list[str]], work: dict[str, float], parallelism: int) -> float:
    """max(critical path, total work / parallelism)."""
    finish: dict[str, float] = {}
    for sid in deps:  # plan order is a dependency order here
        finish[sid] = max((finish[d] for d in deps[sid]), default=0.0) + work[sid]
    return max(max(finish.values()), sum(work.values()) / parallelism)


def stories_of(deps: dict[str, list[str]], work: dict[str, float] | None = None) -> list[s.Story]:
    return [
        s.Story(
            id=sid,
            title=f"Write out/{sid}.txt",
            depends_on=list(dep),
            write_surface=[f"out/{sid}.txt"],
            effort=work[sid] if work is not None else None,
        )
        for sid, dep in deps.items()
    ]


def ideal_schedule(
    deps: dict[str, list[str]], work: dict[str, float], parallelism: int, effort: bool = True
) -> float:
    """The conductor's own policy with zero overhead: whenever a slot is free, start the
    ready story of the conductor's ranking (``start_order.start_ranks``: the longest
    remaining chain of work first, packed better where the stories' sizes, when the plan
    states them, show a shorter schedule).

    The gap between this and the best makespan is the policy's; the gap between the
    measured span and this is overhead.
    """
    rank = start_ranks(stories_of(deps, work if effort else None), parallelism)
    return list_schedule(deps, work, parallelism, sorted(deps, key=rank.__getitem__))


def best_makespan(
    deps: dict[str, list[str]], work: dict[str, float], parallelism: int
) -> tuple[float, str]:
    """The exact optimum where it is proven (small plans), else the interval lower bound."""
    if len(deps) <= MAX_EXACT:
        found = optimum(deps, work, parallelism)
        if found.proven:
            return found.makespan, "optimum"
    return interval_bound(deps, work, parallelism), "bound"


# --------------------------------------------------------------------------- one run


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, env=git_env(_IDENTITY), check=True
    )
    return done.stdout.decode().strip()


def _repo(root: Path) -> tuple[Path, str]:
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "README.md").write_text("# scheduling bench\n")
    for i in range(20):
        (repo / "src").mkdir(exist_ok=True)
        (repo / "src" / f"m{i}.py").write_text(f"X{i} = {i}\n" * 30)
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "initial")
    return repo, _git(repo, "rev-parse", "HEAD")


def _request(
    repo: Path,
    head: str,
    deps: dict[str, list[str]],
    work: dict[str, float],
    parallelism: int,
    effort: bool,
) -> s.RunSubmitted:
    stories = stories_of(deps, work if effort else None)
    script = {
        "stories": [
            {
                "match": {"id": sid},
                "steps": [
                    {"sleep": work[sid]},
                    {"write": f"out/{sid}.txt", "content": f"{sid}\n"},
                    {"usage": {"input": 10, "output": 1}},
                ],
            }
            for sid in deps
        ]
    }
    return s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal=f"scheduling bench: {len(stories)} stories",
        repo=s.RepoSource(kind="path", location=str(repo), commit=head),
        mode_request="parallel",
        backend="scripted",
        agent_script=json.dumps(script),
        limits=s.Limits(
            max_stories=len(stories),
            parallelism=parallelism,
            story_timeout_s=600,
            stall_timeout_s=600,
        ),
        plan=stories,
    )


async def _run(request: s.RunSubmitted, settings: Settings) -> list[s.Event]:
    host = Host(SERVICES, settings, serve_http=False, handle_signals=False)
    task = asyncio.create_task(host.run())
    await asyncio.wait_for(host.started.wait(), 30)
    bus = await Bus.open(settings, "bench", ensure=False)
    try:
        progress = runflow.Progress(open("/dev/null", "w"), quiet=True)  # noqa: SIM115
        await runflow.submit(bus, request)
        report = await runflow.follow(bus, request, progress, None)
        if report.status != "delivered":
            raise RuntimeError(f"run {request.run_id} ended {report.status}: {report.reason}")
        return [ev async for ev in bus.run_events(request.run_id, follow=False, idle_timeout=2)]
    finally:
        await bus.close()
        host.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


@contextlib.contextmanager
def _stack(root: Path, parallelism: int) -> Iterator[Settings]:
    server = EmbeddedNats(store_dir=root / "nats").start()
    try:
        yield Settings(
            nats_url=server.url,
            cache_dir=root / "cache",
            state_dir=root / "state",
            runner_slots=max(4, parallelism),
            max_running_agents=max(16, parallelism),
            http_port=0,
            log_level="WARNING",
            # the runs' stories are the scripted agent's: the runner's launchers preload it
            # from the start, as they do after a first scripted story on any stack
            backend="scripted",
        )
    finally:
        server.stop()


# --------------------------------------------------------------------------- figures


def _breakdown(
    events: list[s.Event], deps: dict[str, list[str]], work: dict[str, float]
) -> dict[str, float]:
    accepted = next(ev.ts for ev in events if isinstance(ev, s.PlanAccepted))
    assigned = {
        ev.story_id: ev.ts
        for ev in events
        if isinstance(ev, s.StoryUpdated) and ev.status == "assigned"
    }
    started = {ev.story_id: ev.ts for ev in events if isinstance(ev, s.StoryStarted)}
    finished = {ev.story_id: ev.ts for ev in events if isinstance(ev, s.StoryFinished)}
    seen_finished = {
        ev.story_id: ev.ts
        for ev in events
        if isinstance(ev, s.StoryUpdated) and ev.status == "finished"
    }
    integrated = {ev.story_id: ev.ts for ev in events if isinstance(ev, s.StoryIntegrated)}
    heads = [
        ev.integration_head or ev.integration_commit
        for ev in events
        if isinstance(ev, s.StoryIntegrated)
    ]

    def ready(sid: str) -> float:
        return max((integrated[d] for d in deps[sid]), default=accepted)

    # a story kept waiting by the parallelism cap is not conductor latency: measure only
    # stories dispatched in the same transition that made them ready
    waits = [assigned[sid] - ready(sid) for sid in deps]
    prompt = [w for w in waits if w < 0.5]
    return {
        "ready_to_assigned": statistics.fmean(prompt) if prompt else 0.0,
        "assigned_to_started": statistics.fmean(started[i] - assigned[i] for i in deps),
        "agent_extra": statistics.fmean(finished[i] - started[i] - work[i] for i in deps),
        "finished_to_integrated": statistics.fmean(integrated[i] - finished[i] for i in deps),
        "conductor_on_finish": statistics.fmean(seen_finished[i] - finished[i] for i in deps),
        "per_batch": len(heads) / len(set(heads)),
    }


@contextlib.contextmanager
def _run_folder(folder: Path | None, remove: bool) -> Iterator[Path]:
    """A folder of its own for one run, in ``runs_folder(folder)``; removed afterwards
    when ``remove``."""
    root = Path(tempfile.mkdtemp(prefix="baro-sched-bench-", dir=runs_folder(folder)))
    try:
        yield root
    finally:
        if remove:
            shutil.rmtree(root, ignore_errors=True)


def runs_folder(chosen: Path | None) -> Path | None:
    """Where runs make their folders: ``chosen``, else in memory where the machine has it
    (see the module's docstring), else None: the system's temporary folder."""
    if chosen is not None:
        return chosen
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def new_file_cost(folder: Path, files: int = 100) -> float:
    """Milliseconds to make one small file in ``folder`` (made for it, left for the run's
    folder to take away). Every story makes dozens (its clone's ``.git``, git's lock
    files, the object store's and nats-server's files): on ext4 without a journal, a
    folder near many files deleted in the last minutes makes each new one cost up to
    twenty times what it costs on a quiet disk (the allocator skips recently freed
    inodes), and that shows in every column."""
    folder.mkdir()
    began = time.perf_counter()
    for i in range(files):
        (folder / f"f{i}").write_bytes(b"x")
    return (time.perf_counter() - began) / files * 1000


def installed_bytecode() -> None:
    """Compile the agent-runner's modules (the scripted agent among them) where their
    bytecode is missing, as an installed baro has it (a wheel; the image's
    ``UV_COMPILE_BYTECODE``): a source checkout run with ``PYTHONDONTWRITEBYTECODE=1``
    would otherwise compile the scripted agent afresh at every story's start, a cost of
    the checkout, not of baro."""
    import compileall

    import baro_runner

    compileall.compile_dir(Path(baro_runner.__file__).parent, quiet=1)


def measure(
    shape: str,
    stories: int,
    parallelism: int = 4,
    seed: int = 7,
    scale: float = 1.0,
    effort: bool = True,
    folder: Path | None = None,
    remove: bool = True,
) -> dict[str, Any]:
    """Run one synthetic DAG end to end and return its schedule figures.

    ``scale`` multiplies the story durations (1, 1.5, 2 s): a fixed cost per story weighs
    less on longer stories. ``effort``: the plan states each story's size.
    """
    installed_bytecode()
    deps = dag(shape, stories, parallelism, seed)
    work = durations(list(deps), scale)
    bound = lower_bound(deps, work, parallelism)
    best, best_kind = best_makespan(deps, work, parallelism)
    ideal = ideal_schedule(deps, work, parallelism, effort)
    with _run_folder(folder, remove) as root:
        new_file_ms = new_file_cost(root / "probe")
        repo, head = _repo(root)
        with _stack(root, parallelism) as settings:
            request = _request(repo, head, deps, work, parallelism, effort)
            began = time.perf_counter()
            events = asyncio.run(_run(request, settings))
            elapsed = time.perf_counter() - began
    accepted = next(ev.ts for ev in events if isinstance(ev, s.PlanAccepted))
    last_integrated = max(ev.ts for ev in events if isinstance(ev, s.StoryIntegrated))
    finished = next(ev for ev in events if isinstance(ev, s.RunFinished))
    span = last_integrated - accepted
    return {
        "shape": shape,
        "stories": stories,
        "parallelism": parallelism,
        "work_s": round(sum(work.values()), 2),
        "bound_s": round(bound, 2),
        "best_s": round(best, 2),
        "best_kind": best_kind,
        "ideal_s": round(ideal, 2),
        "span_s": round(span, 2),
        "vs_best": round(span / best, 3),
        "efficiency": round(span / bound, 3),
        "overhead": round(span / ideal, 3),
        "run_s": round(finished.totals.wall_s, 2),
        "client_s": round(elapsed, 2),
        "new_file_ms": round(new_file_ms, 3),
        **{k: round(v, 3) for k, v in _breakdown(events, deps, work).items()},
    }


HEADER = (
    f"{'shape':<8} {'n':>3} {'work':>6} {'best':>6} {'kind':>7} {'ideal':>6} {'span':>6} "
    f"{'vs best':>7} {'eff':>6} {'span/id':>7} | {'rdy>asg':>7} {'asg>st':>7} {'agent+':>7} "
    f"{'fin>int':>7} {'(cond)':>7} {'batch':>5} | {'load':>5} {'file ms':>7}"
)


def row(r: dict[str, Any]) -> str:
    return (
        f"{r['shape']:<8} {r['stories']:>3} {r['work_s']:>6.1f} {r['best_s']:>6.2f} "
        f"{r['best_kind']:>7} {r['ideal_s']:>6.2f} {r['span_s']:>6.2f} {r['vs_best']:>7.3f} "
        f"{r['efficiency']:>6.3f} {r['overhead']:>7.3f} | {r['ready_to_assigned']:>7.3f} "
        f"{r['assigned_to_started']:>7.3f} {r['agent_extra']:>7.3f} "
        f"{r['finished_to_integrated']:>7.3f} {r['conductor_on_finish']:>7.3f} "
        f"{r['per_batch']:>5.2f} | "
        f"{r['load']:>5.2f} {r['new_file_ms']:>7.3f}"
    )


def run_all(
    shapes: list[str],
    sizes: list[int],
    *,
    parallelism: int = 4,
    scale: float = 1.0,
    effort: bool = True,
    repeat: int = 1,
    echo: bool = True,
    folder: Path | None = None,
) -> list[dict[str, Any]]:
    """Every shape at every size, ``repeat`` times (a long chain only up to 16 stories: its
    ratio is the same at 8 and at 64), printing a row per run; the runs' folders in
    ``runs_folder(folder)``."""
    if echo:
        print(HEADER)
        print("-" * len(HEADER), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(
        prefix="baro-sched-series-", dir=runs_folder(folder)
    ) as series:
        for shape in shapes:
            for n in sizes:
                if shape == "chain" and n > 16:
                    continue
                for _ in range(repeat):
                    r = measure(
                        shape, n, parallelism, scale=scale, effort=effort,
                        folder=Path(series), remove=False,
                    )  # fmt: skip
                    r["load"] = round(os.getloadavg()[0], 2)
                    rows.append(r)
                    if echo:
                        print(row(r), flush=True)
    return rows


def figures(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rows as benchmark figures: span over the best makespan (target 1.10) and over
    the policy's own zero-overhead schedule, per shape and size."""
    from bench.__main__ import figure

    out: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys((r["shape"], r["stories"]) for r in rows):
        mine = [r for r in rows if (r["shape"], r["stories"]) == key]
        name = f"{key[0]}_{key[1]}"
        kind = mine[0]["best_kind"]
        target = f"<= 1.10 (best: {kind} {mine[0]['best_s']} s)"
        out[f"{name}_vs_best"] = figure([r["vs_best"] for r in mine], "x", 3, target)
        out[f"{name}_vs_ideal"] = figure([r["overhead"] for r in mine], "x", 3)
    # what a new file cost where the runs were made: a disk that makes files slowly
    # (see new_file_cost) shows in every ratio above
    out["new_file_ms"] = figure([r["new_file_ms"] for r in rows], "ms", 3)
    return out


SIZES = (8, 16, 32, 64)


def not_recorded(
    shapes: list[str], sizes: list[int], parallelism: int, scale: float, effort: bool
) -> str | None:
    """Why a series is not written to bench/results.json and README, which hold the full
    one (every shape and size, as ``make bench`` runs them): None for the full series."""
    if sorted(shapes) != sorted(SHAPES) or sorted(sizes) != sorted(SIZES):
        return "a series of some shapes or sizes would replace the full one"
    if (parallelism, scale, effort) != (4, 1.0, True):
        return "a series with another parallelism, scale or plan would replace the measured one"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES))
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply story durations")
    parser.add_argument("--repeat", type=int, default=1, help="runs per shape and size")
    parser.add_argument("--no-effort", action="store_true", help="plans without the stories' sizes")
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="do not update bench/results.json and README (a partial series never does)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help="where each run's repository, server and workspaces are made (default: /dev/shm "
        "where it exists, else the system's temporary folder); the 'file ms' column says what "
        "a new file costs there",
    )
    args = parser.parse_args()
    shapes, sizes = args.shapes.split(","), [int(x) for x in args.sizes.split(",")]
    rows = run_all(
        shapes,
        sizes,
        parallelism=args.parallelism,
        scale=args.scale,
        effort=not args.no_effort,
        repeat=args.repeat,
        folder=args.dir,
    )
    if args.no_write:
        return
    why = not_recorded(shapes, sizes, args.parallelism, args.scale, not args.no_effort)
    if why is not None:
        print(f"not written to bench/results.json and README: {why}")
        return
    from bench.__main__ import record_scenario

    record_scenario("scheduling", figures(rows))


if __name__ == "__main__":
    main()
