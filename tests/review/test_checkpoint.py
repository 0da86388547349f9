"""Partial results in the conductor, as a pure function: before it asks for delivery it
knows whether the result is complete; a partial one goes out as a checkpoint (or, with
--no-checkpoint, as no branch), and the run says what is missing and where it is."""

from __future__ import annotations

from baro_conductor import core
from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, finish, integrated, started_to_plan, submitted
from tests.review.test_run_gate import FAILED, PASSED, gate, integrated_run

TWO = [
    s.Story(id="A", title="a", write_surface=["a.py"]),
    s.Story(id="B", title="b", write_surface=["b.py"]),
]


def given_up(story_id: str) -> s.StoryReplanned:
    return s.StoryReplanned(
        run_id=RUN, story_id=story_id, round=1, decision="give_up", reason="no smaller step"
    )


def one_failed(**request: object) -> Driver:
    """Two parallel stories: A integrated, B failed for good (retried once, then given up
    by its replanning)."""
    d = Driver()
    d.feed(submitted(**request))
    d.feed(s.IntakeDecided(run_id=RUN, decision=s.IntakeDecision(
        mode="parallel", confidence=0.9, reason="r", caps=s.Caps(max_stories=2, parallelism=2))))  # fmt: skip
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=TWO))
    d.feed(finish("A"))
    d.feed(integrated("A"))
    d.feed(finish("B", status="failed", error="the tests would not build"))
    d.feed(finish("B", attempt=2, status="failed", error="still no build"))
    d.feed(given_up("B"))
    return d


def test_a_complete_result_is_no_checkpoint() -> None:
    d = Driver()
    started_to_plan(d, TWO, mode="parallel", par=2)
    for sid in ("A", "B"):
        d.feed(finish(sid))
        d.feed(integrated(sid))
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.checkpoint is None and d.rec.checkpoint is None
    assert "Partial result" not in deliver.summary_markdown
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-B"))
    assert d.rec.state == "delivered"


def test_a_story_that_failed_for_good_makes_the_delivery_a_checkpoint() -> None:
    d = one_failed()
    assert d.rec.story("B").status == "failed"
    (deliver,) = d.commands(s.DeliverRun)
    checkpoint = deliver.checkpoint
    assert checkpoint is not None and checkpoint.deliver
    assert checkpoint.integrated == ["A"]
    (missing,) = checkpoint.missing
    assert missing.startswith("B failed: ") and "still no build" in missing
    assert d.rec.checkpoint == checkpoint
    # the decision is recorded (summary, --json, API) and the PR body / report says so
    assert d.rec.decisions[-1].action == "checkpoint"
    assert "delivered as a checkpoint branch" in d.rec.decisions[-1].reason
    assert "**Partial result (a checkpoint, not the whole goal).** Not in it:" in (
        deliver.summary_markdown
    )
    assert f"- {missing}" in deliver.summary_markdown

    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x-checkpoint", base="base", head="c",
                          partial=True))  # fmt: skip
    assert d.rec.state == "needs_attention"
    assert d.rec.reason == (
        f"a partial result, delivered as baro/x-checkpoint (a checkpoint, not published): {missing}"
    )


def test_no_checkpoint_asks_for_no_branch_and_says_where_the_work_is() -> None:
    d = one_failed(checkpoint=False)
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.checkpoint is not None and not deliver.checkpoint.deliver
    assert "not delivered as a branch (--no-checkpoint)" in d.rec.decisions[-1].reason
    d.feed(s.RunDelivered(run_id=RUN, branch=None, base="base", head="i-A"))
    assert d.rec.state == "needs_attention"
    assert d.rec.reason is not None and d.rec.reason.startswith(
        f"a partial result, delivered as no branch (--no-checkpoint; kept at "
        f"refs/baro/{RUN}/integration): B failed: "
    )


def test_nothing_integrated_is_no_checkpoint() -> None:
    d = Driver()
    started_to_plan(d, [TWO[0]])
    d.feed(finish("A", status="failed", error="boom"))
    d.feed(finish("A", attempt=2, status="failed", error="bang"))
    d.feed(given_up("A"))
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.checkpoint is None, "there is no result to mark"


def test_a_gate_that_passes_after_its_repair_is_complete() -> None:
    d = integrated_run()
    d.feed(gate(1, "i-S1", FAILED))
    d.feed(finish("R1"))
    d.feed(integrated("R1"))
    d.feed(gate(2, "i-R1", PASSED))
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.checkpoint is None


def test_a_resumed_delivery_decides_the_checkpoint_once() -> None:
    d = one_failed()
    d.feed(s.RunInterrupted(run_id=RUN, reason="the owner died"))
    d.feed(s.RunResumed(run_id=RUN))
    delivers = d.commands(s.DeliverRun)
    assert len(delivers) == 2 and delivers[0].checkpoint == delivers[1].checkpoint
    assert [x.action for x in d.rec.decisions].count("checkpoint") == 1


def test_partial_result_is_a_plain_function_of_the_record() -> None:
    d = one_failed()
    rec = d.rec
    assert core.partial_result(rec) == rec.checkpoint
    rec.stories[1].status = "replaced"  # replaced by stories that were integrated
    assert core.partial_result(rec) is None
