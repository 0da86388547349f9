"""The conductor's side of planning, as pure transitions: a plan given with the run, the
planner strategy passed on, the tokens of a failed plan, and what a cancel keeps."""

from __future__ import annotations

from baro_conductor import core
from baro_shared import schemas as s

RUN = "r1"


def submitted(**kw: object) -> s.RunSubmitted:
    fields: dict[str, object] = dict(
        run_id=RUN,
        goal="do the work",
        repo=s.RepoSource(kind="path", location="/repo", commit="base"),
        backend="scripted",
        mode_request="parallel",
        ts=1000.0,
    )
    fields.update(kw)
    return s.RunSubmitted(**fields)  # type: ignore[arg-type]


class Driver:
    def __init__(self) -> None:
        self.record: s.RunRecord | None = None
        self.sent: list[s.BusMessage] = []
        self.clock = 1000.0

    def feed(self, event: s.Event) -> list[s.BusMessage]:
        self.clock += 1
        tr = core.apply(self.record, event, self.clock)
        if tr is None:
            return []
        self.record = tr.record
        self.sent.extend(m for _, m in tr.emit)
        return [m for _, m in tr.emit]

    @property
    def rec(self) -> s.RunRecord:
        assert self.record is not None
        return self.record

    def of(self, kind: type) -> list:
        return [m for m in self.sent if isinstance(m, kind)]


GIVEN = [
    s.Story(id="A", title="a", write_surface=["a.py"]),
    s.Story(id="B", title="b", write_surface=["a.py"]),
    s.Story(id="C", title="c", write_surface=["c.py"]),
]


def test_a_given_plan_replaces_the_planner_and_is_enforced() -> None:
    d = Driver()
    d.feed(submitted(plan=GIVEN, quick=True))
    assert not d.of(s.PlanGoal)
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    assert not d.of(s.PlanGoal), "no planner is asked for a given plan (--quick: no design)"
    (proposed,) = d.of(s.PlanProposed)
    assert proposed.planner == "given" and proposed.stories == GIVEN
    d.feed(proposed)  # the conductor reads its own proposal back from the bus
    (accepted,) = d.of(s.PlanAccepted)
    assert accepted.mode == "parallel"
    assert accepted.enforcement[0] == "the plan was given with the run (3 stories)"
    assert {st.id: st.depends_on for st in accepted.stories} == {"A": [], "B": ["A"], "C": []}
    assert sorted(cmd.story.id for cmd in d.of(s.RunStory)) == ["A", "C"]


def test_a_given_parallel_plan_goes_to_the_planner_only_for_its_design_note() -> None:
    d = Driver()
    d.feed(submitted(plan=GIVEN))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    assert not d.of(s.PlanProposed)
    (cmd,) = d.of(s.PlanGoal)
    assert cmd.plan == GIVEN and cmd.design


def test_an_invalid_given_plan_is_refused_with_the_submission() -> None:
    d = Driver()
    d.feed(
        submitted(
            plan=[
                s.Story(id="A", title="a", depends_on=["B"]),
                s.Story(id="B", title="b", depends_on=["A"]),
            ],
            quick=True,
        )
    )
    assert d.rec.state == "failed"
    assert d.rec.reason == "the submission was refused: the plan: dependency cycle: A -> B -> A"
    assert not d.of(s.PrepareRun) and not d.of(s.PlanProposed), "nothing was started"


def test_the_planner_strategy_travels_with_the_plan_request() -> None:
    d = Driver()
    d.feed(submitted(planner="llm"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    (cmd,) = d.of(s.PlanGoal)
    assert cmd.strategy == "llm" and cmd.backend == "scripted"


def test_a_failed_plan_counts_its_tokens_and_says_why() -> None:
    d = Driver()
    d.feed(submitted(mode_request="sequential"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(
        s.PlanFailed(run_id=RUN, error="no usable plan", tokens=s.TokenUsage(input=50, output=5))
    )
    assert d.rec.state == "failed" and d.rec.reason == "planning failed: no usable plan"
    (finished,) = d.of(s.RunFinished)
    assert finished.totals.tokens == s.TokenUsage(input=50, output=5)


def test_cancel_keeps_the_refs_of_finished_and_integrated_work() -> None:
    d = Driver()
    d.feed(submitted(plan=GIVEN, quick=True))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(d.of(s.PlanProposed)[0])

    def finish(sid: str) -> s.StoryFinished:
        return s.StoryFinished(
            run_id=RUN,
            story_id=sid,
            attempt=1,
            status="success",
            bundle=f"b-{sid}",
            base_commit="base",
            head_commit=f"h-{sid}",
        )

    for sid in ("A", "C"):
        d.feed(s.StoryStarted(run_id=RUN, story_id=sid, attempt=1, runner="x"))
    d.feed(finish("A"))
    d.feed(s.StoryIntegrated(run_id=RUN, story_id="A", attempt=1, integration_commit="i-A"))
    d.feed(s.StoryStarted(run_id=RUN, story_id="B", attempt=1, runner="x"))
    d.feed(finish("C"))  # finished, its integration still in flight
    d.feed(s.CancelRequested(run_id=RUN))
    assert d.rec.state == "cancelled"
    status = {st.story.id: st.status for st in d.rec.stories}
    assert status == {"A": "integrated", "B": "cancelled", "C": "finished"}
    archived = sorted((m.story_id, m.bundle) for m in d.of(s.ArchiveAttempt))
    assert archived == [("A", "b-A"), ("C", "b-C")]
    # the stopped agent reports afterwards: its attempt is kept too, nothing is dispatched
    before = len(d.of(s.RunStory))
    d.feed(
        s.StoryFinished(
            run_id=RUN,
            story_id="B",
            attempt=1,
            status="cancelled",
            bundle="b-B",
            base_commit="i-A",
            head_commit="h-B",
        )
    )
    assert ("B", "b-B") in [(m.story_id, m.bundle) for m in d.of(s.ArchiveAttempt)]
    assert len(d.of(s.RunStory)) == before
