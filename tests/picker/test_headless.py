"""Runs without the picker: no terminal, --yes, --mode, and --intake."""

from __future__ import annotations

from baro_shared import schemas as s
from tests.picker.conftest import (
    INTAKE_REPLY,
    Workspace,
    finish,
    kinds,
    run_args,
    run_headless,
    spawn,
    stored_run,
    summary_json,
)


def test_without_a_terminal_the_suggestion_is_accepted(workspace: Workspace) -> None:
    done = run_headless(workspace, run_args(workspace))
    assert done.returncode == 0, done.stderr
    report = summary_json(done.stdout)
    assert report["status"] == "delivered"
    assert (report["mode"], report["mode_source"]) == ("focused", "offline")
    assert "baro suggests: focused" in done.stderr
    stored = stored_run(workspace, report["run_id"])
    assert stored.record.request.confirm == "auto"
    assert stored.record.mode_source == "offline"
    decided = next(ev for ev in stored.events if isinstance(ev, s.IntakeDecided))
    assert decided.decision.source == "offline" and decided.decision.reason == report["mode_reason"]


def test_yes_on_a_terminal_skips_the_picker(workspace: Workspace) -> None:
    child = spawn(workspace, run_args(workspace, "--yes"))
    code, output = finish(child)
    assert code == 0, output
    assert "Esc cancels" not in output
    report = summary_json(output)
    assert (report["status"], report["mode_source"]) == ("delivered", "offline")
    assert stored_run(workspace, report["run_id"]).record.request.confirm == "auto"


def test_mode_flag_skips_intake(workspace: Workspace) -> None:
    done = run_headless(workspace, run_args(workspace, "--mode", "sequential"))
    assert done.returncode == 0, done.stderr
    report = summary_json(done.stdout)
    assert (report["mode"], report["mode_source"]) == ("sequential", "flag")
    assert report["confidence"] is None and report["estimates"] == []
    stored = stored_run(workspace, report["run_id"])
    assert stored.record.decision is None
    assert (stored.record.mode, stored.record.mode_source) == ("sequential", "flag")
    assert "IntakeDecided" not in kinds(stored.events)
    confirmed = [ev for ev in stored.events if isinstance(ev, s.ModeConfirmed)]
    assert [(ev.source, ev.decided_by) for ev in confirmed] == [("flag", "flag")]


def test_llm_intake_decides_and_its_tokens_count(workspace: Workspace) -> None:
    done = run_headless(workspace, run_args(workspace, "--intake", "llm"))
    assert done.returncode == 0, done.stderr
    report = summary_json(done.stdout)
    assert report["status"] == "delivered"
    assert (report["mode_source"], report["confidence"]) == ("llm", INTAKE_REPLY["confidence"])
    assert report["mode_reason"] == INTAKE_REPLY["reason"]
    stored = stored_run(workspace, report["run_id"])
    decision = stored.record.decision
    assert decision is not None and decision.source == "llm"
    assert decision.tokens == s.TokenUsage(input=500, cached_input=100, output=30, cost_usd=0.0)
    # the story's 880 (500 + 300 cached, 80 out) plus the intake question's 530
    assert (report["tokens"]["input"], report["tokens"]["output"]) == (1300, 110)
    assert stored.record.mode_source == "llm"


def test_an_unknown_intake_is_one_clear_line(workspace: Workspace) -> None:
    done = run_headless(workspace, run_args(workspace, "--intake", "magic"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "baro: unknown intake 'magic': choose one of offline, llm, auto"
    ]
