"""`--events` on `baro run` and `baro watch`: one JSON object per line for every event of the
run and its agents, the summary last; and `baro watch`'s lines at their real time offsets."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.runstream import run_stream
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_baro
from tests.e2e.conftest import bus, request_for, run_to_end, stack  # noqa: F401
from tests.remote.conftest import FILES, FIX, GOAL, baro

pytestmark = pytest.mark.slow

TWO = "update alpha.py and beta.py: add a module docstring to each"
TWO_FILES = {"alpha.py": "A = 1\n", "beta.py": "B = 2\n", "README.md": "# two\n"}
PACED = {
    "stories": [
        {
            "match": {"title": rf"\b{name}\.py\b"},
            "steps": [
                {"text": f"working on {name}.py"},
                {"sleep": 0.5},
                {"write": f"{name}.py", "content": f'"""{name}."""\n'},
                {"usage": {"input": 100, "cached": 10, "output": 20}},
            ],
        }
        for name in ("alpha", "beta")
    ]
}
STAMP = re.compile(r"^\[\s*(\d+\.\d)s\] (.*)$")


def lines_of(stdout: str) -> list[dict]:
    lines = stdout.splitlines()
    assert lines, "no event lines"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def two_stories(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A repository with two files, the paced script for them, and baro's environment."""
    repo = make_repo(tmp_path / "user", TWO_FILES)
    script = tmp_path / "script.json"
    script.write_text(json.dumps(PACED))
    env = {
        **os.environ,
        "BARO_STATE_DIR": str(tmp_path / "state"),
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
    }
    return repo, script, env


def test_run_events_prints_every_event_then_the_summary(tmp_path: Path) -> None:
    repo, script, env = two_stories(tmp_path)
    done = run_baro(
        "run", TWO, "--repo", str(repo), "--backend", "scripted", "--script", str(script),
        "--mode", "parallel", "--events", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = lines_of(done.stdout)

    assert events[0]["type"] == "run.submitted"
    summary = events[-1]
    assert summary["type"] == "run.summary" and summary["v"] == 1
    assert summary["status"] == "delivered" and len(summary["stories"]) == 2
    kinds = [e["type"] for e in events]
    assert kinds.count("run.summary") == 1 and kinds.count("run.finished") == 1
    # after the run's end, at most agent events published before it (read after it)
    assert set(kinds[kinds.index("run.finished") + 1 : -1]) <= {"agent.event"}
    for sid in ("S1", "S2"):
        mine = [e for e in events if e["type"] == "agent.event" and e["story_id"] == sid]
        texts = [e["event"].get("text") for e in mine if e["event"]["kind"] == "text"]
        assert any(t and t.startswith("working on") for t in texts), mine
        assert [e["event"]["kind"] for e in mine][-1] == "finished"
        assert [e["seq"] for e in mine] == sorted(e["seq"] for e in mine)
    usage = [e for e in events if e["type"] == "agent.event" and e["event"]["kind"] == "usage"]
    assert sum(e["event"]["usage"]["output"] for e in usage) == 40
    assert summary["tokens"]["output"] == 40
    assert all(e["run_id"] == summary["run_id"] for e in events)
    # progress stays on stderr, as lines
    assert "S1 started (attempt 1)" in done.stderr and "{" not in done.stderr


async def test_watch_events_replays_what_the_api_streams_and_lines_keep_their_times(
    bus: Bus,  # noqa: F811
    stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {"default": {"steps": [{"sleep": 1.0}, *FIX["default"]["steps"]]}}
    request = request_for(repo, GOAL, script)
    report = await run_to_end(bus, request, timeout=120)
    assert report.status == "delivered"

    watched = await baro(stack, "watch", request.run_id, "--events")
    assert watched.code == 0, watched.err
    events = lines_of(watched.out)
    streamed = [
        json.loads(s.encode(item.event))
        async for item in run_stream(bus, request.run_id, agent=True, follow=False)
        if item is not None
    ]
    assert events[:-1] == streamed, "--events prints exactly what the API streams"
    assert events[-1]["type"] == "run.summary" and events[-1]["status"] == "delivered"

    text = await baro(stack, "watch", request.run_id)
    assert text.code == 0, text.err
    stamped = [STAMP.match(line) for line in text.err.splitlines()]
    offsets = {m.group(2): float(m.group(1)) for m in stamped if m}
    assert len(offsets) >= 3 and max(offsets.values()) > 0.9, text.err
    started = next(e for e in streamed if e["type"] == "story.started")
    finished = next(e for e in streamed if e["type"] == "story.finished")
    line = next(k for k in offsets if k.startswith("S1 started"))
    assert offsets[line] == pytest.approx(started["ts"] - request.ts, abs=0.11)
    line = next(k for k in offsets if k.startswith("S1 agent finished"))
    assert offsets[line] == pytest.approx(finished["ts"] - request.ts, abs=0.11)
    assert list(offsets.values()) == sorted(offsets.values())
