"""What the conductor tells each story besides the story itself, as pure transitions: the
design note, what its dependencies delivered, what siblings integrated near its files,
and the agent and model it runs with."""

from __future__ import annotations

from baro_conductor import core
from baro_shared import schemas as s
from tests.conductor.test_core import RUN, Driver, finish, submitted

NOTE = s.DesignNote(
    text="Helpers live in src/util.py (read only).",
    source="model",
    tokens=s.TokenUsage(input=300, output=40),
)
PAR = [
    s.Story(id="A", title="Write a", write_surface=["src/a.py"]),
    s.Story(id="B", title="Write b", write_surface=["src/b.py"]),
    s.Story(id="C", title="Use a", write_surface=["src/c.py"], depends_on=["A"]),
    s.Story(id="D", title="Docs", write_surface=["docs/guide.md"]),
]


def planned(d: Driver, stories: list[s.Story], design: s.DesignNote | None = NOTE) -> None:
    d.feed(submitted(mode_request="parallel", goal="four things"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories, design=design, tokens=s.TokenUsage(input=5)))


def run_for(d: Driver, story_id: str) -> s.RunStory:
    return [m for m in d.commands(s.RunStory) if m.story.id == story_id][-1]


def integrated(story_id: str, files: list[str], attempt: int = 1) -> s.StoryIntegrated:
    return s.StoryIntegrated(
        run_id=RUN,
        story_id=story_id,
        attempt=attempt,
        integration_commit=f"commit-{story_id.lower()}-0123456789",
        files=files,
    )


# --------------------------------------------------------------------------- design note


def test_every_parallel_story_carries_the_design_note_and_its_tokens_count() -> None:
    d = Driver()
    d.feed(submitted(mode_request="parallel"))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    (ask,) = d.commands(s.PlanGoal)
    assert ask.design, "parallel runs ask for a design note"
    d.feed(s.PlanProposed(run_id=RUN, stories=PAR, design=NOTE, tokens=s.TokenUsage(input=5)))
    (accepted,) = d.commands(s.PlanAccepted)
    assert accepted.design == NOTE
    assert {m.story.id: m.design_note for m in d.commands(s.RunStory)} == {
        "A": NOTE.text,
        "B": NOTE.text,
        "D": NOTE.text,
    }
    assert d.rec.plan_tokens == s.TokenUsage(input=305, output=40)
    assert "**Design note** (by a model, shared by every story):" in core.summary_markdown(d.rec)


def test_quick_asks_for_no_design_note() -> None:
    d = Driver()
    d.feed(submitted(mode_request="parallel", quick=True))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    (ask,) = d.commands(s.PlanGoal)
    assert not ask.design


def test_a_plan_enforced_into_a_chain_runs_without_the_note() -> None:
    d = Driver()
    overlapping = [
        s.Story(id="A", title="a", write_surface=["src/x.py"]),
        s.Story(id="B", title="b", write_surface=["src/x.py"]),
    ]
    planned(d, overlapping)
    assert d.rec.mode == "sequential"
    assert [m.design_note for m in d.commands(s.RunStory)] == [None]


# --------------------------------------------------------------------------- merge awareness


def test_a_dependent_is_told_what_its_dependency_delivered() -> None:
    d = Driver()
    planned(d, PAR)
    d.feed(finish("A", changed_files=["src/a.py", "notes.txt"]))
    d.feed(integrated("A", ["src/a.py"]))
    (c,) = [m for m in d.commands(s.RunStory) if m.story.id == "C"]
    assert c.delivered == [
        s.Delivery(story_id="A", title="Write a", commit="commit-a-0123456789", files=["src/a.py"])
    ]
    assert run_for(d, "B").delivered == [], "an independent story depends on nothing"


def test_without_the_mergers_list_the_delivery_is_what_changed_minus_dropped_artifacts() -> None:
    d = Driver()
    planned(d, PAR)
    d.feed(finish("A", changed_files=["src/a.py", "PLAN.md"]))
    d.feed(
        s.StoryIntegrated(
            run_id=RUN,
            story_id="A",
            attempt=1,
            integration_commit="ca",
            dropped_artifacts=["PLAN.md"],
        )
    )
    assert run_for(d, "C").delivered[0].files == ["src/a.py"]


