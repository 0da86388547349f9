"""Replanning end to end: the scripted agent plays the story that fails twice and the
planner's replanning question (story baro-replan-S1); the new stories deliver."""

from __future__ import annotations

import json
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end


def replan(decision: str, stories: list[dict]) -> dict:
    answer = {"decision": decision, "reason": "one step at a time", "stories": stories}
    return {"match": {"id": "baro-replan-S1"}, "steps": [{"text": json.dumps(answer)}]}


FAILS = {"match": {"id": "S1"}, "steps": [{"fail": "too much at once"}]}


async def test_a_story_failing_twice_is_split_into_two_that_deliver(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", {"README.md": "hi\n"})
    split = [
        {"id": "b", "title": "Add b.txt", "write_surface": ["b.txt"], "depends_on": ["a"]},
        {"id": "a", "title": "Add a.txt", "write_surface": ["a.txt"]},
    ]
    script = {
        "stories": [
            replan("split", split),
            FAILS,
            {"match": {"id": "S1-1"}, "steps": [{"write": "a.txt", "content": "a\n"}]},
            {"match": {"id": "S1-2"}, "steps": [{"write": "b.txt", "content": "b\n"}]},
        ]
    }
    story = s.Story(id="S1", title="Add a.txt and b.txt", write_surface=["a.txt", "b.txt"])
    request = request_for(
        repo, "add a.txt and b.txt", script, mode_request="sequential", plan=[story], replan=True
    )
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{report.branch}").split()
    assert sorted(changed) == ["a.txt", "b.txt"]
    assert [(st["id"], st["status"]) for st in report.stories] == [
        ("S1", "replaced"), ("S1-1", "integrated"), ("S1-2", "integrated"),
    ]  # fmt: skip
    assert [d["action"] for d in report.decisions] == ["retry", "replan", "split"]
    assert report.review_loop == {"repairs": 0, "retries": 1, "replans": 1, "replan_budget": 3}
    runs = [e for e in await replay(bus, request.run_id) if isinstance(e, s.StoryFinished)]
    assert [(e.story_id, e.attempt) for e in runs] == [
        ("S1", 1),
        ("S1", 2),
        ("S1-1", 1),
        ("S1-2", 1),
    ]


async def test_a_focused_run_stays_one_story_through_replanning(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"README.md": "hi\n"})
    two = [{"id": "a", "title": "a", "write_surface": ["a.txt"]},
           {"id": "b", "title": "b", "write_surface": ["a.txt"], "depends_on": ["a"]}]  # fmt: skip
    rewrite = [{"id": "a", "title": "Write a.txt with one line", "write_surface": ["a.txt"]}]
    script = {
        "stories": [
            replan("split", two),
            replan("rewrite", rewrite) | {"match": {"id": "baro-replan-S1-repair"}},
            FAILS,
            {"match": {"id": "S1-1"}, "steps": [{"write": "a.txt", "content": "a\n"}]},
        ]
    }
    story = s.Story(id="S1", title="Add a.txt", write_surface=["a.txt"])
    request = request_for(
        repo, "add a.txt", script, mode_request="focused", plan=[story], replan=True
    )
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert [(st["id"], st["status"]) for st in report.stories] == [
        ("S1", "replaced"), ("S1-1", "integrated"),
    ]  # fmt: skip
    replanned = [e for e in await replay(bus, request.run_id) if isinstance(e, s.StoryReplanned)]
    (only,) = replanned
    assert only.decision == "rewrite" and only.note is not None
    assert "a split here is none" in only.note, "the split was refused, its repair used"
