"""The instructions an agent receives for one story.

The prompt is a list of independent sections, each present only when it has something to
say: the story itself (with a vague goal's reading), the clarified goal (what the user
answered before the run: objective, acceptance criteria, constraints, non-goals), what an earlier run left on the
branch a follow-up continues, the design note parallel stories share, what the story's
dependencies delivered, what other stories integrated near its files since its previous
attempt began, what went wrong before (a conflict, a change outside its write surface, a
failure, failing checks, a critique; on a repair turn, that it goes on from its previous
result), and the rules.
"""

from __future__ import annotations

from collections.abc import Callable

from baro_shared import schemas as s
from baro_shared.goals.envelope import as_markdown

RULES = """\
Rules:
- Change only what this story asks for. Do not refactor, reformat or touch unrelated files.
- Do not create planning, progress or note files (no prd.json, progress.txt, PLAN.md, ADR drafts).
- Do not push, open pull requests, or contact any remote service.
- You may commit, but you do not need to: every change left in the working tree is collected."""

MAX_FILES_LISTED = 20
MAX_GOAL_CHARS = 500  # of each earlier goal of a follow-up


def _story(cmd: s.RunStory) -> list[str]:
    story = cmd.story
    parts = [
        "You are working on one story of a larger goal, in a git repository (your working directory).",
        "",
        f"Goal of the whole run: {cmd.goal.strip()}",
    ]
    if cmd.interpretation:
        parts += [
            "",
            "The goal is vague; it is read as follows, and this reading is the whole task: "
            + cmd.interpretation.strip(),
        ]
    parts += ["", f"Your story ({story.id}): {story.title}"]
    if story.description and story.description.strip() != story.title.strip():
        parts += ["", story.description.strip()]
    if story.acceptance:
        parts += ["", "Acceptance criteria:", *(f"- {a}" for a in story.acceptance)]
    if story.write_surface:
        parts += [
            "",
            "Your write surface (change files only here):",
            *(f"- {p}" for p in story.write_surface),
        ]
    return parts


def _agreed(cmd: s.RunStory) -> list[str]:
    """The clarified goal: what the user answered before the run, binding on every story."""
    if cmd.envelope is None:
        return []
    return [
        as_markdown(cmd.envelope, heading="##"),
        "",
        "This was agreed with the user before the run: meet the acceptance criteria that "
        "concern your story, keep to the constraints, and do none of the non-goals.",
    ]


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _follow_up(cmd: s.RunStory) -> list[str]:
    follow = cmd.follow_up
    if follow is None or not (follow.goals or follow.commits):
        return []
    parts = [
        "This run follows up on earlier work: your working tree is a branch that earlier runs "
        "made. Build on what it holds; do not redo or undo it unless the goal asks for that."
    ]
    if follow.goals:
        parts += ["Earlier goals of this branch (oldest first):"]
        parts += [f"- {_one_line(goal, MAX_GOAL_CHARS)}" for goal in follow.goals]
    if follow.commits:
        parts += ["The branch's commits (newest first):", *(f"- {c}" for c in follow.commits)]
        if follow.more_commits:
            parts.append(f"- and {follow.more_commits} older")
    return parts


def _design(cmd: s.RunStory) -> list[str]:
    if not cmd.design_note:
        return []
    return [
        "Shared design (every story running beside yours received the same note; follow it "
        "so the pieces fit together):",
        cmd.design_note.strip(),
    ]


def _files(delivery: s.Delivery) -> str:
    shown = ", ".join(delivery.files[:MAX_FILES_LISTED]) or "no files"
    more = len(delivery.files) - MAX_FILES_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _deliveries(deliveries: list[s.Delivery]) -> list[str]:
    return [f'- {d.story_id} "{d.title}" (commit {d.commit[:12]}): {_files(d)}' for d in deliveries]


def _delivered(cmd: s.RunStory) -> list[str]:
    if not cmd.delivered:
        return []
    return [
        "What the stories yours depends on delivered (already in your working tree; build on "
        "it, do not redo it):",
        *_deliveries(cmd.delivered),
    ]


def _nearby(cmd: s.RunStory) -> list[str]:
    if not cmd.nearby:
        return []
    return [
        "Since your previous attempt started, other stories merged changes near your files. "
        "They are in your working tree now: start from them, and do not undo them.",
        *_deliveries(cmd.nearby),
    ]


RESUMED = (
    "This is a repair turn: the working tree already holds your previous attempt's "
    "change (attempt {attempt}, committed on the current branch). Keep what is right, "
    "fix what is described below, and do not start over."
)


def _repair(cmd: s.RunStory) -> list[str]:
    """What went wrong before: one paragraph per repair note (a conflict, changes outside
    the write surface, a failure, failing checks, a critique), empty on a first attempt."""
    notes = [note.text for note in cmd.repair]
    notes += [note for note in (cmd.conflict_note, cmd.surface_note) if note]  # older senders
    if not notes and cmd.resume is None:
        return []
    parts = ["What happened before (do not repeat it):"]
    if cmd.resume is not None:
        parts += ["", RESUMED.format(attempt=cmd.resume.attempt)]
    for note in notes:
        parts += ["", note.strip()]
    return parts


def _rules(cmd: s.RunStory) -> list[str]:
    return [RULES]


SECTIONS: tuple[Callable[[s.RunStory], list[str]], ...] = (
    _story,
    _agreed,
    _follow_up,
    _design,
    _delivered,
    _nearby,
    _repair,
    _rules,
)


def build_prompt(cmd: s.RunStory) -> str:
    return "\n\n".join(
        "\n".join(lines) for lines in (section(cmd) for section in SECTIONS) if lines
    )
