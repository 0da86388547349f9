"""The conductor's repair decisions, as a pure function: what a failed attempt leads to."""

from __future__ import annotations

from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, finish, integrated, submitted

FAILED_CHECK = s.CheckResult(
    command="pytest -q",
    origin="configured",
    result="failed",
    exit_code=1,
    output="E   AssertionError: 3 != 2\n1 failed",
)


def one_story(limits: s.Limits | None = None) -> Driver:
    d = Driver()
    d.feed(submitted(mode_request="focused", limits=limits or s.Limits()))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    return d


def gate_failed(attempt: int, base: str = "base") -> s.StoryFinished:
    return finish(
        "S1",
        attempt=attempt,
        status="failed",
        exit_reason="checks_failed",
        error="pytest -q: failed (exit code 1)",
        bundle=f"b-S1-{attempt}",
        base_commit=base,
        checks=[FAILED_CHECK],
    )


def test_failing_checks_lead_to_one_repair_turn_on_the_attempts_own_result() -> None:
    d = one_story()
    d.feed(gate_failed(1))
    first, repair = d.commands(s.RunStory)
    assert first.repair == [] and first.resume is None
    assert repair.attempt == 2 and repair.base_commit == "base"
    assert repair.resume == s.Resume(attempt=1, bundle="b-S1-1", head="h-S1-1")
    (note,) = repair.repair
    assert note.kind == "checks" and "AssertionError: 3 != 2" in note.text
    assert "$ pytest -q" in note.text
    (decision,) = d.rec.decisions
    assert decision.action == "repair" and decision.story_id == "S1"
    assert [e.decision for e in d.commands(s.RunDecision)] == [decision]
    assert [b.kind for b in d.rec.story("S1").setbacks] == ["checks"]

    d.feed(finish("S1", attempt=2))  # the repair passed its checks
    assert d.rec.story("S1").status == "finished"
    d.feed(integrated("S1", attempt=2))
    assert d.rec.story("S1").status == "integrated"


def test_checks_that_fail_after_the_repair_turn_fail_the_story() -> None:
    d = one_story(s.Limits(heals=0))  # no replanning
    d.feed(gate_failed(1))
    d.feed(gate_failed(2))
    story = d.rec.story("S1")
    assert story.status == "failed"
    assert story.reason == "its checks failed again: pytest -q: failed (exit code 1)"
    assert len(d.commands(s.RunStory)) == 2, "one repair turn, no more"


def test_an_agent_failure_is_retried_with_the_failure_in_the_prompt_from_the_base() -> None:
    d = one_story()
    d.feed(finish("S1", status="timeout", exit_reason="timeout", error="no result in 120s"))
    _, retry = d.commands(s.RunStory)
    assert retry.resume is None and retry.base_commit == "base"
    (note,) = retry.repair
    assert note.kind == "failure" and "ran out of time" in note.text and "120s" in note.text
    assert d.rec.decisions[-1].action == "retry"


def test_an_identical_failure_is_not_repeated() -> None:
    d = one_story(s.Limits(retries=3, heals=0))
    d.feed(finish("S1", status="failed", exit_reason="agent_error", error="tool Bash failed 3x"))
    d.feed(
        finish(
            "S1", attempt=2, status="failed", exit_reason="agent_error", error="tool Bash failed 5x"
        )
    )
    story = d.rec.story("S1")
    assert story.status == "failed" and len(d.commands(s.RunStory)) == 2
    assert story.reason is not None and "attempt 1 failed the same way" in story.reason
    (a, b) = story.setbacks
    assert a.signature == b.signature, "numbers do not make two failures different"


def test_a_different_failure_may_be_retried_within_the_retries() -> None:
    d = one_story(s.Limits(retries=3))
    d.feed(finish("S1", status="failed", exit_reason="no_changes", error="nothing changed"))
    d.feed(finish("S1", attempt=2, status="timeout", exit_reason="timeout", error="no result"))
    assert d.rec.story("S1").status == "assigned" and len(d.commands(s.RunStory)) == 3


def test_a_repair_turn_keeps_the_attempts_base_when_the_head_moved() -> None:
    d = Driver()
    d.feed(submitted(mode_request="parallel", limits=s.Limits(parallelism=2)))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    stories = [
        s.Story(id="A", title="a", write_surface=["a.py"]),
        s.Story(id="S1", title="b", write_surface=["b.py"]),
    ]
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))
    d.feed(finish("A"))
    d.feed(s.StoryIntegrated(run_id=RUN, story_id="A", attempt=1, integration_commit="i-A",
                             integration_bundle="ib-A"))  # fmt: skip
    d.feed(gate_failed(1))
    repair = [m for m in d.commands(s.RunStory) if m.story.id == "S1"][-1]
    assert repair.base_commit == "base" and repair.base_bundle is None
    assert repair.resume is not None and repair.resume.head == "h-S1-1"
