"""Plans for goals that already carry their structure, made without a model call.

- focused: the goal itself, as one story.
- steps ("1. ... 2. ...", "first ... then ... finally", "after that", or several actions
  under a feature head): a chain, one story per step, in the order written.
- independent units (a list of files, endpoints, services, components, ... with one
  action over all of them): one story per unit, each with the files it creates or
  changes as its write surface.

The reading of the goal is ``baro_shared.goals.split``, the same one the intake uses to
propose a mode: a goal this planner splits into units is the one the intake proposes as
parallel. Anything else gives None: the goal needs a model to decompose it. Nothing here
adds work. Every story's text is a piece of the goal; its description carries the whole
goal for context with a line saying which part is this story's. When the goal has more
steps or units than the story cap allows, neighbours are grouped (in order) so the plan
fits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from baro_shared.goals.split import GoalSplit, split_goal
from baro_shared.plan import PlanError, validate_plan
from baro_shared.schemas import Caps, Mode, Story

_TITLE_LIMIT = 100
_POLITE = re.compile(r"^(?:please|kindly|(?:could|can|would)\s+you(?:\s+please)?)\s+", re.I)


@dataclass(frozen=True)
class _Unit:
    """One step or one unit of the goal: its own text and the paths it names."""

    index: int
    text: str
    surface: tuple[str, ...]
    label: str  # the unit as named (units) or the step's text (steps), for grouped titles


def plan_goal(
    goal: str, mode: Mode, caps: Caps, files: list[str] | None = None
) -> list[Story] | None:
    """A plan straight from the goal's own structure, or None when it has none."""
    text = goal.strip()
    if not text:
        raise PlanError("the goal is empty")
    if mode == "focused":
        return validate_plan([Story(id="S1", title=_title(text), description=text)])
    split = split_goal(text, files)
    if split.kind is None:
        return None
    cap = max(1, caps.max_stories)
    parts = [
        _Unit(
            i,
            part.text.strip() or part.label,
            part.surface,
            part.text if split.kind == "steps" else part.label,
        )
        for i, part in enumerate(split.parts)
    ]
    if split.kind == "steps":
        return validate_plan(_chain_stories(parts, text, cap))
    if split.registry and cap >= 2:
        units = _unit_stories(parts, split, text, cap - 1, registry=split.registry)
        return validate_plan([*units, _registering_story(units, parts, split, text)])
    if split.registry:  # one story for everything: it registers what it adds
        (only,) = _unit_stories(parts, split, text, cap)
        surface = _unique([*only.write_surface, *split.registry])
        return validate_plan([msgspec.structs.replace(only, write_surface=surface)])
    return validate_plan(_unit_stories(parts, split, text, cap))


# --------------------------------------------------------------------------- stories


def _chain_stories(steps: list[_Unit], goal: str, cap: int) -> list[Story]:
    total = len(steps)
    stories: list[Story] = []
    first_number = 1
    for index, batch in enumerate(_batches(steps, cap), 1):
        numbers = range(first_number, first_number + len(batch))
        first_number += len(batch)
        if len(batch) == 1:
            title = _title(batch[0].text)
            scope = f"This is step {numbers[0]} of {total} of the goal below"
            body = batch[0].text
        else:
            title = _title(
                f"Steps {numbers[0]}-{numbers[-1]}: " + "; ".join(u.label for u in batch)
            )
            scope = f"These are steps {numbers[0]}-{numbers[-1]} of {total} of the goal below"
            body = "\n".join(f"{n}. {u.text}" for n, u in zip(numbers, batch, strict=True))
        description = (
            f"{body}\n\n{scope}; the other steps are separate stories, run one after "
            f"another in order.\n\nGoal:\n{goal}"
        )
        stories.append(
            Story(
                id=f"S{index}",
                title=title,
                description=description,
                depends_on=[f"S{index - 1}"] if index > 1 else [],
                write_surface=_unique(p for u in batch for p in u.surface),
            )
        )
    return stories


def _unit_stories(
    units: list[_Unit], split: GoalSplit, goal: str, cap: int, registry: Sequence[str] = ()
) -> list[Story]:
    stories: list[Story] = []
    batches = _batches(units, cap)
    for index, batch in enumerate(batches, 1):
        surface = _unique(p for u in batch for p in u.surface)
        body = batch[0].text if len(batch) == 1 else split.text_of([u.index for u in batch])
        others = [u.label for u in units if u not in batch]
        description = (
            f"{body}\n\nThis is one of {len(units)} independent parts of the goal below; "
            f"{_join(others)} {'is' if len(others) == 1 else 'are'} handled by other stories."
            if others
            else f"{body}\n\nThis story does all {len(units)} independent parts of the goal "
            "below (the story cap allows one story)."
        )
        if registry and len(batches) > 1:
            description += (
                f" Do not register it in {_join(list(registry), 'or')}: story S{len(batches) + 1} "
                f"registers the new {split.noun} there once they all exist."
            )
        description += f"\n\nGoal:\n{goal}"
        stories.append(
            Story(
                id=f"S{index}", title=_title(body), description=description, write_surface=surface
            )
        )
    return stories


def _registering_story(
    stories: list[Story], units: list[_Unit], split: GoalSplit, goal: str
) -> Story:
    """The last story: it registers the new units where the application registers the
    ones it has (``goals.register``), once every unit exists; nothing to register (the
    application discovers them) is a finished story, not a failed one."""
    added = "\n".join(f"- {u.label}: {', '.join(u.surface) or 'its own files'}" for u in units)
    where = _join(list(split.registry), "or")
    description = (
        f"The other stories of this run each worked on one of these {split.noun}:\n{added}\n\n"
        f"Register each new one where this application registers its {split.noun} "
        f"({where}), the way the existing ones are registered, so that it is reachable. "
        "Change only what registering them needs. If the application finds them by itself "
        "(discovery, routing by file) or they are registered already, change nothing and "
        f"say so.\n\nGoal:\n{goal}"
    )
    return Story(
        id=f"S{len(stories) + 1}",
        title=_title(f"Register the new {split.noun}: {_join([u.label for u in units])}"),
        description=description,
        depends_on=[story.id for story in stories],
        write_surface=list(split.registry),
        may_change_nothing=True,
    )


def _batches(units: list[_Unit], cap: int) -> list[list[_Unit]]:
    """Contiguous groups, as even as possible, at most ``cap`` of them."""
    count = min(cap, len(units))
    size, extra = divmod(len(units), count)
    batches, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        batches.append(units[start:end])
        start = end
    return batches


# --------------------------------------------------------------------------- text


def _clean(text: str) -> str:
    """A piece of the goal without surrounding whitespace, joiners or separators."""
    text = " ".join(text.split())
    text = re.sub(r"^(?:and|then)\b[,:]?\s*", "", text, flags=re.IGNORECASE)
    return text.strip(" ,;")


def _title(text: str) -> str:
    line = _clean(text.splitlines()[0] if text.strip() else text).rstrip(".:;,!")
    asked = _POLITE.sub("", line)
    if asked != line and asked:  # "Could you add docstrings to a.py?": "Add docstrings to a.py"
        line = asked.rstrip("?. ")
    if re.match(r"[a-z]+\b(?![./`])", line):  # a word, not a path or an identifier
        line = line[:1].upper() + line[1:]
    if len(line) <= _TITLE_LIMIT:
        return line
    cut = line[: _TITLE_LIMIT - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _join(items: list[str], last: str = "and") -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {last} " + items[-1]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
