"""Benchmark (not a test): what the review loop adds to a story that passes it.

The same focused run (one story with acceptance criteria, a scripted agent that writes one
small file) on a warm stack (an embedded nats-server and the five services in this
process), alternately without the loop (review off, no checks) and with it (a story gate
of one configured check, the critic asked and approving). The difference, minus the
checks' own run time, is what the loop costs per story: the gate's bookkeeping, the diff,
the critic's question (a scripted one-shot CLI process) and its events. Tokens: what baro
counted into the story's totals beyond the run without the loop (``added_tokens_per_story``:
with the scripted backend, the usage its scripted critic reports, the same for every
question), and what the critic's question would cost a real model, estimated from its
characters (about four to a token for English and code).

    .venv/bin/python -m bench.review_bench [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from baro_cli import runflow
from baro_planner.critic import critic_prompt
from baro_shared import schemas as s
from baro_shared.bus import Bus
from bench.__main__ import figure
from bench.cluster import local_stack
from bench.overhead_bench import _git, _repo

STORY = s.Story(
    id="S1", title="Write bench.txt", write_surface=["bench.txt"], acceptance=["bench.txt exists"]
)
APPROVE = json.dumps({"verdict": "approve", "reasons": []})
SCRIPT = {
    "stories": [
        {"match": {"id": "baro-critic-S1"}, "steps": [{"text": APPROVE}]},
        {"steps": [{"write": "bench.txt", "content": "x\n"}]},
    ]
}
GATE = '[verify]\nstory = ["true"]\ndetect = false\n'
NO_CHECKS = "[verify]\ndetect = false\n"


def _config(repo: Path, text: str) -> str:
    (repo / ".baro.toml").write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "bench config")
    return _git(repo, "rev-parse", "HEAD")


async def _run(bus: Bus, repo: Path, commit: str, review: bool) -> tuple[float, float, str, int]:
    """One run: its wall-clock, its checks' own seconds, the critic's diff, and the
    story's tokens (input, cached ones included, and output, as baro counted them)."""
    request = s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal="write bench.txt",
        repo=s.RepoSource(kind="path", location=str(repo), commit=commit),
        mode_request="focused",
        backend="scripted",
        agent_script=json.dumps(SCRIPT),
        plan=[STORY],
        review=review,
        limits=s.Limits(story_timeout_s=120, stall_timeout_s=60),
    )
    progress = runflow.Progress(open(os.devnull, "w"), quiet=True)  # noqa: SIM115
    started = time.perf_counter()
    await runflow.submit(bus, request)
    report = await runflow.follow(bus, request, progress, None)
    elapsed = time.perf_counter() - started
    if report.status != "delivered":
        raise RuntimeError(f"bench run ended {report.status}: {report.reason}")
    (story,) = report.stories
    checks = sum(c.get("seconds") or 0.0 for c in story.get("checks") or [])
    diff = _git(repo, "diff", f"{report.base}..{report.branch}")
    tokens = sum(story["tokens"].get(kind) or 0 for kind in ("input", "output"))  # cached: in input
    return elapsed, checks, diff, tokens


async def _measure(repeat: int, root: Path) -> dict[str, list[float]]:
    (root / "plain").mkdir()
    (root / "gated").mkdir()
    plain, gated = _repo(root / "plain"), _repo(root / "gated")
    plain_head, gated_head = _config(plain, NO_CHECKS), _config(gated, GATE)
    samples: dict[str, list[float]] = {
        "without_loop_s": [],
        "with_loop_s": [],
        "checks_own_s": [],
        "added_per_story_s": [],
        "critic_question_chars": [],
        "critic_question_tokens_est": [],
        "added_tokens_per_story": [],
    }
    async with local_stack(root) as (_settings, bus):
        await _run(bus, plain, plain_head, False)  # warm the stack
        await _run(bus, gated, gated_head, True)
        for _ in range(repeat):
            without, _, _, plain_tokens = await _run(bus, plain, plain_head, False)
            with_loop, checks, diff, loop_tokens = await _run(bus, gated, gated_head, True)
            passed = [s.CheckResult(command="true", result="passed", exit_code=0)]
            question = critic_prompt("write bench.txt", STORY, diff, passed)
            samples["without_loop_s"].append(without)
            samples["with_loop_s"].append(with_loop)
            samples["checks_own_s"].append(checks)
            samples["added_per_story_s"].append(with_loop - without - checks)
            samples["critic_question_chars"].append(len(question))
            samples["critic_question_tokens_est"].append(round(len(question) / 4))
            samples["added_tokens_per_story"].append(loop_tokens - plain_tokens)
    return samples


def measure(repeat: int = 7) -> dict[str, Any]:
    repeat = max(5, repeat)  # a median and a spread need a few pairs: the machine is noisy
    with tempfile.TemporaryDirectory(prefix="baro-review-bench-") as tmp:
        samples = asyncio.run(_measure(repeat, Path(tmp)))
    unit = {
        "critic_question_chars": "chars",
        "critic_question_tokens_est": "tokens",
        "added_tokens_per_story": "tokens",
    }
    return {name: figure(values, unit.get(name, "s"), 4) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="pairs of runs (at least 5)")
    args = parser.parse_args()
    for name, fig in measure(args.repeat).items():
        print(
            f"{name:<22} median {fig['median']:.3f} {fig['unit']}  "
            f"(min {fig['min']:.3f}, max {fig['max']:.3f}, n={fig['n']})"
        )


if __name__ == "__main__":
    main()
