"""A clarified goal (its envelope) as the planner, every agent and the pull request read it.

The envelope is made once, by the intake, from the answers to a vague goal's questions
(or by a model's ``ready``); everything downstream shows it the same way, from here.
"""

from __future__ import annotations

from baro_shared.schemas import Clarification, GoalEnvelope

MAX_ITEM_CHARS = 500
MAX_ITEMS = 12


def work_goal(goal: str, envelope: GoalEnvelope | None) -> str:
    """The goal to plan and classify: the envelope's objective once there is one."""
    return envelope.objective if envelope is not None and envelope.objective.strip() else goal


def _items(values: list[str]) -> list[str]:
    kept = [" ".join(v.split())[:MAX_ITEM_CHARS] for v in values if v and v.strip()]
    return kept[:MAX_ITEMS]


def sections(envelope: GoalEnvelope) -> list[tuple[str, list[str]]]:
    """The envelope's lists with their headings, empty ones left out."""
    found = [
        ("Acceptance criteria", _items(envelope.acceptance_criteria)),
        ("Constraints", _items(envelope.constraints)),
        ("Non-goals (do not do these)", _items(envelope.non_goals)),
        ("Assumptions", _items(envelope.assumptions)),
    ]
    return [(title, values) for title, values in found if values]


def clarification_markdown(
    clarification: Clarification | None, envelope: GoalEnvelope | None, heading: str = "###"
) -> list[str]:
    """The questions asked before the run, their answers, and the envelope they made: for
    the run's summary and its pull request body (no lines when nothing was asked)."""
    lines: list[str] = []
    if clarification is not None and clarification.questions:
        given = {a.question_id: a.text for a in clarification.answers}
        lines += [f"{heading} Questions before the run ({clarification.status})", ""]
        for q in clarification.questions:
            lines.append(f"- {q.text} — {given.get(q.id) or '(not answered)'}")
        lines.append("")
    if envelope is not None:
        lines += [as_markdown(envelope, heading), ""]
    return lines


def as_markdown(envelope: GoalEnvelope, heading: str = "###") -> str:
    """The envelope as a block of markdown: for prompts, the summary and the PR body."""
    lines = [
        f"{heading} What was agreed before the run",
        "",
        f"**Objective:** {envelope.objective}",
    ]
    for title, values in sections(envelope):
        lines += ["", f"**{title}:**", *(f"- {value}" for value in values)]
    return "\n".join(lines)
