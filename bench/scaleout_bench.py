"""Benchmark (not a test): stories per minute with 1, 2 and 4 runner processes.

Each runner process runs two agents at once (BARO_RUNNER_SLOTS=2); the agents are I/O-bound
(the scripted agent sleeps, then writes one file), so adding runners adds capacity the way
adding pods does. The workload is the same for every count: several parallel runs of four
independent stories, submitted together. Target: at least 3x the throughput at 4 runners
versus 1.

    .venv/bin/python -m bench.scaleout_bench [--runs 6] [--sleep 2.0] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.cluster import CORE, BenchCluster, make_repo, parallel_request, run_all, wait_ready

SLOTS = 2


def throughput(runners: int, runs: int, sleep_s: float) -> float:
    """Stories per minute for one runner count."""
    with tempfile.TemporaryDirectory(prefix="baro-scaleout-") as tmp:
        root = Path(tmp)
        repos = [make_repo(root / f"r{i}") for i in range(runs)]
        with BenchCluster(root) as cluster:
            for name in CORE:
                cluster.start(name)
            for _ in range(runners):
                cluster.start("agent-runner", runner_slots=str(SLOTS))
            settings = cluster.settings()
            asyncio.run(wait_ready(settings, runners))
            requests = [parallel_request(repo, 4, sleep_s, parallelism=4) for repo in repos]
            seconds = asyncio.run(run_all(settings, requests))
    return 4 * runs / seconds * 60


def measure(
    runs: int = 6, sleep_s: float = 2.0, repeat: int = 1, counts: tuple[int, ...] = (1, 2, 4)
) -> dict[str, Any]:
    per_count: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(repeat):
        for n in counts:
            per_count[n].append(throughput(n, runs, sleep_s))
    result: dict[str, Any] = {}
    for n, values in per_count.items():
        result[f"stories_per_min_{n}_runners"] = {
            "median": round(statistics.median(values), 1),
            "min": round(min(values), 1),
            "max": round(max(values), 1),
            "n": len(values),
            "unit": "stories/min",
        }
    base = statistics.median(per_count[counts[0]])
    top = statistics.median(per_count[counts[-1]])
    result[f"speedup_{counts[-1]}_vs_{counts[0]}"] = {
        "median": round(top / base, 2),
        "min": round(min(per_count[counts[-1]]) / max(per_count[counts[0]]), 2),
        "max": round(max(per_count[counts[-1]]) / min(per_count[counts[0]]), 2),
        "n": repeat,
        "unit": "x",
        "target": ">= 3",
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for name, fig in measure(args.runs, args.sleep, args.repeat).items():
        print(f"{name:<28} {fig['median']:>8} {fig['unit']}  (min {fig['min']}, max {fig['max']})")


if __name__ == "__main__":
    main()
