"""Integration in batches: the decider sends every finished story in one IntegrateStories,
one batch at a time, and takes the merger's answers for it in any order."""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from baro_conductor import core
from baro_shared import schemas as s
from baro_shared.bus import gave_up
from tests.conductor.test_core import RUN, Driver, dags, finish, integrated, submitted


def parallel(d: Driver, stories: list[s.Story], par: int = 4) -> None:
    d.feed(
        submitted(
            mode_request="parallel", limits=s.Limits(parallelism=par, max_stories=len(stories))
        )
    )
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))


def batches(d: Driver) -> list[list[str]]:
    return [[i.story.id for i in m.stories] for m in d.commands(s.IntegrateStories)]


def test_stories_that_finish_while_one_integrates_go_to_the_merger_together() -> None:
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["a"]),
        s.Story(id="B", title="b", write_surface=["b"]),
        s.Story(id="C", title="c", write_surface=["c"]),
        s.Story(id="D", title="d", write_surface=["d"], depends_on=["C"]),
    ]
    parallel(d, stories)
    d.feed(finish("A"))
    d.feed(finish("B"))
    d.feed(finish("C"))
    assert batches(d) == [["A"]], "one batch at a time"
    d.feed(integrated("A"))
    assert batches(d) == [["A"], ["C", "B"]], "C unlocks D: first in its batch"
    assert d.rec.integrating_batch == ["C", "B"]
    # the answers name the head after the whole batch, whatever order they come in
    batch_head = dict(integration_head="h-CB", integration_bundle="runs/r1/h-CB.bundle")
    d.feed(s.StoryIntegrated(run_id=RUN, story_id="B", attempt=1, integration_commit="i-B"))
    d.feed(
        s.StoryIntegrated(
            run_id=RUN, story_id="B", attempt=1, integration_commit="i-B", **batch_head
        )
    )
    assert d.rec.integrating_batch == ["C"] and d.rec.integration_head == "i-B"
    d.feed(
        s.StoryIntegrated(
            run_id=RUN, story_id="C", attempt=1, integration_commit="i-C", **batch_head
        )
    )
    (run_d,) = [m for m in d.commands(s.RunStory) if m.story.id == "D"]
    assert (run_d.base_commit, run_d.base_bundle) == ("h-CB", "runs/r1/h-CB.bundle")
    assert d.rec.story("C").integration_commit == "i-C"
    assert not d.rec.integrating_batch


def test_a_conflict_answered_before_the_rest_of_its_batch_reruns_on_the_batch_head() -> None:
    d = Driver()
    stories = [s.Story(id=x, title=x, write_surface=[x]) for x in ("A", "B", "C")]
    parallel(d, stories)
    d.feed(finish("A"))
    d.feed(finish("B"))
    d.feed(finish("C"))
    d.feed(integrated("A"))
    assert batches(d)[-1] == ["B", "C"]
    head = dict(integration_head="h-2", integration_bundle="bundle-h-2")
    d.feed(s.MergeConflict(run_id=RUN, story_id="B", attempt=1, paths=["x"], **head))
    again = [m for m in d.commands(s.RunStory) if m.story.id == "B"][-1]
    assert (again.attempt, again.base_commit, again.base_bundle) == (2, "h-2", "bundle-h-2")
    assert d.rec.integrating_batch == ["C"], "B's re-run waits for no batch"
    d.feed(finish("B", attempt=2))
    assert len(batches(d)) == 2, "no second batch while C's answer is outstanding"
    d.feed(s.StoryIntegrated(run_id=RUN, story_id="C", attempt=1, integration_commit="h-2", **head))
    assert batches(d)[-1] == ["B"]


def test_a_batch_the_bus_gave_up_on_fails_each_of_its_stories() -> None:
    d = Driver()
    stories = [s.Story(id=x, title=x, write_surface=[x]) for x in ("A", "B")]
    parallel(d, stories)
    d.feed(finish("A"))
    d.feed(finish("B"))
    d.feed(integrated("A"))
    cmd = d.commands(s.IntegrateStories)[-1]
    lost = gave_up(cmd, 5, "gave up")
    assert lost.integrations == {"B": 1}
    d.feed(lost)
    assert d.rec.story("B").status == "failed" and "gave up" in (d.rec.story("B").reason or "")
    assert not d.rec.integrating_batch and d.rec.state == "integrating"


