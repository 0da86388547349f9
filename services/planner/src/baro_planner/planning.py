"""Which planner plans a goal, and the model-backed flow: ask, read, repair once, or fail.

Used by the planner's bus handler and by ``baro plan``. The only I/O is the ``ask``
callable the caller passes (one tool-less question to an agent CLI), so the decisions
here are tested with the scripted agent as the backend and nothing else in between.

- focused: the goal as one story, always, without a model call.
- strategy ``deterministic``: the goal's own structure (steps, enumerated units), else
  the goal as one story.
- strategy ``llm``: the model decomposes the goal, whatever its structure.
- strategy ``auto``: the goal's own structure first; a model only for a goal without
  one, and only when a model backend is available. The scripted test/demo backend has
  no model behind it, so ``auto`` never asks it; ``llm`` does (its script answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import msgspec

from baro_planner.asking import Ask, ask_and_read
from baro_planner.asking import answer_text as answer_json_text
from baro_planner.design import ask_for_note, offline_note, side_by_side
from baro_planner.deterministic import plan_goal
from baro_planner.llm_plan import build_plan_prompt, parse_plan, repair_prompt
from baro_shared.goals.envelope import as_markdown
from baro_shared.oneshot import OneShotResult
from baro_shared.plan import PlanError
from baro_shared.schemas import Caps, DesignNote, GoalEnvelope, Mode, Story, TokenUsage

Strategy = Literal["auto", "deterministic", "llm"]
PlannerKind = Literal["deterministic", "llm", "single", "given"]


ASK_PURPOSE = "planner"
MODEL_FREE_BACKENDS = frozenset({"scripted"})


@dataclass(frozen=True)
class Proposal:
    """What the planner proposes, or why it could not (``error`` set, no stories)."""

    stories: list[Story]
    planner: PlannerKind
    notes: list[str] = field(default_factory=list)
    tokens: TokenUsage = field(default_factory=TokenUsage)
    error: str | None = None
    design: DesignNote | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def uses_model(
    strategy: Strategy, mode: Mode, structured: bool, backend: str | None, installed: bool
) -> bool:
    """Should a model decompose this goal?"""
    if mode == "focused":
        return False
    if strategy == "llm":
        return True
    if strategy == "deterministic" or structured:
        return False
    return backend is not None and backend not in MODEL_FREE_BACKENDS and installed


def _from_structure(stories: list[Story] | None, goal: str) -> Proposal:
    """The goal's own structure, or the goal as one story (with a note saying so)."""
    if stories is not None:
        return Proposal(stories, "single" if len(stories) == 1 else "deterministic")
    return Proposal(
        [single_story(goal)],
        "single",
        ["the goal states no steps or units to split along; planned as one story"],
    )


def single_story(goal: str) -> Story:
    text = goal.strip()
    title = text.splitlines()[0][:120] if text else "goal"
    return Story(id="S1", title=title, description=text)


async def plan_with_model(
    goal: str,
    mode: Mode,
    caps: Caps,
    files: list[str],
    ask: Ask,
    backend: str,
    max_files: int = 400,
    design_note: str | None = None,
) -> Proposal:
    """Ask the model for a plan; one repair attempt when its answer is unusable."""
    prompt = build_plan_prompt(goal, mode, caps, files, max_files, design_note)
    answer = await ask_and_read(
        ask,
        prompt,
        ASK_PURPOSE,
        lambda result: parse_plan(answer_text(result)),
        lambda result, problem: repair_prompt(answer_text(result), problem),
        PlanError,
    )
    if answer.value is not None:
        notes = []
        if answer.repaired:
            notes = [
                f"{backend}'s first plan was not usable ({answer.repaired}); "
                "its repaired plan was used"
            ]
        return _model_plan(answer.value, backend, answer.tokens, notes)
    if answer.failure == "ask":
        error = f"the {backend} CLI failed while planning: {answer.error}"
    elif answer.failure == "repair":
        error = (
            f"the {backend} CLI failed while repairing its plan ({answer.repaired}): {answer.error}"
        )
    else:
        error = (
            f"{backend} did not return a usable plan, even after one repair: "
            f"{answer.error} (retry, or give the stories yourself with --plan-file)"
        )
    return _failed(error, answer.tokens)


