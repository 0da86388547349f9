"""Benchmark (not a test): how long the conductor takes to enforce a plan's mode.

Plans of 100 stories and of the most a plan may hold (``MAX_PLAN_STORIES``), in shapes
that stress different parts of ``baro_conductor.policy.enforce``:

- ``units``: independent stories, each with a directory of its own (an enumerated goal);
- ``globs``: independent stories whose surfaces are globs under one directory
  (``src/*_17.py``), so no literal prefix tells them apart;
- ``undeclared``: stories without a write surface (each clashes with every other);
- ``chain``: each story depends on the one before;
- ``layered``: a random DAG (two dependencies among the 30 stories before), with every
  tenth story undeclared and the rest writing a file and a docs glob.

Each plan is enforced in parallel mode with the default story cap of 16 (so hundreds of
stories are merged) and with no cap below its size (so every clash is serialized). The
baseline, measured in the same process, is validating the same plan (``validate_plan``,
which every path goes through): the ratio says how much enforcement adds to it.

    .venv/bin/python bench/policy_bench.py [--sizes 100,500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from baro_conductor.policy import enforce
from baro_shared.inputs import MAX_PLAN_STORIES
from baro_shared.plan import validate_plan
from baro_shared.schemas import Caps, Story

SHAPES = ("units", "globs", "undeclared", "chain", "layered")
DEFAULT_CAP = 16  # the conductor's default cap for parallel runs


def plan(shape: str, size: int, variant: int = 0, seed: int = 7) -> list[Story]:
    """A plan of ``size`` stories; each ``variant`` names other paths, so that no cache
    of an earlier measurement answers for it."""
    rng = random.Random(seed)
    src = f"src{variant}"
    stories = []
    for i in range(1, size + 1):
        surface: list[str]
        deps: list[str] = []
        if shape == "units":
            surface = [f"{src}/unit{i}/"]
        elif shape == "globs":
            surface = [f"{src}/*_{i}.py"]
        elif shape == "undeclared":
            surface = []
        elif shape == "chain":
            surface = [f"{src}/step{i}.py"]
            deps = [f"S{i - 1}"] if i > 1 else []
        else:
            surface = [] if i % 10 == 0 else [f"{src}/pkg{i % 7}/m{i}.py", f"docs{variant}/*{i}.md"]
            if i > 10:
                deps = [f"S{j}" for j in rng.sample(range(max(1, i - 30), i), 2)]
        stories.append(
            Story(
                id=f"S{i}",
                title=f"story {i}",
                description=f"do part {i} of the work",
                depends_on=deps,
                write_surface=surface,
                acceptance=[f"part {i} works"],
            )
        )
    return stories


def _timed(work: Callable[[int], object], repeat: int) -> list[float]:
    """Seconds of ``work(variant)`` for ``repeat`` fresh variants (after one to warm up)."""
    work(-1)
    times = []
    for variant in range(repeat):
        started = time.perf_counter()
        work(variant)
        times.append(time.perf_counter() - started)
    return times


def measure(sizes: tuple[int, ...] = (100, MAX_PLAN_STORIES), repeat: int = 5) -> dict:
    """Per shape and size, seconds of each repeat: enforcement with the default story cap
    (``capped``: hundreds of stories merged), with no cap below the plan's size
    (``uncapped``: every clash serialized), and validation alone (``validate``)."""
    return {
        f"{shape}_{size}": _measure_one(shape, size, repeat) for shape in SHAPES for size in sizes
    }


def _measure_one(shape: str, size: int, repeat: int) -> dict[str, list[float]]:
    plans = {v: plan(shape, size, v) for v in range(-1, repeat)}
    capped = Caps(max_stories=DEFAULT_CAP, parallelism=4)
    uncapped = Caps(max_stories=size, parallelism=4)
    return {
        "capped": _timed(lambda v: enforce(plans[v], "parallel", capped, "g"), repeat),
        "uncapped": _timed(lambda v: enforce(plans[v], "parallel", uncapped, "g"), repeat),
        "validate": _timed(lambda v: validate_plan(plans[v]), repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=f"100,{MAX_PLAN_STORIES}")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = tuple(int(x) for x in args.sizes.split(","))
    result = measure(sizes, args.repeat)
    for key, row in result.items():
        cells = "  ".join(
            f"{name} {statistics.median(times) * 1000:8.1f} ms" for name, times in row.items()
        )
        print(f"{key:16} {cells}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
