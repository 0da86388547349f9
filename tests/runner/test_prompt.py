"""The agent's prompt carries the goal's context: a vague goal's reading, and for a
follow-up the earlier goals and the commits its branch already holds."""

from __future__ import annotations

from baro_runner.prompt import build_prompt
from baro_shared import schemas as s

READING = "Make one small, behaviour-preserving cleanup in the most obvious spot."


def command(**kw: object) -> s.RunStory:
    fields: dict[str, object] = dict(
        run_id="r1",
        story=s.Story(id="S1", title="Make it better"),
        attempt=1,
        goal="make it better",
        mode="focused",
        source=s.RepoSource(kind="path", location="/repo"),
        base_commit="base",
    )
    fields.update(kw)
    return s.RunStory(**fields)  # type: ignore[arg-type]


def test_a_vague_goal_is_followed_by_its_reading() -> None:
    prompt = build_prompt(command(interpretation=READING))
    goal_at = prompt.index("Goal of the whole run: make it better")
    reading_at = prompt.index(f"this reading is the whole task: {READING}")
    assert goal_at < reading_at < prompt.index("Your story (S1)")


def test_a_concrete_goal_has_no_reading() -> None:
    assert "reading" not in build_prompt(command(goal="fix the off-by-one in countdown"))


def test_a_follow_up_lists_the_earlier_goals_and_the_branch_s_commits() -> None:
    held = s.FollowUp(
        goals=["fix the off-by-one\nin countdown", "x" * 2000],
        commits=["abc1234 Fix the off-by-one in countdown", "def5678 Add a test"],
        more_commits=3,
    )
    prompt = build_prompt(command(goal="also handle the empty list", follow_up=held))
    assert "This run follows up on earlier work" in prompt
    lines = prompt.splitlines()
    earlier = lines.index("Earlier goals of this branch (oldest first):")
    assert lines[earlier + 1] == "- fix the off-by-one in countdown"
    assert lines[earlier + 2] == "- " + "x" * 499 + "…", "a long goal is cut"
    listed = lines.index("The branch's commits (newest first):")
    assert lines[listed + 1 : listed + 4] == [
        "- abc1234 Fix the off-by-one in countdown",
        "- def5678 Add a test",
        "- and 3 older",
    ]
    assert prompt.index("Your story (S1)") < prompt.index("This run follows up")


def test_a_run_that_follows_nothing_says_nothing_of_it() -> None:
    assert "follows up" not in build_prompt(command())
    assert "follows up" not in build_prompt(command(follow_up=s.FollowUp()))


def test_the_clarified_goal_follows_the_story_with_every_list() -> None:
    envelope = s.GoalEnvelope(
        objective="make it faster — the search endpoint",
        acceptance_criteria=["p95 under 200 ms"],
        constraints=["no new dependency"],
        non_goals=["the admin pages"],
        assumptions=['"Which file?" was not answered.'],
    )
    prompt = build_prompt(command(envelope=envelope))
    agreed = prompt.index("What was agreed before the run")
    assert prompt.index("Your story (S1)") < agreed < prompt.index("Rules:")
    for line in (
        "**Objective:** make it faster — the search endpoint",
        "- p95 under 200 ms",
        "- no new dependency",
        "- the admin pages",
        '- "Which file?" was not answered.',
    ):
        assert line in prompt[agreed:]
    assert "What was agreed" not in build_prompt(command())
