"""Benchmark (not a test): what a focused run costs on top of the agent it runs.

The whole pipeline (submit, intake, plan, workspace, agent, integration, delivery) runs a
zero-work scripted agent (it writes one small file) on a warm stack: an embedded
nats-server and the five services in this process, started once and warmed with one run.
Beside it, in the same process, the same scripted agent runs directly in a fresh clone of
the same repository, followed by the commit a user would make. The difference is baro's
overhead; the time from submit to the agent process starting is reported too, and what the
agent sandbox adds (the same direct run inside it).

    .venv/bin/python -m bench.overhead_bench [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from baro_cli import runflow
from baro_shared import schemas as s
from baro_shared.backends import agent_env, agent_fence, scripted_binary
from baro_shared.bus import Bus
from baro_shared.gitutil import BARO_IDENTITY, git_env
from baro_shared.settings import Settings
from bench.__main__ import figure
from bench.cluster import local_stack, timed_run

SCRIPT = {"default": {"steps": [{"write": "bench.txt", "content": "x\n"}, {"usage": {}}]}}


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=True, env=git_env(BARO_IDENTITY)
    )
    return out.stdout.decode().strip()


def _repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "--quiet", "--initial-branch=main")
    for i in range(50):
        (repo / f"module_{i}.py").write_text(f"VALUE_{i} = {i}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "bench repository")
    return repo


def direct_agent_seconds(
    repo: Path, settings: Settings, work: Path, *, fenced: bool = False
) -> float:
    """The agent alone: a clone exists; run it there (inside the agent sandbox when
    ``fenced``) and commit what it changed."""
    clone = work / f"clone-{time.monotonic_ns()}"
    _git(work, "clone", "--quiet", str(repo), str(clone))
    binary = scripted_binary(settings)
    assert binary is not None
    env = {
        **agent_env(clone, workdir=clone),
        "BARO_AGENT_SCRIPT": json.dumps(SCRIPT),
        "BARO_STORY_ID": "S1",
    }
    argv = [binary, "-p", "write bench.txt", "--output-format", "stream-json", "--verbose"]
    fence = agent_fence(settings, keep=clone) if fenced else None
    started = time.perf_counter()
    subprocess.run(
        fence.command(argv) if fence is not None else argv,
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    _git(clone, "add", "-A")
    _git(clone, "commit", "--quiet", "-m", "agent change")
    return time.perf_counter() - started


async def _pipeline(bus: Bus, repo: Path, n: int) -> tuple[float, float]:
    request = s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal=f"write bench.txt (run {n})",
        repo=s.RepoSource(kind="path", location=str(repo), commit=_git(repo, "rev-parse", "HEAD")),
        mode_request="auto",
        backend="scripted",
        agent_script=json.dumps(SCRIPT),
        limits=s.Limits(story_timeout_s=120, stall_timeout_s=60),
    )
    return await timed_run(bus, request)


async def _measure(repeat: int, root: Path) -> dict[str, list[float]]:
    repo = _repo(root)
    samples: dict[str, list[float]] = {
        "pipeline_s": [],
        "agent_direct_s": [],
        "overhead_s": [],
        "first_agent_s": [],
        "agent_fenced_s": [],
        "sandbox_s": [],
    }
    async with local_stack(root) as (settings, bus):
        await _pipeline(bus, repo, 0)  # warm the stack
        direct_agent_seconds(repo, settings, root)
        for n in range(1, repeat + 1):
            pipeline, first_agent = await _pipeline(bus, repo, n)
            direct = await asyncio.to_thread(direct_agent_seconds, repo, settings, root)
            samples["pipeline_s"].append(pipeline)
            samples["agent_direct_s"].append(direct)
            samples["overhead_s"].append(pipeline - direct)
            samples["first_agent_s"].append(first_agent)
            fenced = await asyncio.to_thread(
                direct_agent_seconds, repo, settings, root, fenced=True
            )
            samples["agent_fenced_s"].append(fenced)
            samples["sandbox_s"].append(fenced - direct)
    return samples


def measure(repeat: int = 7) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="baro-overhead-bench-") as tmp:
        samples = asyncio.run(_measure(repeat, Path(tmp)))
    return {name: figure(values, "s", 4) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for name, fig in measure(args.repeat).items():
        print(
            f"{name:<16} median {fig['median']:.3f} s  (min {fig['min']:.3f}, max {fig['max']:.3f}, n={fig['n']})"
        )


if __name__ == "__main__":
    main()
