"""Runs planned by a model (the scripted agent answering as the backend CLI), end to end:
the plan is enforced and run, its tokens count in the run's totals, and a plan that cannot
be had fails the run with a message that says why."""

from __future__ import annotations

import json
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end

FILES = {"src/cli.py": "ARGS = []\n", "docs/cli.md": "# cli\n"}
PLAN = {
    "stories": [
        {"id": "S1", "title": "Parse the flag", "write_surface": ["src/cli.py"]},
        {"id": "S2", "title": "Document the flag", "write_surface": ["docs/cli.md"]},
    ]
}
STORY_USAGE = {"usage": {"input": 100, "output": 10}}
NOTE = (
    "The flag is spelled `--flag` everywhere; `ARGS` in src/cli.py is the only place it is parsed."
)


async def test_a_model_plan_runs_and_its_tokens_count(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {
        "stories": [
            {
                "match": {"id": "baro-architect"},
                "steps": [{"text": NOTE}, {"usage": {"input": 30, "output": 10}}],
            },
            {
                "match": {"id": "baro-planner"},
                "steps": [{"text": json.dumps(PLAN)}, {"usage": {"input": 40, "output": 20}}],
            },
            {
                "match": {"id": "S1"},
                "steps": [
                    {"append": "src/cli.py", "content": "ARGS.append('--flag')\n"},
                    STORY_USAGE,
                ],
            },
            {
                "match": {"id": "S2"},
                "steps": [{"append": "docs/cli.md", "content": "Use --flag.\n"}, STORY_USAGE],
            },
        ]
    }
    request = request_for(
        repo,
        "add a --flag option and tell users about it",
        script,
        mode_request="parallel",
        planner="llm",
    )
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason
    # two stories, the plan, and the design note asked before it
    assert report.tokens == {"input": 270, "cached_input": 0, "output": 50, "reasoning": None}
    assert "planned by scripted (2 stories)" in report.enforcement

    events = await replay(bus, request.run_id)
    proposed = next(ev for ev in events if isinstance(ev, s.PlanProposed))
    assert proposed.planner == "llm"
    assert proposed.tokens == s.TokenUsage(input=40, cached_input=0, output=20, cost_usd=0.0)
    assert proposed.design == s.DesignNote(
        text=NOTE,
        source="model",
        tokens=s.TokenUsage(input=30, cached_input=0, output=10, cost_usd=0.0),
    )
    accepted = next(ev for ev in events if isinstance(ev, s.PlanAccepted))
    assert accepted.mode == "parallel" and [st.id for st in accepted.stories] == ["S1", "S2"]
    assert accepted.design == proposed.design
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{report.branch}").split()
    assert sorted(changed) == ["docs/cli.md", "src/cli.py"]


async def test_a_plan_that_cannot_be_had_fails_the_run_and_says_why(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    branches = run_git(repo, "branch", "--list")
    script = {
        "stories": [
            {
                "match": {"title": "^planner"},  # the question and its repair
                "steps": [
                    {"text": "I would split it in two."},
                    {"usage": {"input": 30, "output": 3}},
                ],
            }
        ]
    }
    request = request_for(
        repo,
        "add a --flag option and tell users about it",
        script,
        mode_request="sequential",
        planner="llm",
    )
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "failed"
    assert report.reason == (
        "planning failed: scripted did not return a usable plan, even after one repair: "
        "the answer contains no JSON object "
        "(retry, or give the stories yourself with --plan-file)"
    )
    assert report.tokens == {"input": 60, "cached_input": 0, "output": 6, "reasoning": None}
    assert run_git(repo, "branch", "--list") == branches
    events = await replay(bus, request.run_id)
    assert not any(isinstance(ev, s.StoryStarted) for ev in events)
