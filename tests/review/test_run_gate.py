"""The run gate in the conductor, as a pure function: the integrated result's checks
before delivery; one repair story when they fail, then needs_attention."""

from __future__ import annotations

from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, finish, integrated, submitted

FAILED = s.CheckResult(
    command="make test", result="failed", exit_code=2, output="FAIL test_total: 3 != 2"
)
PASSED = s.CheckResult(command="make test", result="passed", exit_code=0)


def integrated_run(run_checks: list[str] | None = None) -> Driver:
    d = Driver()
    d.feed(submitted(mode_request="focused"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base", run_checks=run_checks or ["make test"]))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    d.feed(finish("S1"))
    d.feed(integrated("S1"))
    return d


def gate(round: int, head: str, *results: s.CheckResult) -> s.RunGateChecked:
    return s.RunGateChecked(run_id=RUN, round=round, head=head, checks=list(results))


def test_the_gate_runs_before_delivery_and_its_results_go_with_it() -> None:
    d = integrated_run()
    (ask,) = d.commands(s.GateRun)
    assert (ask.head, ask.round) == ("i-S1", 1) and not d.commands(s.DeliverRun)
    d.feed(gate(1, "i-S1", PASSED))
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.gate == [PASSED]
    assert d.feed(gate(1, "i-S1", PASSED)) == [], "a duplicate changes nothing"


def test_no_gate_without_run_checks() -> None:
    d = Driver()
    d.feed(submitted(mode_request="focused"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    d.feed(finish("S1"))
    d.feed(integrated("S1"))
    assert not d.commands(s.GateRun) and d.commands(s.DeliverRun)[0].gate is None


def test_a_failed_gate_gets_one_repair_story_on_the_integrated_result() -> None:
    d = integrated_run()
    d.feed(gate(1, "i-S1", FAILED))
    assert d.rec.state == "running" and not d.commands(s.DeliverRun)
    repair = d.rec.story("R1")
    assert repair is not None and d.rec.run_repair == "R1"
    (run,) = [m for m in d.commands(s.RunStory) if m.story.id == "R1"]
    assert run.base_commit == "i-S1"
    (note,) = run.repair
    assert note.kind == "run_checks" and "FAIL test_total: 3 != 2" in note.text
    assert d.rec.decisions[-1].action == "run_repair" and d.rec.decisions[-1].stories == ["R1"]

    d.feed(finish("R1"))
    d.feed(integrated("R1"))
    assert [g.round for g in d.commands(s.GateRun)] == [1, 2]
    assert d.commands(s.GateRun)[-1].head == "i-R1"
    d.feed(gate(2, "i-R1", PASSED))
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.gate == [PASSED]


def test_a_gate_that_fails_after_its_repair_delivers_and_needs_attention() -> None:
    d = integrated_run()
    d.feed(gate(1, "i-S1", FAILED))
    d.feed(finish("R1"))
    d.feed(integrated("R1"))
    d.feed(gate(2, "i-R1", FAILED))
    assert len([m for m in d.commands(s.RunStory) if m.story.id.startswith("R")]) == 1
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.gate == [FAILED]
    # a result whose checks still fail is not complete: it goes out as a checkpoint
    failing = "the run's checks failed: make test: failed (exit code 2)"
    assert deliver.checkpoint == s.Checkpoint(missing=[failing], integrated=["S1", "R1"])
    assert d.rec.decisions[-1].action == "checkpoint"
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x-checkpoint", base="base", head="c-R1",
                          verify="failed", checks=[FAILED], partial=True))  # fmt: skip
    assert d.rec.state == "needs_attention"
    assert d.rec.reason == (
        f"a partial result, delivered as baro/x-checkpoint (a checkpoint, not published): {failing}"
    )


def test_the_repair_story_is_not_replanned() -> None:
    d = integrated_run()
    d.feed(gate(1, "i-S1", FAILED))
    d.feed(finish("R1", status="failed", exit_reason="agent_error", error="no idea"))
    d.feed(finish("R1", attempt=2, status="failed", exit_reason="agent_error", error="none"))
    assert d.rec.story("R1").status == "failed" and not d.commands(s.ReplanStory)
    assert not d.commands(s.GateRun)[1:], "nothing new was integrated to check"
    assert d.commands(s.DeliverRun), "what was integrated is delivered, marked by its gate"


def test_a_skipped_gate_delivers_as_unknown() -> None:
    d = integrated_run()
    skipped = s.CheckResult(command="cargo test", result="skipped", note="cargo is not installed")
    d.feed(gate(1, "i-S1", skipped))
    (deliver,) = d.commands(s.DeliverRun)
    assert deliver.gate == [skipped] and not d.rec.stories[1:]


def test_a_resume_during_the_gate_asks_for_it_again() -> None:
    d = integrated_run()
    owner = s.RunOwner(host="h", pid=1, started=1)
    d.feed(s.RunInterrupted(run_id=RUN, reason="owner died", owner=owner))
    d.feed(s.RunResumed(run_id=RUN, owner=owner))
    first, again = [(i, (m.head, m.round)) for i, m in d.sent if isinstance(m, s.GateRun)]
    assert first[1] == again[1] == ("i-S1", 1)
    assert first[0] != again[0], "the same gate, under a new message id"
