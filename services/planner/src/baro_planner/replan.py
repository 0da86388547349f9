"""Replanning: one tool-less question about a story that failed twice.

The model sees the story, what went wrong on each attempt, and how many stories may take
its place, and answers: split it into smaller stories, rewrite it as one clearer story,
or give it up with a reason. The answer is read strictly (one JSON object with exactly
``decision``, ``reason`` and, unless giving up, ``stories``, validated like a plan); an
unusable answer gets one repair question, and a second unusable answer (or a CLI that
fails) counts as giving up, with why. The conductor applies the outcome under the run's
mode and caps (and refuses what breaks them). The only I/O is ``ask``; the scripted agent
answers as story ``baro-replan-<story id>`` (its repair question as
``baro-replan-<story id>-repair``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from baro_planner.asking import Ask, answer_text, ask_and_read, echo, first_json_object
from baro_shared.plan import PlanError, stories_from_data
from baro_shared.schemas import Mode, ReplanDecision, Story, TokenUsage
from baro_shared.surfaces import covered

Decision = ReplanDecision
REASON_CHARS = 500
FAILURE_CHARS = 3000  # of what went wrong, per attempt


def purpose(story_id: str) -> str:
    return f"replan-{story_id}"


class ReplanError(ValueError):
    """The answer cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class Replan:
    decision: Decision
    reason: str
    stories: list[Story] = field(default_factory=list)
    tokens: TokenUsage = field(default_factory=TokenUsage)
    note: str | None = None  # that it gave up for want of a usable answer, or needed a repair


_SHAPE = """{
  "decision": "split" | "rewrite" | "give_up",
  "reason": "one sentence: why",
  "stories": [
    {"id": "A", "title": "...", "description": "...", "depends_on": [],
     "write_surface": ["path/or/glob"], "acceptance": ["..."]}
  ]
}"""


def replan_prompt(goal: str, mode: Mode, story: Story, failures: list[str], room: int) -> str:
    """The question: the story, what happened to it, and what may replace it."""
    options = [
        "- rewrite: ONE story that does the same work, described so that an agent can do "
        "it (clearer steps, the missing context, a different approach).",
    ]
    if room >= 2:
        options.insert(
            0,
            f"- split: two to {room} smaller stories that together do the same work, each "
            "one leaving the repository working; depends_on names ids among these stories.",
        )
    options.append(
        "- give_up: the story cannot be done as asked (say why, for the person who ran it)."
    )
    surface = ", ".join(story.write_surface) or "(any file)"
    parts = [
        "A coding agent failed the same story twice. Decide how to go on.",
        f"Goal of the whole run:\n<<<\n{goal.strip()}\n>>>",
        f"The story ({mode} run): {story.title}\n{story.description.strip()}".strip(),
        f"Files it may change: {surface}. New stories may change only those.",
    ]
    if story.acceptance:
        parts.append("Acceptance criteria:\n" + "\n".join(f"- {a}" for a in story.acceptance))
    parts.append(
        "What went wrong:\n"
        + "\n\n".join(f"{i}. {f[:FAILURE_CHARS]}" for i, f in enumerate(failures, 1))
    )
    parts.append("Options:\n" + "\n".join(options))
    parts.append(f"Answer with exactly one JSON object of this shape, and nothing else:\n{_SHAPE}")
    return "\n\n".join(parts)


def read_replan(text: str, room: int, surface: list[str]) -> tuple[Decision, str, list[Story]]:
    """The decision in an answer, checked, or ReplanError saying what is wrong."""
    found = first_json_object(text, "decision")
    if found is None:
        raise ReplanError("the answer contains no JSON object")
    unknown = sorted(set(found) - {"decision", "reason", "stories"})
    if unknown:
        raise ReplanError(f"unknown key {unknown[0]!r} (decision, reason and stories only)")
    decision = found.get("decision")
    if decision not in ("split", "rewrite", "give_up"):
        raise ReplanError(f'decision must be "split", "rewrite" or "give_up", not {decision!r}')
    reason = found.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ReplanError("reason must be a non-empty string")
    reason = " ".join(reason.split())[:REASON_CHARS]
    raw = found.get("stories", [])
    if decision == "give_up":
        return "give_up", reason, []
    try:
        stories = stories_from_data({"stories": raw})
    except PlanError as exc:
        raise ReplanError(str(exc)) from None
    if decision == "rewrite" and len(stories) != 1:
        raise ReplanError(f"a rewrite is exactly one story, not {len(stories)}")
    if decision == "split" and not 2 <= len(stories) <= room:
        allowed = f"two to {room}" if room >= 2 else "none (a split is not possible here)"
        raise ReplanError(f"a split here is {allowed} stories, not {len(stories)}")
    for story in stories:
        outside = [p for p in story.write_surface if surface and not covered(p, surface)]
        if outside:
            raise ReplanError(
                f"story {story.id} would change {', '.join(outside)}: new stories may "
                f"change only {', '.join(surface)}"
            )
    return decision, reason, stories


def repair_prompt(previous: str, problem: str) -> str:
    return "\n\n".join(
        [
            "Your previous answer to a replanning request could not be used.",
            f"Problem: {problem}",
            f"Previous answer:\n<<<\n{echo(previous)}\n>>>",
            "Fix that problem and answer again, as exactly one JSON object of this shape and "
            f"nothing else:\n{_SHAPE}",
        ]
    )


async def replan_story(
    goal: str,
    mode: Mode,
    story: Story,
    failures: list[str],
    room: int,
    ask: Ask,
    backend: str,
) -> Replan:
    """Ask how to go on with a story that failed twice; one repair for an unusable answer,
    else it is given up, saying why."""
    answer = await ask_and_read(
        ask,
        replan_prompt(goal, mode, story, failures, room),
        purpose(story.id),
        lambda result: read_replan(answer_text(result, "decision"), room, story.write_surface),
        lambda result, problem: repair_prompt(answer_text(result, "decision"), problem),
        ReplanError,
    )
    if answer.value is not None:
        decision, reason, stories = answer.value
        note = f"its first answer was unusable ({answer.repaired})" if answer.repaired else None
        return Replan(decision, reason, stories, answer.tokens, note)
    why = {
        "ask": f"the {backend} CLI failed while replanning: {answer.error}",
        "repair": f"no usable replanning answer ({answer.repaired}); the repair failed: "
        f"{answer.error}",
        "read": f"no usable replanning answer, even after one repair: {answer.error}",
    }[answer.failure or "read"]
    return Replan("give_up", why, tokens=answer.tokens, note=why)