@settings(max_examples=150, deadline=None)
@given(dags(), st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=10_000))
def test_batches_whatever_the_merger_answers_and_in_whatever_order(
    stories: list[s.Story], par: int, seed: int
) -> None:
    """A merger that integrates, conflicts, rejects or fails each story of a batch and
    answers in any order, some answers twice (and agents that fail a first attempt), writing the head's bundle only when the batch
    asks for it or a story of it is to be re-run (as baro_merger does): one batch at a
    time, each of finished stories, no attempt sent twice, the head always the last
    batch's, every story done in the end; every attempt starts from the run's base (and
    then depends on nothing) or from a head whose bundle was written, holding every story
    it depends on, and a re-run after a conflict or a rejection from the head it met; and
    the decider gives the same messages for the same events."""
    rng = random.Random(seed)
    d = Driver()
    fed: list[s.Event] = []
    order = {"base": 0}  # head -> the batch that made it
    bundled: set[str] = set()  # heads whose bundle the merger wrote
    landed: dict[str, int] = {}  # story -> the batch that integrated it
    checked = 0

    def feed(ev: s.Event) -> None:
        nonlocal checked
        fed.append(ev)
        d.feed(ev)
        for run in d.commands(s.RunStory)[checked:]:
            start = run.base_commit
            if start == "base":
                assert run.base_bundle is None and not run.story.depends_on
            else:
                assert start in bundled, f"{run.story.id} starts from {start}, never bundled"
                holder = (run.base_bundle or "").removeprefix("b-")
                assert holder in bundled and order[holder] >= order[start]
            for dep in run.story.depends_on:
                assert landed[dep] <= order[start], f"{run.story.id} starts before {dep}"
            if any(note.kind in ("conflict", "surface") for note in run.repair):
                assert start == d.rec.integration_head, "a re-run starts from the head it met"
        checked = len(d.commands(s.RunStory))

    feed(
        submitted(
            mode_request="parallel", limits=s.Limits(parallelism=par, max_stories=len(stories))
        )
    )
    feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    feed(s.PlanProposed(run_id=RUN, stories=stories))
    answered_batches = 0
    outstanding: list[s.Event] = []  # the merger's answers to the batch in flight
    head = "base"
    sent_attempts: set[tuple[str, int]] = set()
    integrated_ids: list[str] = []
    for _ in range(3000):
        rec = d.rec
        if rec.state != "running":
            break
        sent = d.commands(s.IntegrateStories)
        if len(sent) > answered_batches:
            assert len(sent) == answered_batches + 1, "a second batch while one is in flight"
            batch = sent[-1]
            answered_batches += 1
            ids = [i.story.id for i in batch.stories]
            assert ids == rec.integrating_batch and len(set(ids)) == len(ids)
            for item in batch.stories:
                assert rec.story(item.story.id).status == "finished"
                key = (item.story.id, item.attempt)
                assert key not in sent_attempts, "an attempt sent to the merger twice"
                sent_attempts.add(key)
            outcomes = [
                rng.choices(["ok", "conflict", "rejected", "failed"], [6, 2, 1, 1])[0]
                for _ in batch.stories
            ]
            rerun = any(o in ("conflict", "rejected") for o in outcomes)
            new_head = f"h{answered_batches}" if "ok" in outcomes else None
            if new_head is None and rerun and head != "base":
                new_head = head  # the merger names the head the re-run is to start from
            bundle = None
            if new_head is not None and (batch.head_bundle or rerun):
                bundle = f"b-{new_head}"
                bundled.add(new_head)
            if new_head is not None:
                order.setdefault(new_head, answered_batches)
            for item, outcome in zip(batch.stories, outcomes, strict=True):
                sid, att = item.story.id, item.attempt
                if outcome == "ok":
                    integrated_ids.append(sid)
                    landed[sid] = answered_batches
                    outstanding.append(
                        s.StoryIntegrated(
                            run_id=RUN,
                            story_id=sid,
                            attempt=att,
                            integration_commit=f"c-{sid}",
                            integration_head=new_head,
                            integration_bundle=bundle,
                        )
                    )
                elif outcome == "conflict":
                    outstanding.append(
                        s.MergeConflict(
                            run_id=RUN,
                            story_id=sid,
                            attempt=att,
                            paths=["x"],
                            integration_head=new_head,
                            integration_bundle=bundle,
                        )
                    )
                elif outcome == "rejected":
                    outstanding.append(
                        s.StoryRejected(
                            run_id=RUN,
                            story_id=sid,
                            attempt=att,
                            surface_violations=["y"],
                            integration_head=new_head,
                            integration_bundle=bundle,
                        )
                    )
                else:
                    outstanding.append(
                        s.IntegrationFailed(run_id=RUN, story_id=sid, attempt=att, error="x")
                    )
            head = new_head or head
        active = [x for x in rec.stories if x.status in ("assigned", "running")]
        if outstanding and (not active or rng.random() < 0.5):
            ev = outstanding.pop(rng.randrange(len(outstanding)))
            feed(ev)
            if rng.random() < 0.2:
                before = len(d.sent)
                feed(ev)  # a duplicate answer
                assert len(d.sent) == before, "a duplicate answer changed the run"
            if not d.rec.integrating_batch and d.rec.state == "running":
                assert not outstanding
                assert d.rec.integration_head == head
            continue
        assert active, "nothing running, no answer outstanding, yet not finished"
        pick = rng.choice(active)
        if pick.attempt == 1 and rng.random() < 0.15:  # tried again, from where it may start
            feed(finish(pick.story.id, attempt=1, status="failed", exit_reason="exit_code"))
        else:
            feed(finish(pick.story.id, attempt=pick.attempt))
    assert d.rec.state in ("integrating", *s.TERMINAL_RUN_STATES)
    assert all(x.status in core.DONE_STORY for x in d.rec.stories)
    assert sorted(x.story.id for x in d.rec.stories if x.status == "integrated") == sorted(
        set(integrated_ids)
    )
    assert len(integrated_ids) == len(set(integrated_ids)), "a story integrated twice"
    again = Driver()
    for ev in fed:
        again.feed(ev)
    assert unstamped(again.sent) == unstamped(d.sent), "the same events gave other messages"


