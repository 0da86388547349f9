"""One question to a model, read strictly, and one repair question when the answer is
unusable: the shape every planner question has (the plan, the design note, the critic's
review, the replanning of a story)."""

from __future__ import annotations

import json
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


ECHO_CHARS = 20_000  # of a previous answer quoted back in a repair question


def first_json_object(text: str, key: str) -> dict[str, object] | None:
    """The first decodable JSON object in ``text``; the first one holding ``key`` wins
    over earlier ones. Prose and code fences around it are tolerated; prose that merely
    contains braces ("{ like this }") is skipped."""
    decoder = json.JSONDecoder()
    first: dict[str, object] | None = None
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except (json.JSONDecodeError, RecursionError):
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            if key in value:
                return value
            if first is None:
                first = value
        position = text.find("{", end)
    return first


def answer_text(result: OneShotResult, key: str) -> str:
    """The text holding the answer: the last one that names ``key``, else the final text.

    An agent CLI may say something after its answer (a closing line); the answer is in
    the last text that carries one.
    """
    with_key = [text for text in result.texts if f'"{key}"' in text]
    return with_key[-1] if with_key else result.text


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """A previous answer quoted back in a repair question, cut at ``limit`` characters."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "\n[... answer cut here ...]"
