"""The conductor's transitions as a pure function: lifecycle, idempotency, failures, caps."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from baro_conductor import core
from baro_shared import schemas as s
from baro_shared.surfaces import surfaces_overlap

RUN = "r1"
T0 = 1000.0


def submitted(**kw: object) -> s.RunSubmitted:
    base = dict(
        run_id=RUN,
        goal="fix the bug in a.py",
        repo=s.RepoSource(kind="path", location="/repo", commit="base"),
        backend="scripted",
        ts=T0,
    )
    base.update(kw)
    return s.RunSubmitted(**base)  # type: ignore[arg-type]


class Driver:
    """Feeds events through core.apply the way the handler does (record replaced on change)."""

    def __init__(self) -> None:
        self.record: s.RunRecord | None = None
        self.sent: list[tuple[str, s.BusMessage]] = []
        self.clock = T0

    def feed(self, event: s.Event) -> list[s.BusMessage]:
        self.clock += 1
        tr = core.apply(self.record, event, self.clock)
        if tr is None:
            return []
        self.record = tr.record
        self.sent.extend(tr.emit)
        return [m for _, m in tr.emit]

    @property
    def rec(self) -> s.RunRecord:
        assert self.record is not None
        return self.record

    def commands(self, kind: type) -> list:
        return [m for _, m in self.sent if isinstance(m, kind)]

    def integrations(self) -> list[s.StoryToIntegrate]:
        """Every story sent to the merger, batch after batch."""
        return [item for batch in self.commands(s.IntegrateStories) for item in batch.stories]


def decided(mode: s.Mode = "focused", max_stories: int = 1, par: int = 1) -> s.IntakeDecided:
    return s.IntakeDecided(
        run_id=RUN,
        decision=s.IntakeDecision(
            mode=mode,
            confidence=0.8,
            reason="r",
            caps=s.Caps(max_stories=max_stories, parallelism=par),
        ),
    )


def started_to_plan(
    d: Driver, stories: list[s.Story], mode: s.Mode = "focused", par: int = 1
) -> None:
    d.feed(submitted())
    d.feed(decided(mode, max(1, len(stories)), par))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))


def finish(
    story_id: str, attempt: int = 1, status: s.AttemptStatus = "success", **kw: object
) -> s.StoryFinished:
    fields = dict(
        run_id=RUN,
        story_id=story_id,
        attempt=attempt,
        status=status,
        bundle=f"b-{story_id}-{attempt}" if status == "success" else None,
        base_commit="base",
        head_commit=f"h-{story_id}-{attempt}",
        tokens=s.TokenUsage(input=100, cached_input=40, output=10),
        agent_seconds=2.0,
    )
    fields.update(kw)
    return s.StoryFinished(**fields)  # type: ignore[arg-type]


def agent_ended(story_id: str, attempt: int = 1) -> s.StoryAgentEnded:
    return s.StoryAgentEnded(run_id=RUN, story_id=story_id, attempt=attempt, runner="x")


def integrated(story_id: str, attempt: int = 1) -> s.StoryIntegrated:
    return s.StoryIntegrated(
        run_id=RUN, story_id=story_id, attempt=attempt, integration_commit=f"i-{story_id}"
    )


def test_focused_run_reaches_delivered() -> None:
    d = Driver()
    msgs = d.feed(submitted())
    assert {type(m) for m in msgs} == {s.PrepareRun, s.ClassifyGoal}
    assert d.rec.state == "classifying"
    d.feed(decided())
    assert d.rec.state == "planning" and d.rec.mode == "focused" and d.rec.mode_source == "offline"
    assert not d.commands(s.PlanGoal), "planning waits for the repository to be prepared"
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    assert len(d.commands(s.PlanGoal)) == 1
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    runs = d.commands(s.RunStory)
    assert len(runs) == 1 and runs[0].attempt == 1 and runs[0].base_commit == "base"
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"))
    d.feed(finish("S1"))
    assert len(d.integrations()) == 1
    d.feed(integrated("S1"))
    assert d.rec.state == "integrating" and len(d.commands(s.DeliverRun)) == 1
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/fix", base="base", head="i-S1"))
    assert d.rec.state == "delivered"
    fin = d.commands(s.RunFinished)
    assert len(fin) == 1 and fin[0].totals.tokens.input == 100 and fin[0].totals.agent_s == 2.0


def test_every_event_delivered_twice_changes_nothing_the_second_time() -> None:
    d = Driver()
    events: list[s.Event] = [
        submitted(),
        decided(),
        s.RunPrepared(run_id=RUN, base_commit="base"),
        s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]),
        s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"),
        agent_ended("S1"),
        finish("S1"),
        integrated("S1"),
        s.RunDelivered(run_id=RUN, branch="baro/fix", base="base", head="i-S1"),
    ]
    for ev in events:
        d.feed(ev)
        assert d.feed(ev) == [], f"second delivery of {type(ev).__name__} changed the run"
    assert d.rec.state == "delivered"
    assert len(d.integrations()) == 1
    assert d.rec.totals.tokens.input == 100


def test_stale_attempt_result_is_counted_but_ignored() -> None:
    d = Driver()
    started_to_plan(d, [s.Story(id="S1", title="fix")])
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="a"))
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=2, runner="b"))  # redelivered to b
    d.feed(finish("S1", attempt=2))
    d.feed(finish("S1", attempt=1))  # late result from the runner whose lease expired
    assert d.rec.story("S1").result.attempt == 2
    ints = d.integrations()
    assert len(ints) == 1 and ints[0].attempt == 2
    assert d.rec.story("S1").tokens.input == 200, "both attempts cost tokens"
    assert any(
        isinstance(m, s.ArchiveAttempt) and m.attempt == 1 for m in d.commands(s.ArchiveAttempt)
    )


def test_failed_story_is_retried_then_fails_and_blocks_dependents() -> None:
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["a.py"]),
        s.Story(id="B", title="b", depends_on=["A"], write_surface=["b.py"]),
        s.Story(id="C", title="c", write_surface=["c.py"]),
    ]
    started_to_plan(d, stories, mode="parallel", par=4)
    first = {m.story.id for m in d.commands(s.RunStory)}
    assert first == {"A", "C"}
    d.feed(finish("A", status="failed", error="boom"))
    retry = [m for m in d.commands(s.RunStory) if m.story.id == "A"]
    assert [m.attempt for m in retry] == [1, 2], "one retry within the default budget"
    d.feed(finish("A", attempt=2, status="failed", error="boom"))
    d.feed(s.StoryReplanned(run_id=RUN, story_id="A", round=1, decision="give_up", reason="no"))
    assert d.rec.story("A").status == "failed"
    assert d.rec.story("B").status == "blocked" and "A" in d.rec.story("B").reason
    d.feed(finish("C"))
    d.feed(integrated("C"))
    assert d.rec.state == "integrating", "independent work still ships"
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-C"))
    assert d.rec.state == "needs_attention"
    assert "B blocked" in d.rec.reason


def test_conflict_redispatches_once_then_needs_attention() -> None:
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["a.py"]),
        s.Story(id="B", title="b", write_surface=["b.py"]),
    ]
    started_to_plan(d, stories, mode="parallel", par=2)
    d.feed(finish("A"))
    d.feed(finish("B"))
    d.feed(integrated("A"))
    d.feed(s.MergeConflict(run_id=RUN, story_id="B", attempt=1, paths=["shared.py"]))
    again = [m for m in d.commands(s.RunStory) if m.story.id == "B"]
    assert [m.attempt for m in again] == [1, 2]
    assert again[1].base_commit == "i-A"
    assert [n.kind for n in again[1].repair] == ["conflict"] and "shared.py" in again[1].repair[
        0
    ].text
    d.feed(finish("B", attempt=2))
    d.feed(s.MergeConflict(run_id=RUN, story_id="B", attempt=2, paths=["shared.py"]))
    assert d.rec.story("B").status == "conflict"
    assert "refs/baro/r1/B/2" in d.rec.story("B").reason
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-A"))
    assert d.rec.state == "needs_attention"


def test_a_rejected_story_reruns_once_with_the_violation_named_then_fails() -> None:
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["a.py"]),
        s.Story(id="B", title="b", write_surface=["b.py"]),
    ]
    started_to_plan(d, stories, mode="parallel", par=2)
    d.feed(finish("A"))
    d.feed(finish("B"))
    assert [(c.mode, c.surface) for c in d.commands(s.IntegrateStories)] == [("parallel", None)]
    d.feed(integrated("A"))
    refusal = s.Refusal(path="link", rule="symlink_escape", reason="leaves the repository")
    rejected = s.StoryRejected(
        run_id=RUN, story_id="B", attempt=1, surface_violations=["a.py"], refused=[refusal]
    )
    d.feed(rejected)
    assert d.feed(rejected) == [], "a duplicate rejection changes nothing"
    again = [m for m in d.commands(s.RunStory) if m.story.id == "B"]
    assert [m.attempt for m in again] == [1, 2]
    assert [n.kind for n in again[1].repair] == ["surface"]
    note = again[1].repair[0].text
    assert "a.py" in note and "b.py" in note
    assert d.rec.story("B").rejections == 1 and d.rec.story("B").surface_violations == ["a.py"]
    d.feed(finish("B", attempt=2))
    d.feed(
        s.StoryRejected(
            run_id=RUN,
            story_id="B",
            attempt=2,
            surface_violations=["a.py", "README.md"],
            story_ref="refs/baro/r1/B/2",
        )
    )
    b = d.rec.story("B")
    assert b.status == "failed" and b.rejections == 2
    assert b.reason is not None and "a.py, README.md" in b.reason and "refs/baro/r1/B/2" in b.reason
    assert b.surface_violations == ["a.py", "README.md"] and b.refused == [refusal]
    assert len([m for m in d.commands(s.RunStory) if m.story.id == "B"]) == 2
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-A"))
    assert d.rec.state == "needs_attention"


def test_nothing_delivered_is_not_a_success() -> None:
    d = Driver()
    started_to_plan(d, [s.Story(id="S1", title="fix")])
    d.feed(finish("S1"))
    refusal = s.Refusal(path="passwd", rule="symlink_escape", reason="is absolute")
    d.feed(
        s.StoryIntegrated(
            run_id=RUN,
            story_id="S1",
            attempt=1,
            integration_commit="base",
            dropped_artifacts=["prd.json"],
            refused=[refusal],
            nothing_left=True,
            story_ref="refs/baro/r1/S1/1",
        )
    )
    d.feed(s.RunDelivered(run_id=RUN, branch=None, base="base", head="base"))
    assert d.rec.state == "needs_attention"
    reason = d.rec.reason or ""
    assert reason.startswith("nothing was delivered")
    assert "passwd (symlink_escape: is absolute)" in reason and "prd.json (artifact)" in reason
    assert "kept at refs/baro/r1/S1/1" in reason


def test_paths_git_would_not_record_are_kept_with_the_story_once() -> None:
    d = Driver()
    started_to_plan(d, [s.Story(id="S1", title="fix")])
    refusal = s.Refusal(path=".GIT/config", rule="git_path", reason="git refuses to record it")
    d.feed(finish("S1", refused=[refusal]))
    d.feed(finish("S1", refused=[refusal]))  # delivered twice
    d.feed(integrated("S1"))
    (st,) = d.rec.stories
    assert st.refused == [refusal] and st.status == "integrated"


def test_a_story_that_delivered_nothing_makes_a_partial_result() -> None:
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["a.py"]),
        s.Story(id="B", title="b", write_surface=["b.py"]),
    ]
    started_to_plan(d, stories, mode="parallel", par=2)
    d.feed(finish("A"))
    d.feed(finish("B"))
    d.feed(integrated("A"))
    d.feed(
        s.StoryIntegrated(
            run_id=RUN, story_id="B", attempt=1, integration_commit="i-A", nothing_left=True,
            dropped_artifacts=["progress.txt"],
        )
    )  # fmt: skip
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-A"))
    assert d.rec.state == "needs_attention"
    assert "B delivered nothing: progress.txt (artifact)" in (d.rec.reason or "")


def test_retryable_result_waits_for_redelivery() -> None:
    d = Driver()
    started_to_plan(d, [s.Story(id="S1", title="fix")])
    d.feed(finish("S1", status="retryable", error="429 rate limited"))
    assert d.rec.story("S1").status == "assigned"
    assert len(d.commands(s.RunStory)) == 1, (
        "the runner hands the same command back; no new dispatch"
    )
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=2, runner="x"))
    d.feed(finish("S1", attempt=2))
    assert d.rec.story("S1").status == "finished"


def test_cancel_stops_dispatch_and_finishes_run() -> None:
    d = Driver()
    stories = [s.Story(id=f"S{i}", title=f"s{i}", write_surface=[f"f{i}.py"]) for i in range(4)]
    started_to_plan(d, stories, mode="parallel", par=2)
    d.feed(s.CancelRequested(run_id=RUN))
    assert d.rec.state == "cancelled"
    assert all(st.status == "cancelled" for st in d.rec.stories)
    d.feed(finish("S0"))
    assert not d.integrations()
    assert len(d.commands(s.RunStory)) == 2


def test_user_override_is_recorded_as_user() -> None:
    d = Driver()
    d.feed(submitted(confirm="picker"))
    d.feed(decided("focused"))
    assert d.rec.state == "awaiting_confirmation"
    d.feed(s.ModeConfirmed(run_id=RUN, mode="sequential", source="user"))
    assert d.rec.mode == "sequential" and d.rec.mode_source == "user"
    assert d.rec.caps.parallelism == 1


def test_flag_mode_skips_intake() -> None:
    d = Driver()
    msgs = d.feed(submitted(mode_request="parallel"))
    assert not any(isinstance(m, s.ClassifyGoal) for m in msgs)
    assert d.rec.mode == "parallel" and d.rec.mode_source == "flag" and d.rec.state == "planning"


@st.composite
def dags(draw: st.DrawFn) -> list[s.Story]:
    n = draw(st.integers(min_value=1, max_value=12))
    stories = []
    for i in range(n):
        deps = (
            draw(
                st.lists(st.integers(min_value=0, max_value=max(0, i - 1)), max_size=3, unique=True)
            )
            if i
            else []
        )
        surface = draw(
            st.lists(
                st.sampled_from(["a.py", "b.py", "c.py", "d/*.py", "d/x.py", "e/", "f.md"]),
                max_size=2,
                unique=True,
            )
        )
        stories.append(
            s.Story(
                id=f"S{i}",
                title=f"story {i}",
                depends_on=[f"S{j}" for j in deps],
                write_surface=surface,
            )
        )
    return stories


@settings(max_examples=150, deadline=None)
@given(dags(), st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=10_000))
def test_caps_and_disjoint_surfaces_hold_while_running(
    stories: list[s.Story], par: int, seed: int
) -> None:
    """Whatever the plan and completion order: <= parallelism agents, disjoint surfaces, all integrated."""
    d = Driver()
    d.feed(
        submitted(
            mode_request="parallel", limits=s.Limits(parallelism=par, max_stories=len(stories))
        )
    )
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))
    rng = random.Random(seed)
    for _ in range(500):
        rec = d.rec
        if rec.state != "running":
            break
        # a story whose agent has ended is still active (its result is not in) but runs
        # no agent: the surfaces of all active stories are disjoint, the agents capped
        active = [st for st in rec.stories if st.status in ("assigned", "running")]
        agents = [st for st in active if not st.agent_ended]
        assert len(agents) <= rec.caps.parallelism <= par
        for i, a in enumerate(active):
            for b in active[i + 1 :]:
                assert not surfaces_overlap(a.story.write_surface, b.story.write_surface), (
                    a.story,
                    b.story,
                )
                assert a.story.write_surface and b.story.write_surface
        batch = rec.integrating_batch
        assert len(set(batch)) == len(batch)
        assert all(rec.story(sid).status == "finished" for sid in batch)
        if batch and (not active or rng.random() < 0.5):
            sid = rng.choice(batch)  # the merger's answers, in any order
            d.feed(integrated(sid, rec.story(sid).result.attempt))
            continue
        assert active, "nothing running, nothing integrating, yet not finished"
        pick = rng.choice(active)
        if not pick.agent_ended and rng.random() < 0.5:
            d.feed(agent_ended(pick.story.id, attempt=pick.attempt))
            continue
        d.feed(finish(pick.story.id, attempt=pick.attempt))
    assert d.rec.state == "integrating"
    assert all(st.status == "integrated" for st in d.rec.stories)
    sent = sorted(item.story.id for item in d.integrations())
    assert sent == sorted(story.id for story in stories), "each story sent to the merger once"
    titles = " ".join(st.story.title + " " + st.story.description for st in d.rec.stories)
    assert all(story.title in titles for story in stories), "no story lost"


# --------------------------------------------------------------------------- notifications


def test_a_person_is_notified_once_per_state_they_act_on() -> None:
    d = Driver()
    d.feed(submitted(confirm="picker", notify_webhook="https://hooks.example.com/x"))
    d.feed(decided())
    assert [n.state for n in d.commands(s.NotifyRun)] == ["awaiting_confirmation"]
    d.feed(s.ModeConfirmed(run_id=RUN, mode="focused", source="user"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"))
    d.feed(finish("S1"))
    d.feed(integrated("S1"))
    delivered = s.RunDelivered(run_id=RUN, branch="baro/fix", base="base", head="i-S1")
    d.feed(delivered)
    d.feed(delivered)  # redelivered: no second notification
    notes = d.commands(s.NotifyRun)
    assert [n.state for n in notes] == ["awaiting_confirmation", "delivered"]
    last = notes[-1]
    assert last.branch == "baro/fix" and last.webhook == "https://hooks.example.com/x"
    assert last.totals.tokens.input == 100 and last.repository == "/repo"
    ids = [mid for mid, m in d.sent if isinstance(m, s.NotifyRun)]
    assert ids == [f"{RUN}.notify.awaiting_confirmation", f"{RUN}.notify.delivered"]


def test_a_failed_run_is_notified_with_its_reason() -> None:
    d = Driver()
    d.feed(submitted())
    d.feed(decided())
    d.feed(s.RunPrepareFailed(run_id=RUN, error="commit signing is on but git cannot sign"))
    (note,) = d.commands(s.NotifyRun)
    assert note.state == "failed" and note.reason and "cannot sign" in note.reason


def test_a_notification_the_bus_gave_up_on_does_not_fail_the_run() -> None:
    d = Driver()
    d.feed(submitted(confirm="picker"))
    d.feed(decided())
    lost = s.CommandDeadLettered(run_id=RUN, command="cmd.notify", deliveries=6, reason="x")
    assert d.feed(lost) == [] and d.rec.state == "awaiting_confirmation"


def test_a_submission_that_skipped_the_door_is_recorded_as_refused() -> None:
    d = Driver()
    msgs = d.feed(submitted(goal="fix\x00it", model="--foo"))
    assert [type(m) for m in msgs] == [s.RunFinished]
    assert d.rec.state == "failed"
    assert d.rec.reason is not None
    assert d.rec.reason.startswith("the submission was refused: the goal contains U+0000")
    assert not d.feed(submitted(goal="fix\x00it")), "a redelivery changes nothing"


def test_a_failed_verification_without_output_still_says_so() -> None:
    d = Driver()
    d.feed(submitted(mode_request="focused"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    d.feed(s.StoryStarted(run_id=RUN, story_id="S1", attempt=1, runner="x"))
    d.feed(finish("S1"))
    d.feed(integrated("S1"))
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/fix", base="base", head="i-S1", verify="failed"))
    assert d.rec.state == "needs_attention"
    assert d.rec.reason == "the run's checks failed (no output)"


def running_with_an_urgent_dependent() -> Driver:
    """Two slots: A and X run; C waits on A and heads the longest chain (C then D), B can
    wait."""
    stories = [
        s.Story(id="A", title="a", write_surface=["a.py"]),
        s.Story(id="X", title="x", write_surface=["x.py"]),
        s.Story(id="B", title="b", write_surface=["b.py"]),
        s.Story(id="C", title="c", depends_on=["A"], write_surface=["c.py"]),
        s.Story(id="D", title="d", depends_on=["C"], write_surface=["d.py"]),
    ]
    d = Driver()
    d.feed(submitted(mode_request="parallel", limits=s.Limits(parallelism=2, max_stories=5)))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))
    return d


def test_a_finished_story_s_slot_waits_for_its_more_urgent_dependent() -> None:
    """A's slot is freed when A finishes, but C (the longer chain) is ready only once A is
    integrated: B, ready all along but able to wait, must not take that slot meanwhile."""
    d = running_with_an_urgent_dependent()
    assert [c.story.id for c in d.commands(s.RunStory)] == ["A", "X"]
    d.feed(finish("A"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["A", "X"], "the slot is C's"
    d.feed(integrated("A"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["A", "X", "C"]
    d.feed(finish("X"))
    assert [c.story.id for c in d.commands(s.RunStory)][-1] == "B"


def test_an_ended_agent_s_slot_goes_to_the_next_story_while_its_result_is_saved() -> None:
    stories = [s.Story(id=f"S{i}", title=f"s{i}", write_surface=[f"f{i}.py"]) for i in range(4)]
    d = Driver()
    started_to_plan(d, stories, mode="parallel", par=2)
    assert [c.story.id for c in d.commands(s.RunStory)] == ["S0", "S1"]
    d.feed(s.StoryStarted(run_id=RUN, story_id="S0", attempt=1, runner="x"))
    d.feed(agent_ended("S0"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["S0", "S1", "S2"]
    assert d.rec.story("S0").status == "running", "its result is not in yet"
    assert d.feed(agent_ended("S0")) == [], "a second delivery frees nothing more"
    assert d.feed(agent_ended("S1", attempt=2)) == [], "not the attempt that runs"
    d.feed(finish("S0"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["S0", "S1", "S2"]
    assert d.rec.story("S0").status == "finished"
    d.feed(finish("S1"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["S0", "S1", "S2", "S3"]


def test_a_story_started_again_elsewhere_takes_its_slot_back() -> None:
    """An attempt whose runner was lost after its agent ended comes back as a higher
    attempt only when the runner reported the loss; should a redelivery start an agent
    all the same, that agent counts."""
    stories = [s.Story(id=f"S{i}", title=f"s{i}", write_surface=[f"f{i}.py"]) for i in range(4)]
    d = Driver()
    started_to_plan(d, stories, mode="parallel", par=2)
    d.feed(agent_ended("S0"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["S0", "S1", "S2"]
    d.feed(s.StoryStarted(run_id=RUN, story_id="S0", attempt=2, runner="y"))
    assert not d.rec.story("S0").agent_ended
    d.feed(finish("S1"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["S0", "S1", "S2"], "S0's agent runs"


def test_a_slot_freed_by_an_ended_agent_waits_for_its_more_urgent_dependent() -> None:
    """As when A finishes: C (the longer chain) will be ready once A is in, so the slot A's
    agent left is kept for it rather than given to B, which can wait."""
    d = running_with_an_urgent_dependent()
    d.feed(agent_ended("A"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["A", "X"], "the slot is C's"
    d.feed(finish("A"))
    d.feed(integrated("A"))
    assert [c.story.id for c in d.commands(s.RunStory)] == ["A", "X", "C"]


def test_a_story_allowed_to_change_nothing_that_changed_nothing_is_integrated_as_is() -> None:
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["routes/a.py"]),
        s.Story(
            id="R", title="register", depends_on=["A"], write_surface=["app.py"],
            may_change_nothing=True,
        ),
    ]  # fmt: skip
    started_to_plan(d, stories, mode="parallel", par=2)
    d.feed(finish("A"))
    d.feed(s.StoryIntegrated(run_id=RUN, story_id="A", attempt=1, integration_commit="i-A"))
    assert [r.story.id for r in d.commands(s.RunStory)] == ["A", "R"]
    d.feed(finish("R", bundle=None, head_commit="i-A", changed_files=[]))
    r = d.rec.story("R")
    assert r is not None and r.status == "integrated" and r.integration_commit == "i-A"
    assert [i.story.id for i in d.integrations()] == ["A"], "nothing was sent to the merger"
    assert d.rec.state == "integrating" and len(d.commands(s.DeliverRun)) == 1
    d.feed(s.RunDelivered(run_id=RUN, branch="baro/x", base="base", head="i-A"))
    assert d.rec.state == "delivered"


def test_a_story_that_must_change_something_is_not_integrated_without_changes() -> None:
    # a successful attempt without changes is done as is only for a story allowed to end so
    d = Driver()
    started_to_plan(d, [s.Story(id="A", title="a", write_surface=["a.py"])])
    d.feed(finish("A", bundle=None, head_commit="base", changed_files=[]))
    a = d.rec.story("A")
    assert a is not None and a.status != "integrated"
    assert d.rec.state != "integrating" and not d.commands(s.DeliverRun)
