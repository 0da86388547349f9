"""Benchmark (not a test): baro on a three-server JetStream cluster (``make bench-cluster``).

The world of ``tests/cluster``: three clustered nats-servers with everything at R3, the
four core services, and agent runners each on a disk of its own behind the fence, so every
source and result goes through the object store.

- ``failover``: a two-story run (3 s stories) without a fault, then one per fault of
  ``tests/cluster/chaos.py`` (kill -9 of the meta leader, of the leaders of BARO_CMD,
  BARO_EVT and KV_baro_runs, of the member leading the most, each restarted after 2 s; a
  member paused 10 s), the fault hitting once the first story runs. Reported: the
  seconds each fault adds to the run's wall time.
- ``load``: runs of four independent stories (scripted agents sleeping 1-3 s) submitted
  together, over several runner processes; once without a fault, once with the member
  leading the most groups killed (and left down) when half the stories have started.
  Reported: stories per minute, p50/p99 submit-to-first-agent (RunSubmitted to the run's
  first StoryStarted), p50/p99 story dispatch latency (PlanAccepted, when every story of
  the run is dispatched, to that story's first StoryStarted: queueing for a free runner
  included), peak RSS per process, and the KEDA check: every second the lag KEDA's
  nats-jetstream scaler computes (num_pending + num_ack_pending of the agent-runner
  consumer from ``/jsz`` of the consumer's leader) against the consumer's state from the
  JetStream API and against baro's own count of dispatched, unfinished stories.

The issue's shape is 50 runs x 4 stories over 8 runners; on a 2-core machine the default
is scaled down to 12 runs x 4 stories over 4 runners (2 slots each), same shape.

    .venv/bin/python -m bench.cluster_bench [--runs 12] [--runners 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.embedded import NatsCluster
from bench.__main__ import figure
from bench.cluster import make_repo, peak_rss_mb, wait_ready
from tests.cluster.chaos import FAULTS, consumer_lag, inject, target_of
from tests.cluster.conftest import (
    REPLICAS,
    ClusterWorld,
    bundle_request,
    fence_works,
    parallel_run,
    poll,
)
from tests.faults.conftest import running, service_env

SLOTS = 2
SLEEPS = (1.0, 2.0, 3.0, 2.0)  # the four stories of a load run: 1-3 s, 2 s on average
ACTIVE = ("assigned", "running")  # a story whose RunStory is out and not yet answered


@contextlib.contextmanager
def world(root: Path, runners: int) -> Iterator[ClusterWorld]:
    nats = NatsCluster(root / "nats", size=3).start()
    env = service_env(
        nats.url,
        root,
        replicas=str(REPLICAS),
        runner_ack_wait_s="10",
        runner_slots=str(SLOTS),
        log_level="WARNING",
        max_running_agents="64",
    )
    with running(ClusterWorld(nats, root, env, fenced=fence_works())) as w:
        w.start_core()
        for _ in range(runners):
            w.start("agent-runner")
        asyncio.run(wait_ready(w.settings(), runners))
        yield w  # type: ignore[misc]


async def history(bus: Bus, run_id: str) -> list[s.Event]:
    return [e async for e in bus.run_events(run_id, follow=False, idle_timeout=5)]


async def until_final(bus: Bus, run_ids: list[str], timeout: float) -> None:
    pending = set(run_ids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            rec = await poll(bus, run_id)
            if rec is not None and rec.state in s.TERMINAL_RUN_STATES:
                if rec.state != "delivered":
                    raise RuntimeError(f"run {run_id} ended {rec.state}: {rec.reason}")
                pending.discard(run_id)
        await asyncio.sleep(0.2)
    if pending:
        raise RuntimeError(f"{len(pending)} runs did not finish in {timeout:.0f} s")


async def until_running(bus: Bus, run_id: str) -> None:
    for _ in range(3000):
        rec = await poll(bus, run_id)
        if rec is not None and any(x.status == "running" for x in rec.stories):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no story of run {run_id} started")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- failover


def failover(baselines: int = 2) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="baro-failover-") as tmp, world(Path(tmp), 2) as w:
        return asyncio.run(_failover(w, baselines))


async def _failover(w: ClusterWorld, baselines: int) -> dict[str, Any]:
    bus = await Bus.open(w.settings(), "bench-failover", ensure=False)
    try:
        repo = make_repo(w.root / "user")

        async def one(fault: str | None) -> tuple[float, float, float | None]:
            """The run's wall time, its submit-to-first-agent time, and how long the
            fault's member took to lose its leaderships."""
            spec = parallel_run({"S1": 3.0, "S2": 3.0})
            script = spec.pop("script")
            req = await bundle_request(bus, repo, "two stories", script, **spec)  # type: ignore[arg-type]
            await bus.publish(req, f"{req.run_id}.submitted")
            leader_back = None
            if fault is not None:
                await until_running(bus, req.run_id)
                leader_back = (await inject(w.nats, fault)).leader_back_s
            await until_final(bus, [req.run_id], 300)
            events = await history(bus, req.run_id)
            end = next(e.ts for e in events if isinstance(e, s.RunFinished))
            first = min(e.ts for e in events if isinstance(e, s.StoryStarted))
            return end - req.ts, first - req.ts, leader_back

        quiet = [await one(None) for _ in range(baselines)]
        base = [took for took, _, _ in quiet]
        out: dict[str, Any] = {
            "run_without_fault_s": figure(base, "s", 2),
            "first_agent_s": figure([first for _, first, _ in quiet], "s", 2),
        }
        for fault in FAULTS:
            took, _, back = await one(fault)
            name = fault.lower().removeprefix("kv_").removeprefix("baro_")
            out[f"added_by_{name}_s"] = figure([took - statistics.median(base)], "s", 2)
            if back is not None:
                out[f"new_leader_after_{name}_s"] = figure([back], "s", 2)
        return out
    finally:
        await bus.close()


