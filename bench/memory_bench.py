"""Benchmark (not a test): peak resident memory of each service during a 20-story run.

The five services run as separate processes (one runner with four slots); one run of 20
independent stories, each agent sleeping briefly and writing one file. Each process's peak
RSS (VmHWM) is read when the run has delivered.

    .venv/bin/python -m bench.memory_bench [--stories 20] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.cluster import (
    CORE,
    BenchCluster,
    make_repo,
    parallel_request,
    peak_rss_mb,
    run_all,
    wait_ready,
)


def peaks(stories: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="baro-memory-") as tmp:
        root = Path(tmp)
        repo = make_repo(root / "r")
        with BenchCluster(root) as cluster:
            for name in CORE:
                cluster.start(name)
            cluster.start("agent-runner", runner_slots="4")
            settings = cluster.settings()
            asyncio.run(wait_ready(settings, 1))
            asyncio.run(run_all(settings, [parallel_request(repo, stories, 0.5, parallelism=4)]))
            return {name: peak_rss_mb(procs[0].pid) for name, procs in cluster.procs.items()}


def measure(stories: int = 20, repeat: int = 1) -> dict[str, Any]:
    samples: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name, mb in peaks(stories).items():
            samples.setdefault(name, []).append(mb)
    return {
        f"peak_rss_{name}": {
            "median": round(statistics.median(v), 1),
            "min": round(min(v), 1),
            "max": round(max(v), 1),
            "n": len(v),
            "unit": "MB",
        }
        for name, v in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for name, fig in measure(args.stories, args.repeat).items():
        print(f"{name:<24} {fig['median']:>7.1f} MB")


if __name__ == "__main__":
    main()
