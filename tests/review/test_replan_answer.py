"""The replanning question's answer, read strictly: one repair, else the story is given up."""

from __future__ import annotations

import json

import pytest

from baro_planner import replan
from baro_shared.oneshot import OneShotResult
from baro_shared.schemas import Story, TokenUsage

STORY = Story(id="S1", title="Add a and b", write_surface=["a.txt", "b.txt"])
TWO = [
    {"id": "a", "title": "add a", "write_surface": ["a.txt"]},
    {"id": "b", "title": "add b", "write_surface": ["b.txt"], "depends_on": ["a"]},
]

OUTSIDE = {"id": "a", "title": "x", "write_surface": ["c.txt"]}
SELF_DEPENDENT = {"id": "a", "title": "x", "depends_on": ["a"]}


def answer(**fields: object) -> str:
    return json.dumps({"decision": "split", "reason": "smaller steps", "stories": TWO} | fields)


@pytest.mark.parametrize(
    ("text", "room", "problem"),
    [
        ("let me think", 3, "no JSON object"),
        (answer(decision="retry"), 3, "decision must be"),
        (answer(reason=""), 3, "reason must be a non-empty string"),
        (answer(extra=1), 3, "unknown key 'extra'"),
        (answer(), 1, "a split here is none"),
        (answer(decision="rewrite"), 3, "a rewrite is exactly one story"),
        (answer(stories=[OUTSIDE, {"id": "b", "title": "y"}]), 3, "would change c.txt"),
        (answer(stories=[SELF_DEPENDENT, {"id": "b", "title": "y"}]), 3, "a"),
    ],
)
def test_an_unusable_answer_says_what_is_wrong(text: str, room: int, problem: str) -> None:
    with pytest.raises(replan.ReplanError, match=problem):
        replan.read_replan(text, room, STORY.write_surface)


def test_give_up_needs_no_stories() -> None:
    decision, reason, stories = replan.read_replan(
        json.dumps({"decision": "give_up", "reason": "the API does not exist"}), 3, []
    )
    assert (decision, reason, stories) == ("give_up", "the API does not exist", [])


async def test_garbage_twice_gives_the_story_up_saying_why() -> None:
    texts = iter(["{not json", '{"decision": "maybe"}'])
    purposes: list[str] = []

    async def ask(prompt: str, purpose: str) -> OneShotResult:
        purposes.append(purpose)
        text = next(texts)
        return OneShotResult(ok=True, text=text, texts=[text], usage=TokenUsage(input=7))

    out = await replan.replan_story("goal", "focused", STORY, ["attempt 1: failed"], 1, ask, "pi")
    assert out.decision == "give_up" and out.stories == []
    assert out.reason.startswith("no usable replanning answer, even after one repair")
    assert purposes == ["replan-S1", "replan-S1-repair"] and out.tokens.input == 14


def test_the_question_offers_a_split_only_where_there_is_room() -> None:
    one = replan.replan_prompt("goal", "focused", STORY, ["attempt 1: failed: x"], 1)
    three = replan.replan_prompt("goal", "parallel", STORY, ["attempt 1: failed: x"], 3)
    assert "- split:" not in one and "- rewrite:" in one
    assert "- split: two to 3 smaller stories" in three
    assert "Files it may change: a.txt, b.txt" in one and "1. attempt 1: failed: x" in one