def test_a_retry_is_told_what_siblings_integrated_near_its_files() -> None:
    d = Driver()
    planned(d, PAR)
    for sid in ("A", "B", "D"):
        d.feed(s.StoryStarted(run_id=RUN, story_id=sid, attempt=1, runner="r"))
    d.feed(finish("A", changed_files=["src/a.py", "src/util.py"]))
    d.feed(integrated("A", ["src/a.py", "src/util.py"]))
    # B writes src/b.py: src/a.py and src/util.py sit next to it; D (docs) is far away
    assert [n.files for n in d.rec.story("B").nearby] == [["src/a.py", "src/util.py"]]  # type: ignore[union-attr]
    assert d.rec.story("D").nearby == []  # type: ignore[union-attr]
    d.feed(finish("B", status="failed", error="tests failed"))
    retry = run_for(d, "B")
    assert retry.attempt == 2
    assert [(n.story_id, n.files) for n in retry.nearby] == [("A", ["src/a.py", "src/util.py"])]
    assert d.rec.story("B").nearby == [], "told once"  # type: ignore[union-attr]


def test_an_integrated_story_keeps_no_news_it_will_never_be_told() -> None:
    d = Driver()
    planned(d, PAR)
    for sid in ("A", "B"):
        d.feed(s.StoryStarted(run_id=RUN, story_id=sid, attempt=1, runner="r"))
    d.feed(finish("A", changed_files=["src/a.py"]))
    d.feed(integrated("A", ["src/a.py"]))
    assert [n.story_id for n in d.rec.story("B").nearby] == ["A"]  # type: ignore[union-attr]
    d.feed(finish("B"))
    d.feed(integrated("B", ["src/b.py"]))
    assert d.rec.story("B").nearby == []  # type: ignore[union-attr]


def test_a_conflict_rerun_is_told_too() -> None:
    d = Driver()
    planned(d, PAR)
    d.feed(finish("B"))
    d.feed(finish("A", changed_files=["src/b.py"]))  # finished after B, integrated after it
    d.feed(integrated("B", ["src/b.py"]))
    d.feed(finish("D"))
    # A is waiting for its integration when B lands a change in A's directory
    d.feed(s.MergeConflict(run_id=RUN, story_id="A", attempt=1, paths=["src/b.py"]))
    rerun = run_for(d, "A")
    assert rerun.attempt == 2 and [n.kind for n in rerun.repair] == ["conflict"]
    assert [n.story_id for n in rerun.nearby] == ["B"]


# --------------------------------------------------------------------------- agents and models


def test_a_story_runs_with_its_own_model_else_its_tier_else_the_runs() -> None:
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["src/a.py", "src/x.py"], model="big-model"),
        s.Story(id="B", title="b", write_surface=["tests/test_b.py"]),
        s.Story(id="D", title="d", write_surface=["docs/guide.md"]),
        s.Story(id="E", title="e", write_surface=["src/e.py", "src/f.py"]),
        s.Story(id="F", title="f", write_surface=["src/one.py"], backend="codex"),
    ]
    tiers = [s.ModelTier(kind="docs", model="cheap-docs")]
    repo_tiers = [
        s.ModelTier(kind="docs", model="repo-docs"),
        s.ModelTier(kind="tests", model="repo-tests", backend="codex"),
    ]
    d.feed(submitted(mode_request="parallel", model="run-model", model_tiers=tiers))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base", model_tiers=repo_tiers))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))
    d.feed(finish("A"))  # frees a slot for the fifth story (parallelism 4)
    agents = {m.story.id: (m.backend, m.model) for m in d.commands(s.RunStory)}
    assert agents == {
        "A": ("scripted", "big-model"),  # its own
        "B": ("codex", "repo-tests"),  # the repository's tier (no tests tier given to the run)
        "D": ("scripted", "cheap-docs"),  # the run's tier wins over the repository's
        "E": ("scripted", "run-model"),  # no tier: the run's
        "F": ("codex", None),  # its own backend, with that CLI's default model
    }
    assert d.rec.story("B").model == "repo-tests"  # type: ignore[union-attr]
    table = core.summary_markdown(d.rec)
    assert "| story | status | agent | duration | tokens (in/cached/out) |" in table
    assert "| D d | assigned | scripted cheap-docs |" in table


