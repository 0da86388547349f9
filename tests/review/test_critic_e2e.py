"""The critic end to end: the scripted agent plays the critic (story baro-critic-S1) and the
agent whose change it judges, with the real services on a real nats-server."""

from __future__ import annotations

import json
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end

STORY = s.Story(
    id="S1",
    title="Set VALUE to 2 in app.py",
    write_surface=["app.py"],
    acceptance=["app.VALUE is 2"],
)
APPROVE = {"text": json.dumps({"verdict": "approve", "reasons": []})}
CRITIC_USAGE = {"usage": {"input": 70, "output": 7}}


def critic(rule_steps: list[dict], prompt: str | None = None, id: str = "baro-critic-S1") -> dict:
    match: dict[str, str] = {"id": id}
    if prompt is not None:
        match["prompt"] = prompt
    return {"match": match, "steps": rule_steps}


async def test_revise_then_approve_delivers_the_repaired_change(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"app.py": "VALUE = 1\n"})
    revise = {"text": json.dumps({"verdict": "revise", "reasons": ["VALUE is 3, not 2"]})}
    script = {
        "stories": [
            critic([APPROVE, CRITIC_USAGE], prompt=r"\+VALUE = 2"),
            critic([revise, CRITIC_USAGE]),
            {  # the repair turn is told the critique
                "match": {"id": "S1", "prompt": "VALUE is 3, not 2"},
                "steps": [{"write": "app.py", "content": "VALUE = 2\n"}],
            },
            {"match": {"id": "S1"}, "steps": [{"write": "app.py", "content": "VALUE = 3\n"}]},
        ]
    }
    request = request_for(
        repo, "set VALUE to 2 in app.py", script, mode_request="focused", plan=[STORY],
        review=True,
    )  # fmt: skip
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert run_git(repo, "show", f"{report.branch}:app.py") == "VALUE = 2"
    events = await replay(bus, request.run_id)
    verdicts = [(e.attempt, e.verdict) for e in events if isinstance(e, s.StoryReviewed)]
    assert verdicts == [(1, "revise"), (2, "approve")]
    asked = [e for e in events if isinstance(e, s.StoryFinished)]
    assert [a.diff is not None and "+VALUE = " in a.diff for a in asked] == [True, True]
    assert [d["action"] for d in report.decisions] == ["repair", "approve"]
    agents = sum(a.tokens.input for a in asked)
    assert report.tokens["input"] == agents + 2 * 70, "the critic's tokens count"


async def test_a_garbage_critic_abstains_and_the_story_goes_on(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"app.py": "VALUE = 1\n"})
    script = {
        "stories": [
            critic([{"text": "LGTM, ship it! {"}]),
            critic([{"text": '{"verdict": "yes"}'}], id="baro-critic-S1-repair"),
            {"match": {"id": "S1"}, "steps": [{"write": "app.py", "content": "VALUE = 2\n"}]},
        ]
    }
    request = request_for(
        repo, "set VALUE to 2 in app.py", script, mode_request="focused", plan=[STORY],
        review=True,
    )  # fmt: skip
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    (decision,) = report.decisions
    assert decision["action"] == "abstain" and decision["story_id"] == "S1"
    assert "even after one repair" in decision["reason"] and "verdict must be" in decision["reason"]
    reviewed = [e for e in await replay(bus, request.run_id) if isinstance(e, s.StoryReviewed)]
    assert [(e.verdict, e.reasons) for e in reviewed] == [("abstain", [])]
