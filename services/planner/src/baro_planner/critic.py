"""The critic: one tool-less question per story that has acceptance criteria.

The model sees the story, its change (a bounded diff) and its checks' results, and
answers ``approve`` or ``revise`` with reasons. The answer is read strictly: one JSON
object with exactly ``verdict`` and ``reasons``. An unusable answer gets one repair
question; a second unusable answer, or a CLI that fails, makes the critic *abstain*:
the story goes on, and the abstention is recorded with why. The only I/O is the ``ask``
callable (``oneshot.ask`` in the planner's handler), so the flow is tested with the
scripted agent answering as story ``baro-critic-<story id>`` (its repair question as
``baro-critic-<story id>-repair``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from baro_planner.asking import Ask, answer_text, ask_and_read, echo, first_json_object
from baro_shared.checks import describe
from baro_shared.schemas import CheckResult, Story, TokenUsage

Verdict = Literal["approve", "revise", "abstain"]

DIFF_CHARS = 24_000  # of the change shown to the critic
MAX_REASONS = 8
REASON_CHARS = 400


def purpose(story_id: str) -> str:
    """What the question is for; the scripted agent sees it as its story id
    (``baro-critic-S1``)."""
    return f"critic-{story_id}"


class ReviewError(ValueError):
    """The critic's answer cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class Review:
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    tokens: TokenUsage = field(default_factory=TokenUsage)
    note: str | None = None  # why it abstained, or that its first answer needed a repair


_SHAPE = '{"verdict": "approve", "reasons": []}  or  {"verdict": "revise", "reasons": ["..."]}'

_RULES = """Rules:
- approve: the change does what the story asks and meets every acceptance criterion.
- revise: something a criterion asks for is missing or wrong. Give one to five concrete
  reasons the agent can act on: what is missing or wrong, and where.
- Judge only this story. Do not ask for style changes, refactors, documentation or tests
  nobody asked for, or work that belongs to other stories.
- You cannot run anything: the checks listed were run on the change for you."""


def critic_prompt(goal: str, story: Story, diff: str, checks: list[CheckResult]) -> str:
    """The question: the story, its checks and its change, and the answer's shape."""
    parts = [
        "You are reviewing the work a coding agent did for one story of a larger change. "
        "Decide whether its change meets the story's acceptance criteria.",
        f"Goal of the whole run:\n<<<\n{goal.strip()}\n>>>",
        f"Story {story.id}: {story.title}",
    ]
    if story.description.strip() and story.description.strip() != story.title.strip():
        parts.append(story.description.strip())
    parts.append("Acceptance criteria:\n" + "\n".join(f"- {a}" for a in story.acceptance))
    if story.write_surface:
        parts.append("Files it may change: " + ", ".join(story.write_surface))
    if checks:
        parts.append("Checks run on the change:\n" + "\n".join(f"- {describe(c)}" for c in checks))
    else:
        parts.append("Checks run on the change: none (the repository has none configured)")
    shown = diff if len(diff) <= DIFF_CHARS else diff[:DIFF_CHARS]
    cut = f" (the first {DIFF_CHARS} of {len(diff)} characters)" if len(diff) > DIFF_CHARS else ""
    parts.append(f"The change, as a diff against the story's base{cut}:\n<<<\n{shown}\n>>>")
    parts += [_RULES, f"Answer with exactly one JSON object, and nothing else:\n{_SHAPE}"]
    return "\n\n".join(parts)


def read_review(text: str) -> tuple[Literal["approve", "revise"], list[str]]:
    """The verdict and reasons in an answer, or ReviewError saying what is wrong."""
    found = first_json_object(text, "verdict")
    if found is None:
        raise ReviewError("the answer contains no JSON object")
    unknown = sorted(set(found) - {"verdict", "reasons"})
    if unknown:
        raise ReviewError(f"unknown key {unknown[0]!r} (the object has verdict and reasons only)")
    verdict = found.get("verdict")
    if verdict not in ("approve", "revise"):
        raise ReviewError(f'verdict must be "approve" or "revise", not {verdict!r}')
    reasons = found.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise ReviewError("reasons must be a list of strings")
    kept = [" ".join(r.split())[:REASON_CHARS] for r in reasons if r.strip()][:MAX_REASONS]
    if verdict == "revise" and not kept:
        raise ReviewError("a revise verdict needs at least one reason")
    return verdict, kept


def repair_prompt(previous: str, problem: str) -> str:
    return "\n\n".join(
        [
            "Your previous answer to a review request could not be used.",
            f"Problem: {problem}",
            f"Previous answer:\n<<<\n{echo(previous)}\n>>>",
            "Answer again with the same judgement, as exactly one JSON object of this shape "
            f"and nothing else:\n{_SHAPE}",
            _RULES,
        ]
    )


async def review_story(
    goal: str, story: Story, diff: str, checks: list[CheckResult], ask: Ask, backend: str
) -> Review:
    """Ask the critic; one repair question for an unusable answer, else abstain."""
    answer = await ask_and_read(
        ask,
        critic_prompt(goal, story, diff, checks),
        purpose(story.id),
        lambda result: read_review(answer_text(result, "verdict")),
        lambda result, problem: repair_prompt(answer_text(result, "verdict"), problem),
        ReviewError,
    )
    if answer.value is not None:
        verdict, reasons = answer.value
        note = f"its first answer was unusable ({answer.repaired})" if answer.repaired else None
        return Review(verdict, reasons, answer.tokens, note)
    why = {
        "ask": f"the {backend} CLI failed: {answer.error}",
        "repair": f"its answer was unusable ({answer.repaired}) and the repair failed: "
        f"{answer.error}",
        "read": f"no usable answer, even after one repair: {answer.error}",
    }[answer.failure or "read"]
    return Review("abstain", tokens=answer.tokens, note=why)
