"""Parking and resuming a run whose owning process died, as pure transitions."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from baro_conductor import core
from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, dags, decided, finish, integrated, submitted

OWNER = s.RunOwner(pid=4242, host="here", started=7, boot="b", command="baro run")
NEXT = s.RunOwner(pid=5151, host="here", started=9, boot="b", command="baro resume")


def interrupted() -> s.RunInterrupted:
    return s.RunInterrupted(run_id=RUN, reason="baro run (pid 4242) stopped", owner=OWNER)


def resumed(owner: s.RunOwner | None = NEXT) -> s.RunResumed:
    return s.RunResumed(run_id=RUN, owner=owner)


def driving(messages: list[s.BusMessage]) -> list[s.BusMessage]:
    return [m for m in messages if isinstance(m, core.DRIVING)]


def two_chained(d: Driver) -> None:
    d.feed(submitted(owner=OWNER, mode_request="sequential"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(
        s.PlanProposed(
            run_id=RUN,
            stories=[
                s.Story(id="S1", title="one", write_surface=["a.py"]),
                s.Story(id="S2", title="two", depends_on=["S1"], write_surface=["b.py"]),
            ],
        )
    )


def test_the_owner_is_recorded_from_the_request() -> None:
    d = Driver()
    d.feed(submitted(owner=OWNER))
    assert d.rec.owner == OWNER and d.rec.interrupted is None


def test_a_parked_run_records_what_arrives_and_sends_nothing_that_moves_it() -> None:
    d = Driver()
    two_chained(d)
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"))
    out = d.feed(interrupted())
    assert [type(m) for m in out] == [s.RunInterrupted]
    assert d.rec.interrupted is not None and d.rec.interrupted.owner == OWNER
    assert d.rec.state == "running", "the state is kept: resume picks up from it"
    # what the dead process's workers published before dying still counts
    out = d.feed(finish("S1"))
    assert d.rec.story("S1").status == "finished" and d.rec.totals.tokens.input == 100
    assert driving(out) == [], "no integration while parked"
    assert d.rec.integrating_batch == ["S1"], "the record knows what it would integrate"
    out = d.feed(integrated("S1"))
    assert d.rec.story("S1").status == "integrated"
    assert driving(out) == [], "no dispatch of S2 while parked"
    assert d.rec.story("S2").status == "assigned"
    assert any(isinstance(m, s.StoryUpdated) for m in out), "watchers still hear of it"
    assert d.feed(interrupted()) == [], "parking twice changes nothing"


def test_a_failed_attempt_is_still_archived_while_parked() -> None:
    d = Driver()
    two_chained(d)
    d.feed(interrupted())
    out = d.feed(finish("S1", status="failed", error="boom", bundle="b-S1-1"))
    assert [type(m) for m in out if isinstance(m, s.Command)] == [s.ArchiveAttempt]


def test_the_outbox_left_at_the_interruption_goes_out_without_driving_commands() -> None:
    d = Driver()
    two_chained(d)
    rec = d.rec
    rec.outbox = [
        s.OutboxItem(
            msg_id="m1", message=s.StoryUpdated(run_id=RUN, story_id="S1", status="running")
        ),
        s.OutboxItem(msg_id="m2", message=d.commands(s.RunStory)[0]),
    ]  # type: ignore[list-item]
    tr = core.apply(rec, interrupted(), 2000.0)
    assert tr is not None
    assert [mid for mid, _ in tr.emit][:1] == ["m1"]
    assert driving([m for _, m in tr.emit]) == []


def test_resume_keeps_integrated_stories_and_restarts_running_ones_as_a_new_attempt() -> None:
    d = Driver()
    two_chained(d)
    d.feed(finish("S1"))
    d.feed(integrated("S1"))
    d.feed(s.StoryStarted(run_id=RUN, story_id="S2", attempt=1, runner="x"))
    d.feed(interrupted())
    dispatches = d.rec.story("S2").dispatches
    before = len(d.sent)
    out = d.feed(resumed())
    runs = [m for m in out if isinstance(m, s.RunStory)]
    assert [(m.story.id, m.attempt, m.resumes) for m in runs] == [("S2", 2, 1)]
    assert runs[0].base_commit == "i-S1", "the restart starts from what is integrated"
    assert d.rec.story("S1").status == "integrated" and d.rec.story("S1").attempt == 1
    assert d.rec.story("S2").dispatches == dispatches, "a restart is not a retry"
    assert d.rec.owner == NEXT and d.rec.interrupted is None and d.rec.resumes == 1
    ids = [mid for mid, _ in d.sent[before:]]
    assert f"{RUN}.run.S2.2.r1" in ids
    d.feed(finish("S2", attempt=2))
    d.feed(integrated("S2", attempt=2))
    assert d.rec.state == "integrating" and len(d.commands(s.DeliverRun)) == 1


def test_resume_asks_again_for_an_integration_or_delivery_in_flight() -> None:
    d = Driver()
    two_chained(d)
    d.feed(finish("S1"))
    d.feed(interrupted())
    out = d.feed(resumed())
    again = [i for m in out if isinstance(m, s.IntegrateStories) for i in m.stories]
    assert [(i.story.id, i.attempt) for i in again] == [("S1", 1)]
    asked = [mid for mid, m in d.sent if isinstance(m, s.IntegrateStories)]
    assert len(asked) == 2 and asked[1] == f"{asked[0]}.r1", "asked again under a new id"
    d.feed(integrated("S1"))
    d.feed(finish("S2", attempt=1))
    d.feed(integrated("S2"))
    assert d.rec.state == "integrating"
    d.feed(interrupted())
    out = d.feed(resumed())
    assert [type(m) for m in out] == [s.DeliverRun]
    assert sum(1 for mid, _ in d.sent if mid.startswith(f"{RUN}.deliver")) == 2
    assert len({mid for mid, m in d.sent if isinstance(m, s.DeliverRun)}) == 2, "new id"


def test_resume_before_planning_asks_the_intake_and_the_planner_again() -> None:
    d = Driver()
    d.feed(submitted(owner=OWNER))
    d.feed(interrupted())
    out = d.feed(resumed())
    assert {type(m) for m in out} == {s.PrepareRun, s.ClassifyGoal}
    d.feed(decided("parallel", 2, 2))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    assert d.rec.state == "planning"
    d.feed(interrupted())
    out = d.feed(resumed())
    assert [type(m) for m in out] == [s.PlanGoal]


def test_resume_needs_a_parked_run_and_cancel_ends_one() -> None:
    d = Driver()
    two_chained(d)
    assert d.feed(resumed()) == [], "a run that is driven is not resumed"
    d.feed(finish("S1"))
    d.feed(interrupted())
    out = d.feed(s.CancelRequested(run_id=RUN, reason="ended by the user"))
    assert d.rec.state == "cancelled" and d.rec.interrupted is None
    assert any(isinstance(m, s.ArchiveAttempt) for m in out), "its attempts are kept"
    assert d.rec.story("S2").status == "cancelled"
    assert d.feed(resumed()) == [] and d.feed(interrupted()) == []


@settings(max_examples=120, deadline=None)
@given(dags(), st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=10_000))
def test_a_run_killed_at_any_point_and_resumed_finishes_with_each_story_integrated_once(
    stories: list[s.Story], par: int, seed: int
) -> None:
    """A world of workers that answer commands (deduplicating by message id, as the server
    does): the owner dies at a random point, some answers it had already published arrive
    while the run is parked, the rest are lost; after the resume the run still delivers,
    with every story integrated once."""
    rng = random.Random(seed)
    d = Driver()
    seen_ids: set[str] = set()
    pending: list[s.BusMessage] = []
    integrated_by_story: dict[str, int] = {}
    integrations = 0

    def publish(items: list[tuple[str, s.BusMessage]]) -> None:
        for mid, msg in items:
            if mid in seen_ids:
                continue  # the server drops a duplicate id
            seen_ids.add(mid)
            if isinstance(msg, s.Command):
                pending.append(msg)
            elif isinstance(msg, (s.ModeConfirmed, s.PlanProposed)):
                feed(msg)  # the conductor's events to itself

    def feed(ev: s.Event) -> None:
        before = len(d.sent)
        d.feed(ev)
        publish(d.sent[before:])

    def answer(cmd: s.BusMessage) -> list[tuple[str, s.Event]]:
        nonlocal integrations
        match cmd:
            case s.ClassifyGoal():
                return [(f"{RUN}.intake", decided("parallel", len(stories), par))]
            case s.PrepareRun():
                return [(f"{RUN}.prepared", s.RunPrepared(run_id=RUN, base_commit="base"))]
            case s.PlanGoal():
                return [(f"{RUN}.plan_outcome", s.PlanProposed(run_id=RUN, stories=stories))]
            case s.RunStory(story=story, attempt=attempt):
                return [
                    (
                        f"{RUN}.started.{story.id}.{attempt}",
                        s.StoryStarted(run_id=RUN, story_id=story.id, attempt=attempt, runner="r"),
                    ),
                    (f"{RUN}.finished.{story.id}.{attempt}", finish(story.id, attempt=attempt)),
                ]
            case s.IntegrateStories(stories=items):
                answers = []
                for item in items:
                    story, attempt = item.story, item.attempt
                    if story.id not in integrated_by_story:
                        integrations += 1
                        integrated_by_story[story.id] = attempt
                    event = integrated(story.id, attempt)
                    answers.append((f"{RUN}.integrated.{story.id}.{attempt}", event))
                return answers
            case s.DeliverRun():
                return [
                    (
                        f"{RUN}.delivered",
                        s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="h"),
                    )
                ]
        return []

    def deliver(events: list[tuple[str, s.Event]]) -> None:
        for mid, ev in events:
            if mid not in seen_ids:
                seen_ids.add(mid)
                feed(ev)

    feed(
        submitted(
            owner=OWNER,
            mode_request=rng.choice(["auto", "parallel"]),
            limits=s.Limits(parallelism=par, max_stories=len(stories)),
        )
    )
    crash_at = rng.randint(0, 40)
    for step in range(2000):
        if d.rec.state in s.TERMINAL_RUN_STATES:
            break
        if step == crash_at:
            lost, pending[:] = list(pending), []
            feed(interrupted())
            for cmd in lost:  # some workers answered just before the process died
                if rng.random() < 0.5:
                    deliver(answer(cmd)[:1] if isinstance(cmd, s.RunStory) else answer(cmd))
            assert not pending, "a parked run sent a command that moves it forward"
            if d.rec.state in s.TERMINAL_RUN_STATES:
                break
            feed(resumed())
            continue
        assert pending, f"the run is stuck in {d.rec.state}"
        cmd = pending.pop(rng.randrange(len(pending)))
        deliver(answer(cmd))
    assert d.rec.state == "delivered", d.rec.reason
    assert integrations == len(stories)
    assert all(st_.status == "integrated" for st_ in d.rec.stories)
    assert sum(1 for _, m in d.sent if isinstance(m, s.RunFinished)) == 1