# --------------------------------------------------------------------------- load


@dataclass
class LagSample:
    keda: int  # num_pending + num_ack_pending from /jsz of the consumer's leader
    api: int  # the same from the JetStream API
    baro: int  # stories dispatched and not yet answered, from the run records
    followers: list[int] = field(default_factory=list)  # what /jsz of the other members says
    steady: bool = False


async def api_lag(bus: Bus) -> int | None:
    try:
        info = await bus.js.consumer_info(t.CMD_STREAM, t.RUNNER_CONSUMER)
    except Exception:
        return None
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


async def sample_lag(bus: Bus, w: ClusterWorld, run_ids: list[str]) -> LagSample | None:
    """One sample of the three counts; ``steady`` when the consumer did not move while it
    was taken (the API read the same before and after), so they can be compared exactly."""
    before = await api_lag(bus)
    keda, followers = None, []
    for node in w.nats.nodes:
        if not node.running():
            continue
        with contextlib.suppress(OSError, ValueError):
            got = await asyncio.to_thread(consumer_lag, node)
            if got is not None and got[0]:
                keda = got[1]
            elif got is not None:
                followers.append(got[1])
    active = 0
    for run_id in run_ids:
        rec = await poll(bus, run_id)
        active += sum(1 for x in rec.stories if x.status in ACTIVE) if rec else 0
    after = await api_lag(bus)
    if keda is None or before is None:
        return None
    return LagSample(keda, before, active, followers, steady=before == after)


def load(runs: int, runners: int, kill: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="baro-load-") as tmp, world(Path(tmp), runners) as w:
        out = asyncio.run(_load(w, runs, kill))
        for name in ("conductor", "intake", "planner", "merger", "agent-runner"):
            peaks = [p.peak_rss_mb() for p in w.processes if p.name == name]
            out[f"peak_rss_{name}"] = figure([max(peaks)], "MB", 1)
        out["peak_rss_nats_server"] = figure(
            [max(peak_rss_mb(n.pid) for n in w.nats.nodes if n.pid)], "MB", 1
        )
        return out


