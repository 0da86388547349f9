"""The instructions an agent receives for one story."""

from __future__ import annotations

from baro_shared import schemas as s

RULES = """\
Rules:
- Change only what this story asks for. Do not refactor, reformat or touch unrelated files.
- Do not create planning, progress or note files (no prd.json, progress.txt, PLAN.md, ADR drafts).
- Do not push, open pull requests, or contact any remote service.
- You may commit, but you do not need to: every change left in the working tree is collected."""


def build_prompt(cmd: s.RunStory) -> str:
    story = cmd.story
    parts = [
        "You are working on one story of a larger goal, in a git repository (your working directory).",
        "",
        f"Goal of the whole run: {cmd.goal.strip()}",
        "",
        f"Your story ({story.id}): {story.title}",
    ]
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
    if cmd.conflict_note:
        parts += ["", cmd.conflict_note]
    if cmd.surface_note:
        parts += ["", cmd.surface_note]
    parts += ["", RULES]
    return "\n".join(parts)
