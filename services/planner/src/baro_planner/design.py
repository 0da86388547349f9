"""The design note: what stories running side by side share, pinned before they start.

Parallel stories each start from the same base and cannot see each other's work, so each
would invent its own name for a shared helper, its own fixture, its own layout. One short
note, given to every story, pins those: the names, interfaces, file layout and
conventions they share.

- With a model backend: one tool-less question (``baro-architect`` for the scripted
  agent), read strictly (at most ``MAX_NOTE_CHARS``; no instruction to skip tests,
  checks or hooks) with one repair question; a second unusable answer falls back to the
  planner's own summary, with a note saying why.
- Without one: the planner's deterministic summary of the plan (who writes which files,
  what is shared and read-only, where new files go and which neighbours they follow).

Pure apart from the ``ask`` callable, as in :mod:`baro_planner.planning`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from baro_planner.asking import Ask, ask_and_read
from baro_planner.llm_plan import file_section
from baro_shared.plan import ancestors, ordered
from baro_shared.schemas import DesignNote, Story, TokenUsage
from baro_shared.surfaces import is_glob, surfaces_overlap

ASK_PURPOSE = "architect"
MAX_NOTE_CHARS = 4000
MAX_NOTE_WORDS = 400
MAX_NEIGHBOURS = 3

# A note that tells agents to get around the checks is rejected: a design never needs it.
_SKIP_CHECKS = re.compile(
    r"""
      \b(?:skip|skipping|disable|disabling|bypass|bypassing|ignore|ignoring|turn\s+off|
          comment\s+out|silence|suppress|delete|remove|drop)\b
        [^.\n]{0,40}?\b(?:tests?|test\s+suite|checks?|hooks?|pre-commit|linters?|linting|lint|
          ci|verification|verify\s+step|type[- ]?check(?:s|ing|er)?|mypy|assertions?)\b
    | --no-verify\b | \bno[- ]verify\b | \bpytest\.mark\.(?:skip|xfail)\b | @(?:skip|xfail)\b
    | \b(?:it\.skip|test\.skip|describe\.skip|xit|xdescribe)\b | \bt\.Skip\( | \#\[ignore\]
    | \bSKIP\s*= | \bHUSKY\s*=\s*0\b | \bnoqa\b | \btype:\s*ignore\b
    | \b(?:do\s+not|don'?t|never|no\s+need\s+to)\s+(?:run|write|add|update|keep)\s+(?:any\s+|the\s+)?
        (?:tests?|checks?|hooks?)\b
    """,
    re.I | re.X,
)


class DesignError(ValueError):
    """Why an answer cannot be the design note."""


def read_note(text: str) -> str:
    """The note in a model's answer, or a DesignError naming what is wrong with it."""
    note = _unfenced(text).strip()
    if not note:
        raise DesignError("the answer is empty")
    if len(note) > MAX_NOTE_CHARS or len(note.split()) > MAX_NOTE_WORDS:
        raise DesignError(
            f"the note is too long ({len(note.split())} words, {len(note)} characters; "
            f"at most {MAX_NOTE_WORDS} words and {MAX_NOTE_CHARS} characters)"
        )
    bad = _SKIP_CHECKS.search(note)
    if bad:
        raise DesignError(
            f'the note tells agents to get around the checks ("{" ".join(bad.group(0).split())}")'
        )
    return note


def _unfenced(text: str) -> str:
    fenced = re.fullmatch(r"\s*```[\w-]*\n(.*?)\n```\s*", text, re.S)
    return fenced.group(1) if fenced else text


def side_by_side(stories: Sequence[Story]) -> list[Story]:
    """The stories that may run at the same time as another one (neither waits for it)."""
    anc = ancestors(stories)
    return [a for a in stories if any(b is not a and not ordered(a.id, b.id, anc) for b in stories)]


# --------------------------------------------------------------------------- the question


def design_prompt(goal: str, stories: Sequence[Story], files: list[str]) -> str:
    """The one question: what must stories running side by side agree on?"""
    if stories:
        plan = "\n".join(
            f"- {s.id}: {s.title}"
            + (f" (writes {', '.join(s.write_surface)})" if s.write_surface else "")
            for s in stories
        )
        who = f"These stories will run at the same time, one coding agent each:\n{plan}"
    else:
        who = (
            "The goal will be split into stories that run at the same time, one coding agent each."
        )
    return "\n\n".join(
        [
            "You are the architect of a change to a git repository. Several coding agents "
            "will work on it side by side; none of them sees the others' work until it is "
            "merged. Write the short design note every one of them receives, so their pieces "
            "fit together.",
            who,
            "The note pins only what the stories share: the names of shared helpers, types "
            "and fixtures (and which story owns each), the interfaces between the pieces "
            "(signatures, data shapes), the file layout (where new files go, how they are "
            "named), and the conventions to follow (with the existing file to copy from). "
            f"At most {MAX_NOTE_WORDS} words, plain markdown, no code beyond signatures. "
            "Do not plan extra work, do not repeat the goal, and never tell the agents to "
            "skip, disable or work around tests, checks or hooks. Answer with the note only.",
            file_section(goal, files, 300),
            f"Goal:\n<<<\n{goal.strip()}\n>>>",
        ]
    )


def repair_prompt(previous: str, problem: str) -> str:
    echo = previous.strip()[: MAX_NOTE_CHARS * 2]
    return "\n\n".join(
        [
            "Your design note could not be used.",
            f"Problem: {problem}",
            f"Previous answer:\n<<<\n{echo}\n>>>",
            f"Answer again with the note only: at most {MAX_NOTE_WORDS} words, what the "
            "stories share (names, interfaces, layout, conventions), and no instruction to "
            "skip tests, checks or hooks.",
        ]
    )


async def ask_for_note(
    goal: str, stories: Sequence[Story], files: list[str], ask: Ask, backend: str
) -> DesignNote:
    """The model's note, repaired once; else the planner's summary, saying why."""
    answer = await ask_and_read(
        ask,
        design_prompt(goal, stories, files),
        ASK_PURPOSE,
        lambda result: read_note(result.text),
        lambda result, problem: repair_prompt(result.text, problem),
        DesignError,
    )
    if answer.value is not None:
        notes = []
        if answer.repaired:
            notes = [
                f"{backend}'s first design note was not usable ({answer.repaired}); "
                "its repair was used"
            ]
        return DesignNote(text=answer.value, source="model", tokens=answer.tokens, notes=notes)
    why = {
        "ask": f"the {backend} CLI failed while writing the design note: {answer.error}",
        "repair": f"the {backend} CLI failed while repairing its design note: {answer.error}",
        "read": f"{backend}'s design note was not usable, even after one repair: {answer.error}",
    }[answer.failure or "read"]
    return _fallback(stories, files, answer.tokens, why)


def _fallback(
    stories: Sequence[Story], files: list[str], tokens: TokenUsage, why: str
) -> DesignNote:
    return DesignNote(
        text=offline_note(stories, files),
        source="offline",
        tokens=tokens,
        notes=[f"{why}; the planner's own summary was used"],
    )


# --------------------------------------------------------------------------- offline


def offline_note(stories: Sequence[Story], files: Sequence[str] | None) -> str:
    """The planner's summary of what parallel stories share, from the plan and the files."""
    parallel = side_by_side(stories) or list(stories)
    lines = [
        f"{len(parallel)} stories run side by side; none sees the others' work until it is "
        "merged. Each changes only its own files:"
    ]
    for story in parallel:
        surface = ", ".join(story.write_surface) if story.write_surface else "(no files named)"
        lines.append(f"- {story.id} ({story.title}): {surface}")
    lines.append(
        "- Every other file is shared: read it, and do not change it unless your story says "
        "so; another story may be changing the code next to it. Use the helpers, types and "
        "fixtures that already exist instead of adding your own copy; a helper only your "
        "story needs stays in your own files."
    )
    neighbours = _neighbours(parallel, files or ())
    if neighbours:
        lines.append("Layout and conventions (follow the files already there):")
        lines.extend(neighbours)
    touching = _overlaps(parallel)
    if touching:
        lines.append(
            "These stories' files may overlap, so they run one after the other: " + touching
        )
    return "\n".join(lines)


def _neighbours(stories: Sequence[Story], files: Sequence[str]) -> list[str]:
    """For each directory that gets new files: the existing files there to follow."""
    existing = set(files)
    out: list[str] = []
    seen: set[str] = set()
    for story in stories:
        for path in story.write_surface:
            if is_glob(path) or path in existing:
                continue
            directory = posixpath.dirname(path)
            if directory in seen:
                continue
            seen.add(directory)
            siblings = sorted(
                posixpath.basename(f) for f in files if posixpath.dirname(f) == directory
            )
            examples = [f for f in siblings if not f.startswith("__")][:MAX_NEIGHBOURS]
            where = directory or "the repository root"
            if examples:
                out.append(f"- new files in {where}/ follow {', '.join(examples)}")
            else:
                out.append(f"- {where}/ is new: its files follow the nearest existing ones")
    return out


def _overlaps(stories: Sequence[Story]) -> str:
    pairs = [
        f"{a.id}/{b.id}"
        for i, a in enumerate(stories)
        for b in stories[i + 1 :]
        if a.write_surface
        and b.write_surface
        and surfaces_overlap(a.write_surface, b.write_surface)
    ]
    return ", ".join(pairs)
