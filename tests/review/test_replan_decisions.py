"""Replanning in the conductor, as a pure function: a story that failed twice is split,
rewritten or given up, under the run's mode and caps and its healing budget."""

from __future__ import annotations

from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, decided, finish, integrated, submitted


def fail(story_id: str, attempt: int, error: str) -> s.StoryFinished:
    return finish(
        story_id, attempt=attempt, status="failed", exit_reason="agent_error", error=error
    )


def failed_twice(d: Driver, story_id: str = "S1") -> s.ReplanStory:
    d.feed(fail(story_id, 1, "the tool call failed"))
    d.feed(fail(story_id, 2, "ran out of ideas"))
    return d.commands(s.ReplanStory)[-1]


def focused(heals: int = 3, retries: int = 1) -> Driver:
    d = Driver()
    limits = s.Limits(heals=heals, retries=retries)
    d.feed(submitted(mode_request="focused", limits=limits, replan=True))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    story = s.Story(id="S1", title="fix", write_surface=["app.py"], acceptance=["it works"])
    d.feed(s.PlanProposed(run_id=RUN, stories=[story]))
    return d


def answer(decision: s.ReplanDecision, stories: list[s.Story], round: int = 1) -> s.StoryReplanned:
    return s.StoryReplanned(
        run_id=RUN, story_id="S1", round=round, decision=decision, reason="too big at once",
        stories=stories, tokens=s.TokenUsage(input=50, output=5),
    )  # fmt: skip


def test_a_focused_story_that_failed_twice_is_rewritten_and_stays_one_story() -> None:
    d = focused()
    ask = failed_twice(d)
    assert (ask.story.id, ask.room, ask.round, ask.mode) == ("S1", 1, 1, "focused")
    assert ask.failures == [
        "attempt 1: failed: the tool call failed",
        "attempt 2: failed: ran out of ideas",
    ]
    assert d.rec.story("S1").status == "replanning" and d.rec.heals == 1
    assert len(d.commands(s.RunStory)) == 2, "no third attempt of the same story"

    d.feed(answer("rewrite", [s.Story(id="X", title="fix it in two lines")]))
    old, new = d.rec.stories
    assert old.status == "replaced" and old.reason == "replaced by S1-1: too big at once"
    assert new.story.id == "S1-1" and new.status == "assigned"
    assert new.story.write_surface == ["app.py"] and new.story.acceptance == ["it works"]
    assert [x.action for x in d.rec.decisions][-2:] == ["replan", "rewrite"]
    assert d.rec.decisions[-1].stories == ["S1-1"]
    assert old.tokens.input == 2 * 100 + 50, "the question's tokens are the story's"

    d.feed(finish("S1-1"))
    d.feed(integrated("S1-1"))
    assert len(d.commands(s.DeliverRun)) == 1
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-S1-1"))
    assert d.rec.state == "delivered", d.rec.reason


def test_a_split_does_not_fit_a_focused_run_and_the_story_fails_saying_why() -> None:
    d = focused()
    failed_twice(d)
    two = [s.Story(id="A", title="a"), s.Story(id="B", title="b", depends_on=["A"])]
    d.feed(answer("split", two))
    story = d.rec.story("S1")
    assert story.status == "failed" and len(d.rec.stories) == 1
    assert story.reason == (
        "failed: ran out of ideas; its replanning could not be applied: 2 stories in place of "
        "one; at most 1 fit here"
    )


def test_a_split_runs_one_after_the_other_and_what_depended_on_it_waits_for_both() -> None:
    d = Driver()
    d.feed(submitted(mode_request="auto", replan=True))
    d.feed(decided("sequential", max_stories=4))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    plan = [
        s.Story(id="S1", title="core", write_surface=["core/*.py"]),
        s.Story(id="S2", title="docs", write_surface=["README.md"], depends_on=["S1"]),
    ]
    d.feed(s.PlanProposed(run_id=RUN, stories=plan))
    ask = failed_twice(d)
    assert ask.room == 3
    parts = [
        s.Story(id="b", title="use it", write_surface=["core/use.py"], depends_on=["a"]),
        s.Story(id="a", title="add it", write_surface=["core/add.py"]),
    ]
    d.feed(answer("split", parts))
    by_id = {st.story.id: st for st in d.rec.stories}
    assert by_id["S1-1"].story.title == "add it" and by_id["S1-1"].story.depends_on == []
    assert by_id["S1-2"].story.depends_on == ["S1-1"]
    assert by_id["S2"].story.depends_on == ["S1-2"]
    assert [m.story.id for m in d.commands(s.RunStory)][-1] == "S1-1"


def test_new_stories_outside_the_failed_storys_surface_are_refused() -> None:
    d = focused()
    failed_twice(d)
    d.feed(answer("rewrite", [s.Story(id="X", title="x", write_surface=["other.py"])]))
    story = d.rec.story("S1")
    assert story.status == "failed" and "outside S1's write surface (app.py)" in (
        story.reason or ""
    )


def test_give_up_fails_the_story_with_the_reason_and_a_duplicate_changes_nothing() -> None:
    d = focused()
    failed_twice(d)
    d.feed(answer("give_up", []))
    reason = d.rec.story("S1").reason or ""
    assert reason.startswith("failed: ran out of ideas") and reason.endswith(
        "; given up after replanning: too big at once"
    ), "what made it fail stays in its reason"
    assert d.feed(answer("give_up", [])) == []
    assert d.rec.story("S1").tokens.input == 250


def test_the_healing_budget_bounds_replanning() -> None:
    d = focused(heals=1)
    failed_twice(d)
    d.feed(answer("rewrite", [s.Story(id="X", title="again")]))
    d.feed(fail("S1-1", 1, "still broken"))
    d.feed(fail("S1-1", 2, "broken in another way"))
    story = d.rec.story("S1-1")
    assert story.status == "failed" and len(d.commands(s.ReplanStory)) == 1
    assert d.rec.heals == 1


def test_replanning_is_on_by_default_for_every_backend_and_off_when_asked() -> None:
    # the scripted backend too: it answers its questions without tools
    assert submitted().heals == 3 and submitted(backend="claude").heals == 3
    d = Driver()
    d.feed(submitted(mode_request="focused", replan=False))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    d.feed(fail("S1", 1, "the tool call failed"))
    d.feed(fail("S1", 2, "ran out of ideas"))
    assert d.rec.story("S1").status == "failed" and not d.commands(s.ReplanStory)
    assert d.rec.request.heals == 0


def test_an_identical_failure_goes_to_replanning_instead_of_a_third_attempt() -> None:
    d = focused(retries=3)
    d.feed(fail("S1", 1, "tool Bash failed 3x"))
    d.feed(fail("S1", 2, "tool Bash failed 4x"))
    assert len(d.commands(s.RunStory)) == 2 and len(d.commands(s.ReplanStory)) == 1
    assert "failed the same way" in (d.rec.story("S1").reason or "")
