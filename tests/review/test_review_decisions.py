"""The critic's verdicts in the conductor, as a pure function: approve, abstain, revise (one
repair turn with the critique), and what a verdict that comes too late changes."""

from __future__ import annotations

from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, finish, integrated, submitted

CRITERIA = ["app.VALUE is 2"]
TOKENS = s.TokenUsage(input=300, output=20)


def one_story(
    review: bool | None = True, acceptance: list[str] = CRITERIA, heals: int = 3
) -> Driver:
    d = Driver()
    d.feed(submitted(mode_request="focused", review=review, limits=s.Limits(heals=heals)))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    story = s.Story(id="S1", title="set VALUE", acceptance=acceptance)
    d.feed(s.PlanProposed(run_id=RUN, stories=[story]))
    return d


def verdict(v: s.ReviewVerdict, attempt: int = 1, **kw: object) -> s.StoryReviewed:
    fields: dict[str, object] = dict(
        run_id=RUN, story_id="S1", attempt=attempt, verdict=v, tokens=TOKENS
    )
    fields.update(kw)
    return s.StoryReviewed(**fields)  # type: ignore[arg-type]


def test_a_story_with_criteria_is_reviewed_before_it_is_integrated() -> None:
    d = one_story()
    (run,) = d.commands(s.RunStory)
    assert run.review, "the runner is asked for the change's diff"
    check = s.CheckResult(command="pytest -q", result="passed", exit_code=0)
    d.feed(finish("S1", diff="+VALUE = 2\n", checks=[check]))
    (ask,) = d.commands(s.ReviewStory)
    assert (ask.story.id, ask.attempt, ask.diff, ask.checks) == ("S1", 1, "+VALUE = 2\n", [check])
    assert d.rec.story("S1").status == "reviewing"
    assert not d.integrations(), "nothing is integrated before the verdict"

    d.feed(verdict("approve"))
    story = d.rec.story("S1")
    assert story.status == "finished" and len(d.integrations()) == 1
    assert story.tokens == s.TokenUsage(input=400, cached_input=40, output=30)
    assert d.rec.totals.tokens == story.tokens, "the critic's tokens are the story's"
    assert [(r.attempt, r.verdict) for r in story.reviews] == [(1, "approve")]
    assert [x.action for x in d.rec.decisions] == ["approve"]
    assert d.feed(verdict("approve")) == [], "a duplicate verdict changes nothing"
    assert d.rec.story("S1").tokens == story.tokens


def test_revise_gets_one_repair_turn_with_the_critique_then_the_critic_again() -> None:
    d = one_story()
    d.feed(finish("S1"))
    d.feed(verdict("revise", reasons=["VALUE is 3, the story asks for 2"]))
    _, repair = d.commands(s.RunStory)
    assert repair.attempt == 2 and repair.base_commit == "base"
    assert repair.resume == s.Resume(attempt=1, bundle="b-S1-1", head="h-S1-1")
    (note,) = repair.repair
    assert note.kind == "critique" and "- VALUE is 3, the story asks for 2" in note.text
    assert [x.action for x in d.rec.decisions] == ["repair"]

    d.feed(finish("S1", attempt=2))
    assert [a.attempt for a in d.commands(s.ReviewStory)] == [1, 2]
    d.feed(verdict("approve", attempt=2))
    d.feed(integrated("S1", attempt=2))
    assert d.rec.story("S1").status == "integrated"


def test_a_second_revise_fails_the_story_with_the_critique() -> None:
    d = one_story(heals=0)  # no replanning
    d.feed(finish("S1"))
    d.feed(verdict("revise", reasons=["VALUE is 3"]))
    d.feed(finish("S1", attempt=2))
    d.feed(verdict("revise", attempt=2, reasons=["VALUE is still 3"]))
    story = d.rec.story("S1")
    assert story.status == "failed" and len(d.commands(s.RunStory)) == 2
    assert (
        story.reason == "the critic asked for changes again after its repair turn: VALUE is still 3"
    )


def test_an_abstaining_critic_lets_the_story_go_on_and_is_recorded() -> None:
    d = one_story()
    d.feed(finish("S1"))
    d.feed(verdict("abstain", note="no usable answer, even after one repair: no JSON object"))
    assert d.rec.story("S1").status == "finished"
    (decision,) = d.rec.decisions
    assert decision.action == "abstain" and "no JSON object" in decision.reason


def test_no_review_without_criteria_or_when_it_is_off() -> None:
    for d in (one_story(acceptance=[]), one_story(review=False), one_story(review=None)):
        (run,) = d.commands(s.RunStory)
        assert not run.review
        d.feed(finish("S1"))
        assert d.rec.story("S1").status == "finished" and not d.commands(s.ReviewStory)


def test_a_verdict_after_a_cancel_is_counted_and_changes_nothing() -> None:
    d = one_story()
    d.feed(finish("S1"))
    d.feed(s.CancelRequested(run_id=RUN))
    story = d.rec.story("S1")
    assert story.status == "cancelled"
    assert [a.story_id for a in d.commands(s.ArchiveAttempt)] == ["S1"], "its work is kept"
    d.feed(verdict("revise", reasons=["x"]))
    assert len(d.commands(s.RunStory)) == 1
    assert d.rec.story("S1").tokens.input == 400


def test_a_resume_during_the_review_goes_on_without_asking_again() -> None:
    d = one_story()
    d.feed(finish("S1"))
    owner = s.RunOwner(host="h", pid=1, started=1)
    d.feed(s.RunInterrupted(run_id=RUN, reason="owner died", owner=owner))
    d.feed(s.RunResumed(run_id=RUN, owner=owner))
    assert d.rec.story("S1").status == "finished" and len(d.commands(s.ReviewStory)) == 1
    assert d.rec.decisions[-1].action == "abstain"
    assert len(d.integrations()) == 1
