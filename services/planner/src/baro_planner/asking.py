"""One question to a model, read strictly, and one repair question when the answer is
unusable: the shape every planner question has (the plan, the design note)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from baro_shared.oneshot import OneShotResult
from baro_shared.schemas import TokenUsage

T = TypeVar("T")

# (prompt, purpose) -> the backend's answer. The purpose ("planner", "architect", and
# "<purpose>-repair" for a repair) is the story id the scripted agent answers as.
Ask = Callable[[str, str], Awaitable[OneShotResult]]


@dataclass
class Answer(Generic[T]):
    """What was read, or why nothing could be: ``failure`` names the step that failed."""

    value: T | None
    tokens: TokenUsage = field(default_factory=TokenUsage)
    failure: str | None = None  # "ask", "repair" or "read"
    error: str | None = None  # the CLI's error, or the reader's last complaint
    repaired: str | None = None  # what was wrong with the first answer, when repaired


async def ask_and_read(
    ask: Ask,
    prompt: str,
    purpose: str,
    read: Callable[[OneShotResult], T],
    repair: Callable[[OneShotResult, str], str],
    problem_type: type[Exception],
) -> Answer[T]:
    """Ask; read the answer with ``read`` (which raises ``problem_type`` when it cannot);
    on a problem, ask once more with ``repair(first answer, problem)``."""
    first = await ask(prompt, purpose)
    tokens = first.usage
    if not first.ok:
        return Answer(None, tokens, "ask", first.error)
    try:
        return Answer(read(first), tokens)
    except problem_type as problem:
        second = await ask(repair(first, str(problem)), f"{purpose}-repair")
        tokens = tokens + second.usage
        if not second.ok:
            return Answer(None, tokens, "repair", second.error, repaired=str(problem))
        try:
            return Answer(read(second), tokens, repaired=str(problem))
        except problem_type as again:
            return Answer(None, tokens, "read", str(again), repaired=str(problem))
