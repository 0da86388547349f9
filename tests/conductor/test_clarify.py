"""A run that asks before guessing, as the conductor's pure transitions: awaiting_answers,
its questions on the record and in an event, the answers sent back to the intake, the
clarified goal in the plan request and every story, the timeout, and --clarify skip."""

from __future__ import annotations

from baro_conductor import core
from baro_shared import schemas as s
from tests.conductor.test_core import RUN, T0, Driver, submitted

QUESTIONS = [
    s.Question(id="target", text="Which file?", why="vague"),
    s.Question(id="outcome", text="What should happen?", why="vague"),
    s.Question(id="untouched", text="What must not change?", why="vague"),
]
ENVELOPE = s.GoalEnvelope(
    objective="make it faster — the search endpoint in api/search.py",
    acceptance_criteria=["p95 under 200 ms"],
    assumptions=['"What must not change?" was not answered.'],
)


def vague_decision(round: int = 1, **kw: object) -> s.IntakeDecided:
    fields: dict[str, object] = dict(
        mode="focused",
        confidence=0.9,
        reason="vague goal",
        vague=True,
        interpretation="the smallest fix",
        round=round,
    )
    fields.update(kw)
    return s.IntakeDecided(run_id=RUN, decision=s.IntakeDecision(**fields))  # type: ignore[arg-type]


def asked_run(**kw: object) -> Driver:
    d = Driver()
    d.feed(submitted(goal="make it faster", clarify="ask", **kw))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base", file_list="api/search.py\n"))
    d.feed(vague_decision(questions=QUESTIONS, question_source="offline"))
    return d


def test_a_vague_goal_waits_for_answers_with_its_questions_on_the_record_and_an_event() -> None:
    d = asked_run()
    assert d.rec.state == "awaiting_answers"
    assert d.rec.clarification is not None and d.rec.clarification.status == "asked"
    assert [q.id for q in d.rec.clarification.questions] == ["target", "outcome", "untouched"]
    (asked,) = d.commands(s.QuestionsAsked)
    assert asked.questions == QUESTIONS
    (notified,) = d.commands(s.NotifyRun)
    assert notified.state == "awaiting_answers"
    assert d.commands(s.PlanGoal) == []
    (first,) = d.commands(s.ClassifyGoal)
    assert first.ask_model and first.round == 1


def test_the_answers_go_back_to_the_intake_and_the_envelope_reaches_plan_and_story() -> None:
    d = asked_run()
    d.feed(
        s.AnswersGiven(
            run_id=RUN,
            by="terminal",
            answers=[
                s.GivenAnswer(question_id="target", text="  the search endpoint "),
                s.GivenAnswer(question_id="outcome", text="p95 under 200 ms"),
                s.GivenAnswer(question_id="untouched", text=""),
                s.GivenAnswer(question_id="made-up", text="dropped"),
            ],
        )
    )
    assert d.rec.state == "classifying"
    clarification = d.rec.clarification
    assert clarification is not None and clarification.status == "answered"
    assert clarification.answered_by == "terminal"
    assert [a.question_id for a in clarification.answers] == ["target", "outcome", "untouched"]
    second = d.commands(s.ClassifyGoal)[-1]
    assert second.round == 2 and second.answers == clarification.answers
    # the first decision delivered again changes nothing while the answered goal is decided
    assert d.feed(vague_decision(questions=QUESTIONS)) == []
    d.feed(vague_decision(round=2, vague=False, envelope=ENVELOPE))
    assert d.rec.envelope == ENVELOPE and d.rec.state == "planning"
    (plan,) = d.commands(s.PlanGoal)
    assert plan.goal == ENVELOPE.objective and plan.envelope == ENVELOPE
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="speed up search")]))
    (story,) = d.commands(s.RunStory)
    assert story.envelope == ENVELOPE and story.goal == "make it faster"
    summary = core.summary_markdown(d.rec)
    assert "What should happen? — p95 under 200 ms" in summary
    assert "What must not change? — (not answered)" in summary
    assert "p95 under 200 ms" in summary and ENVELOPE.objective in summary


def test_answers_for_a_run_not_waiting_change_nothing() -> None:
    d = asked_run()
    d.feed(s.AnswersGiven(run_id=RUN, answers=[]))
    assert d.feed(s.AnswersGiven(run_id=RUN, answers=[])) == []


def test_an_unanswered_run_is_cancelled_with_a_reason_after_the_timeout() -> None:
    d = asked_run()
    asked_at = d.rec.clarification.asked_at  # type: ignore[union-attr]
    assert core.unanswered(d.rec, asked_at + 59, 60) is None
    cancel = core.unanswered(d.rec, asked_at + 61, 60)
    assert cancel is not None and cancel.unanswered
    d.feed(cancel)
    assert d.rec.state == "cancelled"
    assert "not answered within 1 min" in (d.rec.reason or "")
    assert d.rec.clarification.status == "timed_out"  # type: ignore[union-attr]


def test_a_late_timeout_after_the_answers_changes_nothing() -> None:
    d = asked_run()
    cancel = core.unanswered(d.rec, T0 + 10_000, 60)
    assert cancel is not None
    d.feed(s.AnswersGiven(run_id=RUN, answers=[]))
    assert d.feed(cancel) == []
    assert d.rec.state == "classifying"


def test_skip_records_the_questions_and_goes_on_as_before() -> None:
    d = Driver()
    d.feed(submitted(goal="make it faster"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base", file_list="a.py\n"))
    d.feed(vague_decision(questions=QUESTIONS))
    assert d.rec.state == "planning"
    assert d.rec.clarification is not None and d.rec.clarification.status == "skipped"
    assert "--clarify skip" in (d.rec.clarification.reason or "")
    assert d.commands(s.QuestionsAsked) == []
    assert not d.commands(s.ClassifyGoal)[0].ask_model


def test_a_question_about_baro_itself_ends_the_run_with_the_answer() -> None:
    d = Driver()
    d.feed(submitted(goal="how do I cancel a run?", clarify="ask"))
    d.feed(vague_decision(tool_answer="Press Ctrl-C or run baro cancel RUN."))
    assert d.rec.state == "cancelled"
    assert "baro cancel RUN" in (d.rec.reason or "")


def test_a_resumed_run_asks_the_answered_goal_again() -> None:
    d = asked_run(owner=s.RunOwner(pid=1, host="h", started=1))
    d.feed(s.RunInterrupted(run_id=RUN, reason="gone"))
    d.feed(s.AnswersGiven(run_id=RUN, answers=[]))
    assert [c.round for c in d.commands(s.ClassifyGoal)] == [1]  # parked: nothing sent
    d.feed(s.RunResumed(run_id=RUN))
    assert [c.round for c in d.commands(s.ClassifyGoal)] == [1, 2]