# --------------------------------------------------------------------------- the goal's context

READING = "Make one small, behaviour-preserving cleanup in the most obvious spot."


def _decided(vague: bool) -> s.IntakeDecided:
    return s.IntakeDecided(
        run_id=RUN,
        decision=s.IntakeDecision(
            mode="focused",
            confidence=0.7,
            reason="r",
            vague=vague,
            interpretation=READING if vague else None,
            caps=s.Caps(max_stories=1, parallelism=1),
        ),
    )


def test_a_vague_goal_s_reading_reaches_every_attempt() -> None:
    d = Driver()
    d.feed(submitted(goal="make it better"))
    d.feed(_decided(vague=True))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="make it better")]))
    d.feed(finish("S1", status="failed"))
    assert [(m.attempt, m.interpretation) for m in d.commands(s.RunStory)] == [
        (1, READING),
        (2, READING),
    ]


def test_a_concrete_goal_has_no_reading() -> None:
    d = Driver()
    d.feed(submitted())
    d.feed(_decided(vague=False))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="fix")]))
    assert [m.interpretation for m in d.commands(s.RunStory)] == [None]


def test_a_follow_up_s_stories_are_told_what_the_branch_holds() -> None:
    held = s.FollowUp(goals=["fix the off-by-one"], commits=["abc1234 Fix the off-by-one"])
    d = Driver()
    d.feed(submitted(mode_request="focused", continue_branch="baro/fix", follow_up=held))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=[s.Story(id="S1", title="also the empty list")]))
    assert [m.follow_up for m in d.commands(s.RunStory)] == [held]


# --------------------------------------------------------------------------- priority


def test_ready_stories_start_longest_chain_first_then_biggest_then_plan_order() -> None:
    d = Driver()
    stories = [
        s.Story(id="leaf1", title="l1", write_surface=["a/1"]),
        s.Story(id="leaf2", title="l2", write_surface=["a/2"], effort=3.0),
        s.Story(id="head", title="h", write_surface=["a/3"]),  # two stories wait on it
        s.Story(id="mid", title="m", write_surface=["a/4"], depends_on=["head"]),
        s.Story(id="tail", title="t", write_surface=["a/5"], depends_on=["mid"]),
        s.Story(id="leaf3", title="l3", write_surface=["a/6"]),
    ]
    d.feed(submitted(mode_request="parallel", limits=s.Limits(parallelism=2)))
    d.feed(s.RunPrepared(run_id=RUN, base_commit="base"))
    d.feed(s.PlanProposed(run_id=RUN, stories=stories))
    # chains: head 3, leaf2 3 (effort), leaf1 1, leaf3 1; ties go to the bigger story
    assert [m.story.id for m in d.commands(s.RunStory)] == ["leaf2", "head"]
    d.feed(finish("leaf2"))
    assert [m.story.id for m in d.commands(s.RunStory)][2:] == ["leaf1"]


def test_with_two_waiting_the_one_that_unlocks_work_goes_before_the_one_that_finished_first() -> (
    None
):
    d = Driver()
    stories = [
        s.Story(id="A", title="a", write_surface=["a"]),
        s.Story(id="B", title="b", write_surface=["b"]),
        s.Story(id="L", title="l", write_surface=["l"]),
        s.Story(id="C", title="c", write_surface=["c"], depends_on=["B"]),
    ]
    planned(d, stories, design=None)
    d.feed(finish("A"))  # integrating
    d.feed(finish("L"))  # finished before B, nobody waits for it
    d.feed(finish("B"))
    d.feed(integrated("A", ["a"]))
    batches = [[item.story.id for item in m.stories] for m in d.commands(s.IntegrateStories)]
    assert batches == [["A"], ["B", "L"]], "B unlocks C: it goes first in the next batch"
