"""Ctrl-C in `baro run`: the run is cancelled and the summary (text and --json) says what
the run record says — statuses, attempts, tokens, times — not what the CLI last saw."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from tests.conftest import make_repo

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")


async def _record(store: Path, run_id: str) -> s.RunRecord:
    server = EmbeddedNats(store_dir=store).start()
    try:
        bus = await Bus.open(Settings(nats_url=server.url), "test", ensure=False)
        try:
            got = await bus.get_record(run_id)
            assert got is not None
            return got[0]
        finally:
            await bus.close()
    finally:
        server.stop()


def interrupted_run(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], s.RunRecord]:
    """A run whose first attempt fails (its tokens count) and whose retry hangs; Ctrl-C
    while the retry runs."""
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    started = tmp_path / "retry-started"
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "stories": [
                    {"attempts": [1], "steps": [{"usage": {"input": 300}}, {"fail": "no luck"}]},
                    {"steps": [{"run": f"touch {started}"}, {"hang": 120}]},
                ]
            }
        )
    )
    env = {
        **os.environ,
        "BARO_STATE_DIR": str(tmp_path / "state"),
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("BARO_NATS_URL", None)
    proc = subprocess.Popen(
        [BARO, "run", "change a", "--mode", "focused", "--yes", "--backend", "scripted",
         "--script", str(script), *args],
        cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the retry never started"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    submitted = re.search(r"run (\S+) submitted: ", err)
    assert submitted, err
    run_id = submitted.group(1)
    return done, asyncio.run(_record(tmp_path / "state" / "nats", run_id))


def test_the_json_summary_after_ctrl_c_is_the_run_record(tmp_path: Path) -> None:
    done, rec = interrupted_run(tmp_path, "--json")
    assert done.returncode == 130, done.stderr
    report = json.loads(done.stdout)
    assert rec.state == "cancelled"
    assert report["status"] == "cancelled" and report["reason"] == rec.reason
    story = rec.story("S1")
    assert story is not None and story.attempt == 2 and story.status == "cancelled"
    assert report["stories"] == [
        {
            "id": "S1",
            "title": "Change a",
            "depends_on": [],
            "status": "cancelled",
            "attempt": 2,
            "backend": "scripted",
            "model": story.model,
            "agent_s": round(story.agent_seconds, 3),
            "tokens": {
                "input": story.tokens.input,
                "cached_input": story.tokens.cached_input,
                "output": story.tokens.output,
                "reasoning": story.tokens.reasoning,
                "cost_usd": story.tokens.cost_usd,
            },
            "checks": [],
            "note": None,
        }
    ]
    tokens = rec.totals.tokens
    assert report["tokens"]["input"] == tokens.input and tokens.input >= 300
    assert report["cost_usd"] == tokens.cost_usd
    assert report["wall_s"] == rec.totals.wall_s > 0
    assert report["agent_s"] == rec.totals.agent_s > 0
    assert report["speedup"] == rec.totals.speedup


def test_the_text_summary_after_ctrl_c_is_the_run_record(tmp_path: Path) -> None:
    done, rec = interrupted_run(tmp_path)
    assert done.returncode == 130, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == f"run {rec.run_id}: cancelled — {rec.reason}"
    (s1,) = [line for line in lines if line.startswith("  S1: cancelled (attempt 2) — scripted")]
    story = rec.story("S1")
    assert story is not None
    assert s1.endswith(
        f", tokens: {(story.tokens.input or 0) + (story.tokens.output or 0)}, "
        f"cost ${story.tokens.cost_usd:.4f}"
    )
    tokens = rec.totals.tokens
    assert (
        f"tokens: input {tokens.input}, cached {tokens.cached_input}, output {tokens.output}; "
        f"cost ${tokens.cost_usd:.4f}"
    ) in lines
    assert (
        f"wall-clock: {rec.totals.wall_s:.1f}s, summed agent time: {rec.totals.agent_s:.1f}s, "
        f"speedup {rec.totals.speedup:.2f}x"
    ) in lines
