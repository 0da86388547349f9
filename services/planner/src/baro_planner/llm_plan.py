"""The model-backed planner's text: the prompt it is given, and strict reading of its answer.

The backend call itself lives in the planner's handler. The flow there is: ask with
``build_plan_prompt``; read the answer with ``parse_plan``; on a ``PlanError`` ask once
more with ``repair_prompt``; if that fails too, the run gets a clear failure (or, in
focused mode, the goal as its one story). Whatever comes back is enforced by the
conductor anyway; the prompt only makes a good plan likely.
"""

from __future__ import annotations

import posixpath
from collections import Counter

from baro_planner.asking import echo, first_json_object
from baro_shared.plan import PlanError, stories_from_data
from baro_shared.schemas import Caps, Mode, Story

_MAX_OMITTED_DIRECTORIES = 40

_MODE_RULES: dict[str, str] = {
    "focused": (
        "focused: output EXACTLY ONE story that does the whole goal. Do not split it; "
        "do not add follow-up stories."
    ),
    "sequential": (
        "sequential: a short chain of stories run one at a time, each after the one "
        "before. Split only where the work has real steps; each story must leave the "
        "repository working."
    ),
    "parallel": (
        "parallel: two stories run side by side only when neither depends on the other "
        "AND their write surfaces share no file. Give each independent unit its "
        "own story with its own write surface. When two stories would change the same "
        "file, either merge them or make one depend on the other. Use depends_on only "
        "where a story needs another's result. New endpoints or commands the application "
        "must register: each story writes its own module, and one last story, depending on "
        "all of them, registers them where the existing ones are registered."
    ),
}

_SHAPE = """{
  "stories": [
    {
      "id": "S1",
      "title": "short imperative title",
      "description": "what to change and why, concrete enough to do without the goal",
      "depends_on": [],
      "write_surface": ["src/pkg/module.py", "tests/test_module.py"],
      "acceptance": ["a checkable statement of done"]
    }
  ]
}"""

_RULES = """Rules:
- Plan only the work the goal asks for. No extra refactors, no "verify"/"run the tests"
  stories (verification happens after the run), no documentation nobody asked for.
- ids are S1, S2, ... in the order the work should happen; depends_on lists ids only.
  No cycles.
- write_surface lists every file a story creates or changes (tests included), as
  repository-relative paths, directories ending in "/", or globs ("src/api/*.py",
  "docs/**"). Never absolute paths, never "..", never anything inside .git/.
- acceptance: one to three short statements that can be checked.
- Fewer, coherent stories beat many tiny ones: every story costs a fresh agent. A change
  and the tests for that change are one story, not two in a row."""


def build_plan_prompt(
    goal: str,
    mode: Mode,
    caps: Caps,
    files: list[str],
    max_files: int = 400,
    design_note: str | None = None,
) -> str:
    """The planner prompt: the mode contract, the output shape, a bounded file list, the
    shared design note (when there is one), the goal."""
    cap = 1 if mode == "focused" else max(1, caps.max_stories)
    contract = [
        f"Execution mode (already decided; do not reconsider it): {mode}",
        f"- {_MODE_RULES[mode]}",
        f"- At most {cap} stor{'y' if cap == 1 else 'ies'}. This is a cap, not a target.",
    ]
    if mode == "parallel":
        contract.append(f"- At most {max(1, caps.parallelism)} stories run at the same time.")
    return "\n\n".join(
        [
            "You are planning a change to a git repository. Coding agents will carry out "
            "your plan, one agent per story, and all stories are delivered together as one "
            "branch. Decompose the goal below into stories.",
            "\n".join(contract),
            _RULES,
            "Answer with exactly one JSON object of this shape, and nothing else:\n" + _SHAPE,
            file_section(goal, files, max_files),
            *(
                [
                    "Shared design (every story will receive it; plan the stories so they "
                    f"follow it):\n<<<\n{design_note.strip()}\n>>>"
                ]
                if design_note
                else []
            ),
            f"Goal:\n<<<\n{goal.strip()}\n>>>",
        ]
    )


def file_section(goal: str, files: list[str], max_files: int) -> str:
    """The repository's files, at most ``max_files`` of them; the rest summarized by directory.

    Files the goal mentions come first, then the shallowest ones: they say the most about
    the layout.
    """
    unique = sorted(set(files))
    if not unique:
        return "Repository files: (none listed)"
    shown_count = max(0, min(max_files, len(unique)))
    lowered = goal.lower()

    def priority(path: str) -> tuple[int, int, str]:
        mentioned = path.lower() in lowered or posixpath.basename(path).lower() in lowered
        return (0 if mentioned else 1, path.count("/"), path)

    shown = sorted(sorted(unique, key=priority)[:shown_count])
    header = f"Repository files ({len(shown)} of {len(unique)}):"
    lines = [header, *shown]
    omitted = len(unique) - len(shown)
    if omitted:
        shown_set = set(shown)
        directories = Counter(
            _top_directory(path) for path in unique if path not in shown_set
        ).most_common()
        lines.append(f"... and {omitted} more, by directory:")
        lines += [f"{d} ({n} files)" for d, n in directories[:_MAX_OMITTED_DIRECTORIES]]
        if len(directories) > _MAX_OMITTED_DIRECTORIES:
            lines.append(f"... and {len(directories) - _MAX_OMITTED_DIRECTORIES} more directories")
    return "\n".join(lines)


def _top_directory(path: str) -> str:
    parts = path.split("/")[:-1]
    return "/".join(parts[:2]) + "/" if parts else "(repository root)"


def parse_plan(text: str) -> list[Story]:
    """The plan in a model's answer: its first JSON object, validated.

    Prose and code fences around the object are tolerated; prose that merely contains
    braces ("{ like this }") is skipped. Raises PlanError saying what is wrong.
    """
    document = first_json_object(text, "stories")
    if document is None:
        raise PlanError("the answer contains no JSON object")
    return stories_from_data(document)


def repair_prompt(previous_text: str, error: str) -> str:
    """One more try: the previous answer, what was wrong with it, and the shape again."""
    return "\n\n".join(
        [
            "Your previous answer to a planning request could not be used:",
            f"Problem: {error}",
            f"Previous answer:\n<<<\n{echo(previous_text)}\n>>>",
            "Fix that problem and answer again with the same plan, changed only as needed. "
            "Answer with exactly one JSON object of this shape, and nothing else:\n" + _SHAPE,
            _RULES,
        ]
    )
