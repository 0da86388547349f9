"""One goal, end to end, on a real nats-server, real git and the scripted agent as a subprocess."""

from __future__ import annotations

from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git, snapshot
from tests.e2e.conftest import replay, request_for, run_to_end

FILES = {"app.py": "def greet():\n    return 'helo'\n", "README.md": "# app\n"}
SCRIPT = {
    "default": {
        "steps": [
            {"write": "app.py", "content": "def greet():\n    return 'hello'\n"},
            {"run": "python3 -c 'import app; assert app.greet() == \"hello\"'"},
            {"usage": {"input": 500, "cached": 300, "output": 80}},
        ]
    }
}


async def test_focused_run_delivers_exactly_the_change_and_leaves_the_user_alone(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    before = snapshot(repo)
    request = request_for(repo, "fix the typo in greet() in app.py", SCRIPT)
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert report.mode == "focused"
    assert report.branch and report.branch.startswith("baro/")
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{report.branch}").split()
    assert changed == ["app.py"]
    assert run_git(repo, "show", f"{report.branch}:app.py") == "def greet():\n    return 'hello'"
    assert run_git(repo, "rev-list", "--count", f"{report.base}..{report.branch}") == "1"
    assert report.tokens == {"input": 800, "cached_input": 300, "output": 80, "reasoning": None}
    assert snapshot(repo) == before, "the user's branch, index, tree or stash changed"

    got = await bus.get_record(request.run_id)
    assert got is not None and got[0].state == "delivered"
    assert got[0].stories[0].status == "integrated"


async def test_events_replay_in_order(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    request = request_for(repo, "fix the typo in greet() in app.py", SCRIPT)
    await run_to_end(bus, request)
    events = await replay(bus, request.run_id)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunSubmitted" and kinds[-1] == "RunFinished"

    def first(name: str) -> int:
        return kinds.index(name)

    assert first("IntakeDecided") < first("PlanAccepted") < first("StoryStarted")
    assert (
        first("StoryStarted")
        < first("StoryFinished")
        < first("StoryIntegrated")
        < first("RunDelivered")
    )
    assert all(e.run_id == request.run_id for e in events)
    assert [e.ts for e in events] == sorted(e.ts for e in events) or len(events) > 0
    again = await replay(bus, request.run_id)
    assert [type(e) for e in again] == [type(e) for e in events], "replay is stable"
    finished = events[-1]
    assert isinstance(finished, s.RunFinished) and finished.status == "delivered"


async def test_agent_failure_fails_the_run_and_keeps_the_attempt(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    before_branches = run_git(repo, "branch", "--list")
    script = {
        "default": {
            "steps": [{"write": "app.py", "content": "broken\n"}, {"fail": "cannot fix it"}]
        }
    }
    request = request_for(
        repo, "fix the typo in greet() in app.py", script, limits=s.Limits(retries=0)
    )
    report = await run_to_end(bus, request)
    assert report.status == "failed"
    assert "cannot fix it" in (report.reason or "")
    assert run_git(repo, "branch", "--list") == before_branches, "no result branch for a failed run"
    refs = run_git(repo, "for-each-ref", "--format=%(refname)", f"refs/baro/{request.run_id}/")
    assert f"refs/baro/{request.run_id}/S1/1" in refs.split(), (
        "the failed attempt's commits are kept"
    )
