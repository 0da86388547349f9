"""The live terminal view: what one frame shows for a run's events (pure), and `baro run`
on a real pseudo-terminal drawing it, while the same run without a terminal keeps its
stable progress lines."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pexpect
import pytest
from rich.console import Console

from baro_cli.live import render
from baro_cli.runview import RunView, apply
from baro_shared import schemas as s
from tests.picker.conftest import BARO
from tests.watch.test_events_cli import TWO, two_stories

RUN = "20260501-101500-abcdef"
T0 = 1_800_000_000.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def frame(view: RunView, now: float) -> str:
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render(view, now))
    return console.export_text()


def story(sid: str, title: str, deps: list[str] | None = None) -> s.Story:
    return s.Story(id=sid, title=title, depends_on=deps or [])


def agent(sid: str, seq: int, at: float, event: s.NormalizedEvent) -> s.AgentEventMsg:
    return s.AgentEventMsg(run_id=RUN, story_id=sid, attempt=1, seq=seq, ts=at, event=event)


def test_a_frame_shows_the_mode_each_story_and_at_the_end_the_summary() -> None:
    view = RunView()
    decision = s.IntakeDecision(
        mode="parallel", confidence=0.82, reason="two files, no shared surface", source="offline"
    )
    tokens = s.TokenUsage(input=300, cached_input=100, output=30)
    for event in (
        s.RunSubmitted(run_id=RUN, goal="docstrings", repo=s.RepoSource(kind="path", location="/r"), ts=T0),
        s.IntakeDecided(run_id=RUN, decision=decision, ts=T0 + 0.1),
        s.ModeConfirmed(run_id=RUN, mode="parallel", source="intake", decided_by="offline", ts=T0 + 0.2),
        s.PlanAccepted(
            run_id=RUN, mode="parallel", ts=T0 + 0.3,
            stories=[story("S1", "alpha.py"), story("S2", "beta.py", ["S1"])],
            enforcement=["S2 runs after S1: they share README.md"],
        ),
        s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="r", ts=T0 + 1),
        agent("S1", 1, T0 + 1.5, s.ToolStarted(call_id="c", name="Edit", input='{"file": "alpha.py"}')),
        agent("S1", 2, T0 + 2, s.Usage(usage=tokens, cost_usd=0.0125)),
    ):  # fmt: skip
        apply(view, event)

    running = frame(view, now=T0 + 4)
    assert "mode parallel (offline, 0.82): two files, no shared surface" in running
    assert "enforced: S2 runs after S1: they share README.md" in running
    s1 = next(line for line in running.splitlines() if line.startswith("S1 alpha.py"))
    assert "running" in s1 and "3.0s" in s1 and "300/30" in s1 and "$0.0125" in s1
    assert 'tool Edit started: {"file": "alpha.py"}' in s1
    s2 = next(line for line in running.splitlines() if line.startswith("S2 beta.py"))
    assert "S1" in s2 and "pending" in s2
    assert "summary" not in running

    for event in (
        s.StoryFinished(run_id=RUN, story_id="S1", attempt=1, status="success", tokens=tokens, ts=T0 + 5),
        s.StoryIntegrated(
            run_id=RUN, story_id="S1", attempt=1, integration_commit="c1", ts=T0 + 5.5,
            surface_violations=["notes.txt"], dropped_artifacts=["debug.log"],
        ),
        s.RunDelivered(run_id=RUN, branch="baro/docstrings", base="b", head="h", ts=T0 + 6),
        s.RunFinished(
            run_id=RUN, status="delivered", ts=T0 + 6,
            totals=s.Totals(tokens=tokens, wall_s=6.0, agent_s=4.0, speedup=0.67),
        ),
    ):  # fmt: skip
        apply(view, event)
    final = frame(view, now=T0 + 100)
    s1 = next(line for line in final.splitlines() if line.startswith("S1 alpha.py"))
    assert "integrated" in s1 and "4.0s" in s1 and "1 outside (integrated anyway)" in s1
    assert "summary" in final and "wall-clock 6.0s, agent time 4.0s, speedup 0.67x" in final
    assert "branch baro/docstrings" in final and "dropped: debug.log" in final


@pytest.mark.slow
def test_baro_run_draws_the_live_view_in_a_terminal_and_lines_elsewhere(tmp_path: Path) -> None:
    repo, script, env = two_stories(tmp_path)
    env["TERM"] = "xterm-256color"
    args = ["run", TWO, "--repo", str(repo), "--backend", "scripted", "--script", str(script), "--mode", "parallel"]  # fmt: skip
    child = pexpect.spawn(
        BARO, args, env=env, cwd=str(tmp_path), encoding="utf-8", codec_errors="replace",
        timeout=180, dimensions=(40, 200),
    )  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    screen = ANSI.sub("", child.before)
    assert child.exitstatus == 0, screen
    assert "tokens in/out" in screen and "last agent action" in screen  # the table
    assert "mode parallel" in screen and "summary" in screen
    assert re.search(r"S1 Update alpha\.py.*integrated", screen), screen

    # the same run in a pipe: lines, stamped, as before
    piped = subprocess.run(
        [BARO, *args], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=180
    )
    assert piped.returncode == 0, piped.stderr
    assert "S1 started (attempt 1)" in piped.stderr and "\x1b[" not in piped.stderr
    assert "tokens in/out" not in piped.stderr