def unstamped(sent: list[tuple[str, s.BusMessage]]) -> list[tuple[str, s.BusMessage]]:
    return [(mid, msgspec.structs.replace(m, ts=0.0)) for mid, m in sent]


def plan_of(deps: dict[str, list[str]]) -> list[s.Story]:
    """One story per id, each writing its own file, depending on the ids given."""
    return [
        s.Story(id=sid, title=sid.lower(), write_surface=[sid.lower()], depends_on=on)
        for sid, on in deps.items()
    ]


def integrated_on(story_id: str, head: str, bundle: str | None = None) -> s.StoryIntegrated:
    """The merger's answer: the story integrated, the batch's head, its bundle if written."""
    return s.StoryIntegrated(
        run_id=RUN,
        story_id=story_id,
        attempt=1,
        integration_commit=f"i-{story_id}",
        integration_head=head,
        integration_bundle=bundle,
    )


def test_only_a_batch_that_a_later_story_may_start_after_asks_for_the_heads_bundle() -> None:
    d = Driver()
    parallel(d, plan_of({"A": [], "B": [], "C": ["A"]}))
    d.feed(finish("A"))
    d.feed(finish("B"))
    # A's batch asked for the head's bundle: the merger wrote it; B goes to the merger
    d.feed(integrated_on("A", "h-A", "b-h-A"))
    (run_c,) = [m for m in d.commands(s.RunStory) if m.story.id == "C"]
    assert (run_c.base_commit, run_c.base_bundle) == ("h-A", "b-h-A")
    d.feed(finish("C"))
    d.feed(integrated("B"))
    wanted = [
        (batch, m.head_bundle)
        for batch, m in zip(batches(d), d.commands(s.IntegrateStories), strict=True)
    ]
    assert wanted == [(["A"], True), (["B"], False), (["C"], False)], (
        "C starts after A; nothing starts after B or C"
    )

    gated = Driver()
    gated.feed(submitted(mode_request="focused"))
    gated.feed(s.RunPrepared(run_id=RUN, base_commit="base", run_checks=["make test"]))
    gated.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    gated.feed(finish("S1"))
    (last,) = gated.commands(s.IntegrateStories)
    assert last.head_bundle, "the run gate's repair story would start from the head"


def test_a_story_tried_again_starts_from_the_newest_bundle_holding_its_dependencies() -> None:
    d = Driver()
    parallel(d, plan_of({"A": [], "D": [], "B": ["A"]}))
    d.feed(finish("A"))
    assert d.commands(s.IntegrateStories)[-1].head_bundle, "B starts after A"
    d.feed(integrated_on("A", "h1", "b-h1"))
    (first,) = [m for m in d.commands(s.RunStory) if m.story.id == "B"]
    assert (first.base_commit, first.base_bundle) == ("h1", "b-h1")
    d.feed(finish("D"))
    assert not d.commands(s.IntegrateStories)[-1].head_bundle, "nothing starts after D"
    d.feed(integrated_on("D", "h2"))
    assert d.rec.unbundled == ["D"] and d.rec.integration_head == "h2"
    d.feed(finish("B", status="failed", exit_reason="exit_code", error="boom"))
    again = [m for m in d.commands(s.RunStory) if m.story.id == "B"][-1]
    assert again.attempt == 2
    assert (again.base_commit, again.base_bundle) == ("h1", "b-h1"), "h2 has no bundle"


def test_a_story_tried_again_before_any_bundle_starts_from_the_runs_base() -> None:
    d = Driver()
    parallel(d, plan_of({"A": [], "B": []}))
    d.feed(finish("A"))
    assert not d.commands(s.IntegrateStories)[-1].head_bundle, "nothing starts after A"
    d.feed(integrated_on("A", "h1"))
    d.feed(finish("B", status="failed", exit_reason="exit_code", error="boom"))
    again = [m for m in d.commands(s.RunStory) if m.story.id == "B"][-1]
    assert again.attempt == 2
    assert (again.base_commit, again.base_bundle) == ("base", None), "h1 has no bundle"
