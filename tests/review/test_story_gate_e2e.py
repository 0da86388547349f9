"""The story gate end to end: real processes, the scripted agent, real checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end

CHECK = "python3 -c 'import app; assert app.VALUE == 2, app.VALUE'"
CONFIG = f'[verify]\nstory = ["{CHECK}"]\n'


@pytest.fixture
def pytest_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest next to the interpreter running the tests, without this suite's plugins
    (they take seconds to load on a busy machine; the checks do not need them)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def show(repo: Path, rev: str, path: str) -> str:
    return run_git(repo, "show", f"{rev}:{path}")


def finished(events: list[s.Event]) -> list[s.StoryFinished]:
    return [e for e in events if isinstance(e, s.StoryFinished)]


async def test_a_failing_gate_is_repaired_on_the_attempts_result(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "user",
        {
            "app.py": "VALUE = 1\n",
            ".baro.toml": CONFIG,
        },
        dirty=True,
    )
    script = {
        "stories": [
            {  # the repair turn is told what failed; only then does it get VALUE right
                "match": {"id": "S1", "prompt": "AssertionError: 3"},
                "steps": [{"write": "app.py", "content": "VALUE = 2\n"}],
            },
            {
                "match": {"id": "S1"},
                "steps": [
                    {"write": "app.py", "content": "VALUE = 3\n"},
                    {"write": "helper.py", "content": "HELP = 1\n"},
                ],
            },
        ]
    }
    request = request_for(repo, "set VALUE to 2 in app.py", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert show(repo, report.branch, "app.py") == "VALUE = 2"
    assert show(repo, report.branch, "helper.py") == "HELP = 1", (
        "the repair turn went on from the first attempt's result"
    )
    events = await replay(bus, request.run_id)
    first, second = finished(events)
    assert (first.status, first.exit_reason) == ("failed", "checks_failed")
    assert not [e for e in events if isinstance(e, s.StoryAgentEnded)], (
        "the checks run in the story's fence: its slot is held until they are done"
    )
    assert [(c.result, c.exit_code) for c in first.checks] == [("failed", 1)]
    assert "AssertionError: 3" in first.checks[0].output
    assert second.status == "success" and [c.result for c in second.checks] == ["passed"]
    assert [d["action"] for d in report.decisions] == ["repair"]
    (story,) = report.stories
    assert story["checks"][0]["result"] == "passed" and story["attempt"] == 2


async def test_a_gate_that_fails_again_fails_the_story_and_keeps_its_work(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "user",
        {
            "app.py": "VALUE = 1\n",
            ".baro.toml": CONFIG,
        },
    )
    script = {"default": {"steps": [{"write": "app.py", "content": "VALUE = 3\n"}]}}
    no_replanning = s.Limits(story_timeout_s=120, stall_timeout_s=60, heals=0)
    request = request_for(
        repo, "set VALUE to 2 in app.py", script, mode_request="focused", limits=no_replanning
    )
    report = await run_to_end(bus, request)

    assert report.status == "failed"
    assert report.reason is not None and "its checks failed again" in report.reason
    attempts = finished(await replay(bus, request.run_id))
    assert [a.exit_reason for a in attempts] == ["checks_failed", "checks_failed"]
    ref = f"refs/baro/{request.run_id}/S1/2"
    assert show(repo, ref, "app.py") == "VALUE = 3", "the failed attempt's work is kept"


@pytest.mark.usefixtures("pytest_on_path")
async def test_a_detected_check_failing_at_the_base_as_well_does_not_fail_the_story(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "user",
        {
            "pytest.ini": "[pytest]\n",
            "test_old.py": "def test_broken_before_the_run():\n    assert False\n",
            "app.py": "VALUE = 1\n",
        },
    )
    script = {"default": {"steps": [{"write": "app.py", "content": "VALUE = 2\n"}]}}
    request = request_for(repo, "set VALUE to 2 in app.py", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    (attempt,) = finished(await replay(bus, request.run_id))
    (check,) = attempt.checks
    assert (check.origin, check.result, check.exit_code) == ("detected", "skipped", 1)
    assert check.note is not None and "fails at the base as well" in check.note


@pytest.mark.usefixtures("pytest_on_path")
async def test_a_detected_check_the_story_breaks_is_repaired(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "user",
        {
            "pyproject.toml": "[tool.pytest.ini_options]\n",
            "test_app.py": "import app\n\ndef test_value():\n    assert app.VALUE > 0\n",
            "app.py": "VALUE = 1\n",
        },
    )
    script = {
        "stories": [
            {
                "match": {"prompt": "test_value"},
                "steps": [{"write": "app.py", "content": "VALUE = 2\n"}],
            },
            {"steps": [{"write": "app.py", "content": "VALUE = -2\n"}]},
        ]
    }
    request = request_for(repo, "set VALUE to 2 in app.py", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    first, second = finished(await replay(bus, request.run_id))
    assert [(c.origin, c.result) for c in first.checks] == [("detected", "failed")]
    assert [(c.origin, c.result) for c in second.checks] == [("detected", "passed")]


async def test_an_agent_that_rewrites_the_check_and_the_gate_command_still_fails_it(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "user",
        {
            "app.py": "VALUE = 1\n",
            "check.py": "import app\nassert app.VALUE == 2, app.VALUE\n",
            ".baro.toml": '[verify]\nstory = ["python3 check.py"]\ndetect = false\n',
        },
    )
    cheat = [
        {"write": "app.py", "content": "VALUE = 3\n"},
        {"write": "check.py", "content": "pass\n"},
        {"write": ".baro.toml", "content": '[verify]\nstory = ["true"]\n'},
    ]
    script = {"default": {"steps": cheat}}
    request = request_for(repo, "set VALUE to 2 in app.py", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "failed", "neither the rewritten check nor the new command counts"
    attempts = finished(await replay(bus, request.run_id))
    assert [a.exit_reason for a in attempts] == ["checks_failed", "checks_failed"]
    (check,) = attempts[0].checks
    assert (check.command, check.result) == ("python3 check.py", "failed")
    assert "AssertionError: 3" in check.output
    assert check.note is not None and "check.py as the story's base has it" in check.note
