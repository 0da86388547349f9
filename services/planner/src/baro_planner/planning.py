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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from baro_planner.deterministic import plan_goal
from baro_planner.llm_plan import build_plan_prompt, parse_plan, repair_prompt
from baro_shared.oneshot import OneShotResult
from baro_shared.plan import PlanError
from baro_shared.schemas import Caps, Mode, Story, TokenUsage

Strategy = Literal["auto", "deterministic", "llm"]
PlannerKind = Literal["deterministic", "llm", "single", "given"]

# (prompt, purpose) -> the backend's answer. The purpose is "planner" for the first
# question and "planner-repair" for the repair, so a scripted backend can answer each.
Ask = Callable[[str, str], Awaitable[OneShotResult]]

ASK_PURPOSE = "planner"
REPAIR_PURPOSE = "planner-repair"
MODEL_FREE_BACKENDS = frozenset({"scripted"})


@dataclass(frozen=True)
class Proposal:
    """What the planner proposes, or why it could not (``error`` set, no stories)."""

    stories: list[Story]
    planner: PlannerKind
    notes: list[str] = field(default_factory=list)
    tokens: TokenUsage = field(default_factory=TokenUsage)
    error: str | None = None

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
) -> Proposal:
    """Ask the model for a plan; one repair attempt when its answer is unusable."""
    tokens = TokenUsage()
    first = await ask(build_plan_prompt(goal, mode, caps, files, max_files), ASK_PURPOSE)
    tokens = tokens + first.usage
    if not first.ok:
        return _failed(f"the {backend} CLI failed while planning: {first.error}", tokens)
    try:
        stories = parse_plan(answer_text(first))
    except PlanError as problem:
        second = await ask(repair_prompt(answer_text(first), str(problem)), REPAIR_PURPOSE)
        tokens = tokens + second.usage
        if not second.ok:
            return _failed(
                f"the {backend} CLI failed while repairing its plan ({problem}): {second.error}",
                tokens,
            )
        try:
            stories = parse_plan(answer_text(second))
        except PlanError as again:
            return _failed(
                f"{backend} did not return a usable plan, even after one repair: "
                f"{again} (retry, or give the stories yourself with --plan-file)",
                tokens,
            )
        note = f"{backend}'s first plan was not usable ({problem}); its repaired plan was used"
        return Proposal(stories, "llm", [_planned_by(backend, stories), note], tokens)
    return Proposal(stories, "llm", [_planned_by(backend, stories)], tokens)


def answer_text(result: OneShotResult) -> str:
    """The text holding the plan: the last one that mentions stories, else the final text.

    An agent CLI may say something after its answer (a closing line); the plan is in the
    last text that carries one.
    """
    with_plan = [text for text in result.texts if '"stories"' in text]
    return with_plan[-1] if with_plan else result.text


def _planned_by(backend: str, stories: list[Story]) -> str:
    count = f"{len(stories)} {'story' if len(stories) == 1 else 'stories'}"
    return f"planned by {backend} ({count})"


def _failed(error: str, tokens: TokenUsage) -> Proposal:
    return Proposal([], "llm", tokens=tokens, error=error)


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
) -> Proposal:
    """The plan for a goal under the chosen strategy (see the module doc).

    ``installed`` says whether the backend's CLI exists here; ``ask`` is how to reach it.
    """
    structured = None
    if strategy != "llm" or mode == "focused":
        structured = plan_goal(goal, mode, caps, files)
    if not uses_model(strategy, mode, structured is not None, backend, installed):
        return _from_structure(structured, goal)
    if backend is None or ask is None or not installed:
        name = backend or "agent"
        return _failed(
            f"the {name} CLI is not installed, so no model can plan this goal "
            "(install it, or plan without a model)",
            TokenUsage(),
        )
    return await plan_with_model(goal, mode, caps, files or [], ask, backend)