def _model_plan(
    stories: list[Story], backend: str, tokens: TokenUsage, notes: list[str]
) -> Proposal:
    """A model's stories run with the run's (or the tiers') agent: which agent and model a
    story gets is the submitter's choice, never the planning model's."""
    chosen = [st for st in stories if st.backend or st.model]
    if chosen:
        stories = [msgspec.structs.replace(st, backend=None, model=None) for st in stories]
        notes = [*notes, f"{backend} chose an agent or model for {len(chosen)} stories; ignored"]
    return Proposal(stories, "llm", [_planned_by(backend, stories), *notes], tokens)


def answer_text(result: OneShotResult) -> str:
    """The text holding the plan: the last one that mentions stories, else the final text."""
    return answer_json_text(result, "stories")


def _planned_by(backend: str, stories: list[Story]) -> str:
    count = f"{len(stories)} {'story' if len(stories) == 1 else 'stories'}"
    return f"planned by {backend} ({count})"


def _failed(error: str, tokens: TokenUsage) -> Proposal:
    return Proposal([], "llm", tokens=tokens, error=error)


def model_available(strategy: Strategy, backend: str | None, installed: bool) -> bool:
    """Is there a model to ask (a real one, or the scripted agent when asked for by name)?"""
    if backend is None or not installed or strategy == "deterministic":
        return False
    return backend not in MODEL_FREE_BACKENDS or strategy == "llm"


async def propose(
    goal: str,
    mode: Mode,
    caps: Caps,
    files: list[str] | None,
    *,
    strategy: Strategy = "auto",
    backend: str | None = None,
    installed: bool = False,
    ask: Ask | None = None,
    design: bool = False,
    given: list[Story] | None = None,
    envelope: GoalEnvelope | None = None,
) -> Proposal:
    """The plan for a goal under the chosen strategy (see the module doc), and, when
    ``design`` is asked for in parallel mode, the design note its side-by-side stories share.

    ``installed`` says whether the backend's CLI exists here; ``ask`` is how to reach it.
    ``given`` is the submitter's own plan: it is not planned again, only given a note.
    ``envelope`` is the clarified goal (``goal`` is then its objective): a model reads all
    of it; the goal's own structure is read from the objective alone.
    """
    design = design and mode == "parallel"
    note_by_model = design and ask is not None and model_available(strategy, backend, installed)
    if given is not None:
        proposal = Proposal(
            given, "given", [f"the plan was given with the run ({len(given)} stories)"]
        )
        return await _with_design(proposal, goal, files, ask, backend, design, note_by_model)
    structured = None
    if strategy != "llm" or mode == "focused":
        structured = plan_goal(goal, mode, caps, files)
    if not uses_model(strategy, mode, structured is not None, backend, installed):
        proposal = _from_structure(structured, goal)
        return await _with_design(proposal, goal, files, ask, backend, design, note_by_model)
    if backend is None or ask is None or not installed:
        name = backend or "agent"
        return _failed(
            f"the {name} CLI is not installed, so no model can plan this goal "
            "(install it, or plan without a model)",
            TokenUsage(),
        )
    # the model plans a free-form goal: it writes the design first and plans with it
    if envelope is not None:
        goal = f"{goal.strip()}\n\n{as_markdown(envelope)}"
    note = await ask_for_note(goal, [], files or [], ask, backend) if note_by_model else None
    proposal = await plan_with_model(
        goal, mode, caps, files or [], ask, backend, design_note=note.text if note else None
    )
    if note is not None and note.source == "offline" and proposal.ok:
        note = msgspec.structs.replace(note, text=offline_note(proposal.stories, files))
    return replace(proposal, design=note)


async def _with_design(
    proposal: Proposal,
    goal: str,
    files: list[str] | None,
    ask: Ask | None,
    backend: str | None,
    design: bool,
    by_model: bool,
) -> Proposal:
    """The plan's design note, when two or more of its stories may run side by side."""
    if not design or not proposal.ok or len(side_by_side(proposal.stories)) < 2:
        return proposal
    if by_model and ask is not None and backend is not None:
        note = await ask_for_note(goal, proposal.stories, files or [], ask, backend)
    else:
        note = DesignNote(text=offline_note(proposal.stories, files), source="offline")
    return replace(proposal, design=note)
