"""A vague goal's questions on a real pseudo-terminal and without one (`--answers FILE`),
through the real `baro run`: the answers make the clarified goal, it is confirmed, and it
reaches the agent's prompt, the run record and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect

from tests.conftest import run_git
from tests.picker.conftest import (
    CPR_REQUEST,
    FIX,
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

ENTER = "\r"
GOAL = "make it faster"
PROMPT_AT = "docs/prompt.md"


def recording_script(ws: Workspace) -> None:
    """The agent records the prompt it got into the branch, then fixes app.py."""
    steps = [{"record": PROMPT_AT}, FIX, {"usage": {"input": 10, "output": 1}}]
    ws.script.write_text(json.dumps({"default": {"steps": steps}}))


def prompt_on(ws: Workspace, branch: str) -> str:
    return json.loads(run_git(ws.repo, "show", f"{branch}:{PROMPT_AT}"))["prompt"]


def wait_for(child: pexpect.spawn, marker: str) -> str:
    """Until ``marker`` is drawn, answering a cursor-position request on the way."""
    if child.expect_exact([CPR_REQUEST, marker]) == 0:
        before = child.before
        child.send("\x1b[1;1R")
        child.expect_exact(marker)
        return before + child.before
    return child.before


def test_two_answers_and_a_skip_make_the_goal_the_agent_gets(workspace: Workspace) -> None:
    recording_script(workspace)
    child = spawn(workspace, run_args(workspace, goal=GOAL))
    screen = wait_for(child, "Enter skips")
    child.send("the greet function in app.py" + ENTER)
    screen += wait_for(child, "Enter skips")
    child.send("greet() returns 'hello'" + ENTER)
    screen += wait_for(child, "Enter skips")
    child.send(ENTER)  # skipped
    screen += wait_for(child, "Go on with this goal?")
    child.send("y")
    screen += wait_for_picker(child)
    child.send(ENTER)
    code, output = finish(child)

    assert code == 0, output
    screen = " ".join((screen + output).split())
    assert "(1/3) Which file, module, command or feature should change?" in screen
    assert "objective: make it faster — the greet function in app.py" in screen
    assert "acceptance criteria: greet() returns 'hello'" in screen
    report = summary_json(output)
    assert report["status"] == "delivered"
    assert report["clarification"]["status"] == "answered"
    assert [q["answer"] for q in report["clarification"]["questions"]] == [
        "the greet function in app.py",
        "greet() returns 'hello'",
        None,
    ]
    envelope = report["envelope"]
    assert envelope["objective"] == "make it faster — the greet function in app.py"
    assert envelope["acceptance_criteria"] == ["greet() returns 'hello'"]

    stored = stored_run(workspace, report["run_id"])
    assert stored.record.clarification is not None
    assert stored.record.clarification.answered_by == "terminal"
    assert stored.record.envelope is not None and stored.record.decision is not None
    assert stored.record.decision.round == 2 and not stored.record.decision.vague
    seen = kinds(stored.events)
    assert seen.index("QuestionsAsked") < seen.index("AnswersGiven") < seen.index("PlanAccepted")

    prompt = prompt_on(workspace, report["branch"])
    assert "**Objective:** make it faster — the greet function in app.py" in prompt
    assert "- greet() returns 'hello'" in prompt
    assert "was not answered" in prompt  # the skipped question is an assumption


def test_headless_answers_come_from_a_file(workspace: Workspace, tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"target": "greet() in app.py", "2": "it says hello"}))
    done = run_headless(workspace, run_args(workspace, "--answers", str(answers), goal=GOAL))
    assert done.returncode == 0, done.stderr
    assert "[target] Which file, module, command or feature should change?" in done.stderr
    report = summary_json(done.stdout)
    assert report["status"] == "delivered"
    assert report["envelope"]["acceptance_criteria"] == ["it says hello"]
    stored = stored_run(workspace, report["run_id"])
    assert stored.record.request.clarify == "ask"
    assert stored.record.clarification is not None
    assert stored.record.clarification.answered_by == "file"
    given = {a.question_id: a.text for a in stored.record.clarification.answers}
    assert given == {"target": "greet() in app.py", "outcome": "it says hello", "untouched": ""}
