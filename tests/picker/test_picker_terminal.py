"""The mode picker through a real pseudo-terminal, on the real `baro run` and a real repository."""

from __future__ import annotations

import pytest

from baro_cli.picker import estimate_line
from baro_shared import schemas as s
from tests.conftest import run_git, snapshot
from tests.picker.conftest import (
    Workspace,
    finish,
    kinds,
    run_args,
    run_headless,
    spawn,
    stored_run,
    summary_json,
    wait_for_picker,
)

DOWN = "\x1b[B"
ENTER = "\r"
ESCAPE = "\x1b"
CTRL_C = "\x03"


def test_enter_accepts_the_suggestion(workspace: Workspace) -> None:
    before = snapshot(workspace.repo)
    child = spawn(workspace, run_args(workspace))
    shown = wait_for_picker(child)
    child.send(ENTER)
    code, output = finish(child)

    assert code == 0, output
    screen = shown + output
    assert "baro suggests: focused (" in screen
    for mode in ("focused", "sequential", "parallel"):
        assert mode in screen
    assert "cost unknown (no past runs like it here)" in screen
    report = summary_json(output)
    assert report["status"] == "delivered"
    assert (report["mode"], report["mode_source"]) == ("focused", "offline")
    assert report["confidence"] and 0 < report["confidence"] <= 1
    assert report["mode_reason"] and report["vague"] is False
    assert [e["samples"] for e in report["estimates"]] == [0, 0, 0]

    stored = stored_run(workspace, report["run_id"])
    assert stored.record.state == "delivered"
    assert stored.record.mode_source == "offline" and stored.record.request.confirm == "picker"
    confirmed = [ev for ev in stored.events if isinstance(ev, s.ModeConfirmed)]
    assert [(ev.mode, ev.source, ev.decided_by) for ev in confirmed] == [
        ("focused", "intake", "offline")
    ]
    assert run_git(workspace.repo, "show", f"{report['branch']}:app.py").endswith("'hello'")
    assert snapshot(workspace.repo) == before


def test_down_and_enter_overrides_and_the_run_uses_that_mode(workspace: Workspace) -> None:
    child = spawn(workspace, run_args(workspace))
    wait_for_picker(child)
    child.send(DOWN)
    child.send(ENTER)
    code, output = finish(child)

    assert code == 0, output
    report = summary_json(output)
    assert report["status"] == "delivered"
    assert (report["mode"], report["mode_source"]) == ("sequential", "user")
    stored = stored_run(workspace, report["run_id"])
    assert (stored.record.mode, stored.record.mode_source) == ("sequential", "user")
    assert stored.record.decision is not None and stored.record.decision.mode == "focused"
    accepted = [ev for ev in stored.events if isinstance(ev, s.PlanAccepted)]
    assert [ev.mode for ev in accepted] == ["sequential"]
    confirmed = [ev for ev in stored.events if isinstance(ev, s.ModeConfirmed)]
    assert [(ev.source, ev.decided_by) for ev in confirmed] == [("user", "user")]


@pytest.mark.parametrize("key", [ESCAPE, CTRL_C], ids=["escape", "ctrl-c"])
def test_escape_and_ctrl_c_cancel_cleanly(workspace: Workspace, key: str) -> None:
    before = snapshot(workspace.repo)
    refs_before = run_git(workspace.repo, "for-each-ref")
    child = spawn(workspace, run_args(workspace))
    wait_for_picker(child)
    child.send(key)
    code, output = finish(child)

    assert code == 130, output
    assert "Traceback" not in output
    report = summary_json(output)
    assert report["status"] == "cancelled"
    assert report["reason"] == "cancelled at the mode picker"
    stored = stored_run(workspace, report["run_id"])
    assert stored.record.state == "cancelled"
    assert stored.record.mode is None and stored.record.stories == []
    seen = kinds(stored.events)
    for never in ("ModeConfirmed", "PlanProposed", "PlanAccepted", "StoryStarted"):
        assert never not in seen, seen
    # the merger prepares the repository while the picker waits: its report may come in
    # after the cancellation, which changes nothing (the record is final, as checked above)
    after = seen[seen.index("RunFinished") + 1 :]
    assert set(after) <= {"RunPrepared"}, seen
    assert run_git(workspace.repo, "for-each-ref") == refs_before, "a branch or ref was added"
    assert snapshot(workspace.repo) == before


def test_the_picker_shows_what_past_runs_here_cost(workspace: Workspace) -> None:
    first = run_headless(workspace, run_args(workspace))
    assert first.returncode == 0, first.stderr
    past = summary_json(first.stdout)

    child = spawn(workspace, run_args(workspace, goal="fix the typo in greet() in app.py again"))
    shown = wait_for_picker(child)
    child.send(ESCAPE)
    code, output = finish(child)
    assert code == 130

    screen = " ".join((shown + output).split())
    expected_tokens = sum(v for k, v in past["tokens"].items() if k in ("input", "output") and v)
    report = summary_json(output)
    focused = next(e for e in report["estimates"] if e["mode"] == "focused")
    assert focused["samples"] == 1 and focused["tokens"] == expected_tokens
    assert focused["wall_s"] is not None and 0 <= focused["wall_s"] <= past["wall_s"] + 0.1
    assert f"one surface) — {estimate_line(focused)}" in screen
    assert "(1 past run)" in estimate_line(focused)
    assert screen.count("cost unknown (no past runs like it here)") >= 2


def test_a_vague_goal_is_flagged_in_the_picker(workspace: Workspace) -> None:
    # its questions are skipped: the picker shows the smallest safe reading taken instead
    child = spawn(workspace, run_args(workspace, "--clarify", "skip", goal="make it better"))
    shown = wait_for_picker(child)
    child.send(ESCAPE)
    code, output = finish(child)
    assert code == 130
    screen = " ".join((shown + output).split())
    assert "baro suggests: focused (" in screen
    assert "⚠ vague goal, read as: " in screen
    report = summary_json(output)
    assert report["vague"] is True and report["interpretation"]
    stored = stored_run(workspace, report["run_id"])
    assert stored.record.decision is not None and stored.record.decision.vague
