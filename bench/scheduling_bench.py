"""Benchmark (not a test): how close the conductor's schedule comes to the best possible one.

Synthetic DAGs (chain, wide fan-out, diamond, random layered) run on the real stack (an
embedded nats-server, the five services in this process, real git) with the scripted
agent sleeping a fixed time per story (1, 1.5 or 2 s) and writing one file. The lower
bound for a DAG is max(critical path, total work / parallelism): no scheduler with zero
overhead could finish sooner. Efficiency is the run's schedule span divided by that
bound (1.00 is perfect), where the span runs from the accepted plan to the last story
integrated; the whole run, submit to finish, is reported beside it.

The overhead columns say where the time goes, as means per story:

- ``ready->assigned``: the conductor seeing a dependency integrated (or the plan accepted)
  and dispatching the story;
- ``assigned->started``: a runner taking the command, cloning the workspace at the base,
  starting the agent;
- ``agent extra``: the agent's start-to-finish time beyond its scripted sleep (process
  start, commit, bundle, upload);
- ``finished->integrated``: waiting for the merger (one integration at a time) and merging;
  ``of which conductor`` is the conductor's part of it (seeing the finish, sending the
  integration command).

The machine's load average is printed with each row: other work on the machine shows up
in every overhead column.

    .venv/bin/python bench/scheduling_bench.py [--parallelism N] [--sizes 8,16,32,64]
                                               [--shapes chain,fanout,diamond,layered]
                                               [--scale X]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
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

SHAPES = ("chain", "fanout", "diamond", "layered")
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


def ideal_schedule(deps: dict[str, list[str]], work: dict[str, float], parallelism: int) -> float:
    """The conductor's own policy with zero overhead: whenever a slot is free, start the
    first ready story in plan order; a story is ready once its dependencies are done.

    The gap between this and the lower bound is the policy's (and the DAG's) share; the
    gap between the measured span and this is overhead.
    """
    done: dict[str, float] = {}
    running: list[tuple[float, str]] = []
    clock = 0.0
    pending = list(deps)
    while pending or running:
        ready = [sid for sid in pending if all(d in done and done[d] <= clock for d in deps[sid])]
        while ready and len(running) < parallelism:
            sid = ready.pop(0)
            pending.remove(sid)
            running.append((clock + work[sid], sid))
        running.sort()
        clock, sid = running.pop(0)
        done[sid] = clock
    return clock


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
    repo: Path, head: str, deps: dict[str, list[str]], work: dict[str, float], parallelism: int
) -> s.RunSubmitted:
    stories = [
        s.Story(
            id=sid,
            title=f"Write out/{sid}.txt",
            depends_on=list(dep),
            write_surface=[f"out/{sid}.txt"],
        )
        for sid, dep in deps.items()
    ]
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
    }


def measure(
    shape: str, stories: int, parallelism: int = 4, seed: int = 7, scale: float = 1.0
) -> dict[str, Any]:
    """Run one synthetic DAG end to end and return its schedule figures.

    ``scale`` multiplies the story durations (1, 1.5, 2 s): a fixed cost per story weighs
    less on longer stories.
    """
    deps = dag(shape, stories, parallelism, seed)
    work = durations(list(deps), scale)
    bound = lower_bound(deps, work, parallelism)
    ideal = ideal_schedule(deps, work, parallelism)
    with tempfile.TemporaryDirectory(prefix="baro-sched-bench-") as tmp:
        root = Path(tmp)
        repo, head = _repo(root)
        with _stack(root, parallelism) as settings:
            request = _request(repo, head, deps, work, parallelism)
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
        "ideal_s": round(ideal, 2),
        "span_s": round(span, 2),
        "efficiency": round(span / bound, 3),
        "overhead": round(span / ideal, 3),
        "run_s": round(finished.totals.wall_s, 2),
        "client_s": round(elapsed, 2),
        **{k: round(v, 3) for k, v in _breakdown(events, deps, work).items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--sizes", default="8,16,32,64")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply story durations")
    args = parser.parse_args()
    header = (
        f"{'shape':<8} {'n':>3} {'par':>3} {'work':>6} {'bound':>6} {'ideal':>6} {'span':>6} "
        f"{'eff':>6} {'span/id':>7} {'run':>6} | {'rdy>asg':>7} {'asg>st':>7} {'agent+':>7} "
        f"{'fin>int':>7} {'(cond)':>7} | {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for shape in args.shapes.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            r = measure(shape, n, args.parallelism, scale=args.scale)
            print(
                f"{r['shape']:<8} {r['stories']:>3} {r['parallelism']:>3} {r['work_s']:>6.1f} "
                f"{r['bound_s']:>6.1f} {r['ideal_s']:>6.1f} {r['span_s']:>6.1f} "
                f"{r['efficiency']:>6.3f} {r['overhead']:>7.3f} {r['run_s']:>6.1f} | "
                f"{r['ready_to_assigned']:>7.3f} "
                f"{r['assigned_to_started']:>7.3f} {r['agent_extra']:>7.3f} "
                f"{r['finished_to_integrated']:>7.3f} {r['conductor_on_finish']:>7.3f} | "
                f"{os.getloadavg()[0]:>5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
