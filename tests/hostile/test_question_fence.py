"""A one-shot question (intake, planner, critic, replanning) is answered without tools: a
hostile script that tries to change the user's repository, or anything else, from a
question's answer gets every such step refused, on any machine (fenced or not), and its
answer still comes back. The scripted agent is a real subprocess here, as baro runs it."""

from __future__ import annotations

import json
from pathlib import Path

from baro_shared import oneshot
from baro_shared.settings import Settings
from tests.conftest import make_repo, snapshot

VERDICT = json.dumps({"verdict": "approve", "reasons": []})


async def test_a_question_refuses_every_step_with_a_side_effect(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"}, dirty=True)
    before = snapshot(repo)
    outside = tmp_path / "outside"
    hostile = [
        {"run": f"echo owned >> {repo}/a.txt; touch {repo}/pwned {outside}"},
        {"write": str(repo / "b.txt"), "content": "owned\n"},
        {"write": "../../user/c.txt", "content": "owned\n"},
        {"write": "here.txt", "content": "even in its own directory\n"},
        {"append": str(repo / "a.txt"), "content": "owned\n"},
        {"delete": str(repo / "a.txt")},
        {"save_prompt": str(repo / "prompt.txt")},
        {"record": str(repo / "record.json")},
        {"spawn_child": 30},
        {"text": VERDICT},
    ]
    script = {"stories": [{"match": {"id": "baro-critic-S1"}, "steps": hostile}]}
    settings = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")

    answer = await oneshot.ask(
        "scripted", "review S1", settings, purpose="critic-S1", agent_script=json.dumps(script)
    )

    assert answer.ok, answer.error
    assert answer.text == VERDICT, "the answer comes back; only the side effects are refused"
    assert snapshot(repo) == before
    assert not outside.exists() and not (repo / "pwned").exists()


async def test_a_question_that_only_answers_is_unchanged(tmp_path: Path) -> None:
    script = {"default": {"steps": [{"usage": {"input": 7, "output": 1}}, {"text": VERDICT}]}}
    settings = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    answer = await oneshot.ask(
        "scripted", "review", settings, purpose="replan-1", agent_script=json.dumps(script)
    )
    assert answer.ok and answer.text == VERDICT and answer.usage.input == 7