async def _load(w: ClusterWorld, runs: int, kill: bool) -> dict[str, Any]:
    bus = await Bus.open(w.settings(), "bench-load", ensure=False)
    try:
        repo = make_repo(w.root / "user")
        requests = []
        for i in range(runs):
            spec = parallel_run({f"S{j}": SLEEPS[(i + j) % len(SLEEPS)] for j in range(4)})
            script = spec.pop("script")
            requests.append(await bundle_request(bus, repo, f"load {i}", script, **spec))  # type: ignore[arg-type]
        run_ids = [r.run_id for r in requests]
        samples: list[LagSample] = []
        stop = asyncio.Event()

        async def sampler() -> None:
            while not stop.is_set():
                got = await sample_lag(bus, w, run_ids)
                if got is not None:
                    samples.append(got)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

        sampling = asyncio.create_task(sampler())
        for i, request in enumerate(requests):
            # stamped when submitted: the uploads before are the client's business
            requests[i] = msgspec.structs.replace(request, ts=s.now())
            await bus.publish(requests[i], f"{request.run_id}.submitted")
        if kill:
            while True:
                recs = [await poll(bus, r) for r in run_ids]
                begun = sum(1 for r in recs if r for x in r.stories if x.started_at)
                if begun >= runs * 2:
                    break
                await asyncio.sleep(0.2)
            victim = w.nats.node(await asyncio.to_thread(target_of, w.nats, "most"))
            await asyncio.to_thread(victim.kill)
        await until_final(bus, run_ids, 900)
        stop.set()
        await sampling
        first_agent, dispatch, ends = [], [], []
        for request in requests:
            events = await history(bus, request.run_id)
            accepted = next(e.ts for e in events if isinstance(e, s.PlanAccepted))
            starts: dict[str, float] = {}
            for e in events:
                if isinstance(e, s.StoryStarted):
                    starts.setdefault(e.story_id, e.ts)
            first_agent.append(min(starts.values()) - request.ts)
            dispatch += [ts - accepted for ts in starts.values()]
            ends.append(next(e.ts for e in events if isinstance(e, s.RunFinished)))
        span = max(ends) - min(r.ts for r in requests)
        out: dict[str, Any] = {
            "stories_per_min": figure([4 * runs / span * 60], "stories/min", 1),
            "first_agent_p50_s": figure([quantile(first_agent, 0.5)], "s", 2),
            "first_agent_p99_s": figure([quantile(first_agent, 0.99)], "s", 2),
            "dispatch_p50_s": figure([quantile(dispatch, 0.5)], "s", 2),
            "dispatch_p99_s": figure([quantile(dispatch, 0.99)], "s", 2),
        }
        steady = [x for x in samples if x.steady]
        if samples:
            out["keda_lag_max"] = figure([max(x.keda for x in samples)], "stories", 0)
            out["keda_lag_samples"] = figure([len(samples)], "samples", 0)
            out["keda_lag_steady_samples"] = figure([len(steady)], "samples", 0)
        if steady:
            out["keda_vs_api_max_diff"] = figure(
                [max(abs(x.keda - x.api) for x in steady)], "stories", 0
            )
            out["keda_vs_baro_max_diff"] = figure(
                [max(abs(x.keda - x.baro) for x in steady)], "stories", 0
            )
        if samples:
            followers = [f for x in samples for f in x.followers]
            if followers:
                out["follower_jsz_lag_max"] = figure([max(followers)], "stories", 0)
        return out
    finally:
        await bus.close()


def measure(runs: int = 12, runners: int = 4) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update({f"failover_{k}": v for k, v in failover().items()})
    out.update({f"load_{k}": v for k, v in load(runs, runners, kill=False).items()})
    out.update({f"load_killed_{k}": v for k, v in load(runs, runners, kill=True).items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--only", choices=("failover", "load"), default=None)
    args = parser.parse_args()
    if args.only == "failover":
        result = failover()
    elif args.only == "load":
        result = load(args.runs, args.runners, kill=False)
    else:
        result = measure(args.runs, args.runners)
    for name, f in result.items():
        print(f"{name:<40} {f['median']:>9} {f['unit']}")


if __name__ == "__main__":
    main()
