"""Plan validation and the DAG questions asked of a plan.

Shared by the planner (what it proposes), the conductor (what it accepts) and the CLI
(``baro plan --plan-file``). Every rejection is a ``PlanError`` whose message is one line
naming the story and what is wrong with it.

A dependency arrow reads "depends on": ``S2 -> S1`` means S2 starts after S1.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Sequence

import msgspec

from baro_shared.backends import KNOWN_BACKENDS, model_problem
from baro_shared.inputs import MAX_PLAN_STORIES, InputProblem, check_prose
from baro_shared.schemas import ModelTier, Story, StoryKind
from baro_shared.surfaces import UnsafePath, is_glob, normalize, surfaces_overlap

# Story ids become NATS subject tokens (baro.agent.<run>.<story>) and git ref components
# (refs/baro/<run>/<story>/<attempt>), so dots, wildcards, spaces and slashes are out.
_STORY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

_STORY_FIELDS = (
    "id",
    "title",
    "description",
    "depends_on",
    "write_surface",
    "acceptance",
    "backend",
    "model",
    "effort",
)
MAX_EFFORT = 1_000_000.0
_LIST_FIELDS = ("depends_on", "write_surface", "acceptance")


class PlanError(ValueError):
    """A plan that cannot run as written; the message is one line naming the problem."""


# --------------------------------------------------------------------------- validation


def validate_plan(stories: Sequence[Story]) -> list[Story]:
    """The stories, stripped and with normalized write surfaces, or a ``PlanError``.

    Rejects: no stories or more than ``MAX_PLAN_STORIES``, empty or duplicate or unusable
    ids, empty titles, control characters in titles, descriptions and acceptance criteria
    (newlines and tabs aside), unknown, self or duplicate dependencies, dependency cycles
    (named), and unsafe write-surface paths (absolute, '..', a .git component in any
    spelling, control characters). Blank acceptance entries and repeated surface or
    acceptance entries are removed; nothing else is changed.
    """
    if not stories:
        raise PlanError("the plan has no stories")
    if len(stories) > MAX_PLAN_STORIES:
        raise PlanError(
            f"the plan has {len(stories)} stories; baro takes at most {MAX_PLAN_STORIES}: "
            "split the goal into several runs"
        )
    cleaned = [clean_story(story, position) for position, story in enumerate(stories, 1)]
    seen: set[str] = set()
    for story in cleaned:
        if story.id in seen:
            raise PlanError(f"duplicate story id {story.id!r}")
        seen.add(story.id)
    for story in cleaned:
        _check_dependencies(story, seen)
    cycle = find_cycle(cleaned)
    if cycle:
        raise PlanError(f"dependency cycle: {' -> '.join(cycle)}")
    return cleaned


def clean_story(story: Story, position: int = 1) -> Story:
    """One story checked on its own (id, texts, write surface), stripped and normalized;
    its dependencies are checked against the plan by ``validate_plan``."""
    story_id = story.id.strip()
    if not story_id:
        raise PlanError(f"story #{position} has an empty id")
    if not _STORY_ID.fullmatch(story_id):
        raise PlanError(
            f"story id {story_id!r} is not usable: use up to 64 letters, digits, '-' or '_' "
            "(ids name bus subjects and git refs)"
        )
    try:
        check_prose(f"story {story_id!r}: the title", story.title)
        check_prose(f"story {story_id!r}: the description", story.description)
        for entry in story.acceptance:
            check_prose(f"story {story_id!r}: an acceptance criterion", entry)
    except InputProblem as exc:
        raise PlanError(str(exc)) from None
    title = " ".join(story.title.split())
    if not title:
        raise PlanError(f"story {story_id!r} has an empty title")
    surface: list[str] = []
    for path in story.write_surface:
        try:
            surface.append(normalize(path))
        except UnsafePath as exc:
            raise PlanError(f"story {story_id!r} has an unsafe write surface: {exc}") from None
    backend = (story.backend or "").strip() or None
    if backend is not None and backend not in KNOWN_BACKENDS:
        raise PlanError(
            f"story {story_id!r} has unknown backend {backend!r}: "
            f"choose one of {', '.join(KNOWN_BACKENDS)}"
        )
    model = (story.model or "").strip() or None
    if model is not None and (problem := model_problem(model)):
        raise PlanError(f"story {story_id!r}: {problem}")
    effort = story.effort
    if effort is not None and not (0 < effort <= MAX_EFFORT):
        raise PlanError(
            f"story {story_id!r} has effort {effort!r}: use a positive number "
            f"(its size relative to the other stories), at most {MAX_EFFORT:g}"
        )
    return Story(
        id=story_id,
        title=title,
        description=story.description.strip(),
        depends_on=[dep.strip() for dep in story.depends_on],
        write_surface=_unique(surface),
        acceptance=_unique(a.strip() for a in story.acceptance if a.strip()),
        backend=backend,
        model=model,
        effort=float(effort) if effort is not None else None,
        may_change_nothing=story.may_change_nothing,
    )


def _check_dependencies(story: Story, known: set[str]) -> None:
    seen: set[str] = set()
    for dep in story.depends_on:
        if not dep:
            raise PlanError(f"story {story.id!r} has an empty dependency")
        if dep == story.id:
            raise PlanError(f"story {story.id!r} depends on itself")
        if dep in seen:
            raise PlanError(f"story {story.id!r} lists dependency {dep!r} twice")
        if dep not in known:
            raise PlanError(f"story {story.id!r} depends on unknown story {dep!r}")
        seen.add(dep)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --------------------------------------------------------------------------- graph


def find_cycle(stories: Sequence[Story]) -> list[str] | None:
    """One dependency cycle as ``[S1, S3, S2, S1]`` (each depends on the next), or None.

    Deterministic: the search starts from stories in plan order, and the cycle is rotated
    to begin at the member that comes first in the plan. Unknown dependencies are ignored.
    """
    position = {s.id: i for i, s in enumerate(stories)}
    deps = {s.id: [d for d in s.depends_on if d in position] for s in stories}
    done: set[str] = set()
    for root in deps:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        pending = [iter(deps[root])]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
                continue
            if nxt in on_path:
                cycle = path[path.index(nxt) :]
                first = min(range(len(cycle)), key=lambda i: position[cycle[i]])
                cycle = cycle[first:] + cycle[:first]
                return [*cycle, cycle[0]]
            if nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                pending.append(iter(deps[nxt]))
    return None


def topological_order(stories: Sequence[Story]) -> list[str]:
    """Story ids, dependencies first; among stories free to go, plan order wins."""
    position = {s.id: i for i, s in enumerate(stories)}
    _require_known_dependencies(stories, position)
    waiting = {s.id: len(set(s.depends_on)) for s in stories}
    dependents: dict[str, list[str]] = {s.id: [] for s in stories}
    for s in stories:
        for dep in set(s.depends_on):
            dependents[dep].append(s.id)
    ready = [position[sid] for sid, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        sid = stories[heapq.heappop(ready)].id
        order.append(sid)
        for child in dependents[sid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, position[child])
    if len(order) < len(stories):
        cycle = find_cycle(stories) or sorted(set(position) - set(order))
        raise PlanError(f"dependency cycle: {' -> '.join(cycle)}")
    return order


def ancestors(stories: Sequence[Story]) -> dict[str, set[str]]:
    """Every story's transitive dependencies."""
    by_id = {s.id: s for s in stories}
    result: dict[str, set[str]] = {}
    for sid in topological_order(stories):
        acc: set[str] = set()
        for dep in by_id[sid].depends_on:
            acc.add(dep)
            acc |= result[dep]
        result[sid] = acc
    return result


def with_dependencies(story: Story, depends_on: list[str]) -> Story:
    """The same story with other dependencies (every other field kept as is)."""
    return msgspec.structs.replace(story, depends_on=list(depends_on))


def ordered(a: str, b: str, anc: dict[str, set[str]]) -> bool:
    """Does one of the two stories wait for the other?"""
    return a in anc.get(b, ()) or b in anc.get(a, ())


def may_run_together(a: Story, b: Story, anc: dict[str, set[str]]) -> bool:
    """Could the two stories run at the same time without touching the same files?

    Only when neither waits for the other and both declare write surfaces that cannot
    name a common path. A story without a write surface could write anything.
    """
    if a.id == b.id or ordered(a.id, b.id, anc):
        return False
    if not a.write_surface or not b.write_surface:
        return False
    return not surfaces_overlap(a.write_surface, b.write_surface)


def _require_known_dependencies(stories: Sequence[Story], known: dict[str, int]) -> None:
    if len(known) != len(stories):
        dup = next(s.id for i, s in enumerate(stories) if known[s.id] != i)
        raise PlanError(f"duplicate story id {dup!r}")
    for s in stories:
        for dep in s.depends_on:
            if dep not in known:
                raise PlanError(f"story {s.id!r} depends on unknown story {dep!r}")


# --------------------------------------------------------------------------- JSON


def plan_from_json(data: bytes | str) -> list[Story]:
    """A validated plan from ``{"stories": [...]}`` (the shape of ``baro plan --json``).

    Other top-level keys (``enforcement``, ``mode``) are ignored, so the output of
    ``baro plan --json`` reads back. Unknown story fields are rejected: a misspelled
    ``depends_on`` must not silently drop an ordering.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"the plan is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise PlanError("the plan is not usable JSON: it is nested too deeply") from None
    return stories_from_data(document)


def stories_from_data(document: object) -> list[Story]:
    """A validated plan from already-parsed JSON, with errors that say where."""
    if not isinstance(document, dict):
        raise PlanError(
            f'the plan must be a JSON object {{"stories": [...]}}, not {_kind(document)}'
        )
    if "stories" not in document:
        raise PlanError('the plan has no "stories" key')
    raw = document["stories"]
    if not isinstance(raw, list):
        raise PlanError(f'"stories" must be a list, not {_kind(raw)}')
    return validate_plan([_story_from_data(i, item) for i, item in enumerate(raw)])


def _story_from_data(index: int, item: object) -> Story:
    where = f"stories[{index}]"
    if not isinstance(item, dict):
        raise PlanError(f"{where} must be an object, not {_kind(item)}")
    unknown = [k for k in item if k not in _STORY_FIELDS]
    if unknown:
        raise PlanError(
            f"{where} has unknown field {unknown[0]!r} (known: {', '.join(_STORY_FIELDS)})"
        )
    for key in ("id", "title"):
        if key not in item:
            raise PlanError(f"{where} has no {key!r}")
    for key in ("backend", "model"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise PlanError(f"{where}.{key} must be a string, not {_kind(item[key])}")
    effort = item.get("effort")
    if effort is not None and (isinstance(effort, bool) or not isinstance(effort, int | float)):
        raise PlanError(f"{where}.effort must be a number, not {_kind(effort)}")
    for key in ("id", "title", "description"):
        if key in item and not isinstance(item[key], str):
            raise PlanError(f"{where}.{key} must be a string, not {_kind(item[key])}")
    for key in _LIST_FIELDS:
        value = item.get(key, [])
        if not isinstance(value, list):
            raise PlanError(f"{where}.{key} must be a list of strings, not {_kind(value)}")
        for j, entry in enumerate(value):
            if not isinstance(entry, str):
                raise PlanError(f"{where}.{key}[{j}] must be a string, not {_kind(entry)}")
    return msgspec.convert(item, Story)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "an object"})
    return names.get(type(value), type(value).__name__)


# --------------------------------------------------------------------------- agents

_DOC_FILE = re.compile(
    r"(?:^|/)(?:docs?/|README|CHANGELOG|CONTRIBUTING)|\.(?:md|mdx|rst|adoc|txt)$", re.I
)
_TEST_FILE = re.compile(
    r"(?:^|/)(?:tests?|specs?|__tests__|e2e)/|(?:^|/)test_[^/]*$|_test\.[^/.]+$|\.(?:test|spec)\.[^/.]+$",
    re.I,
)


def story_kind(story: Story) -> StoryKind:
    """``docs`` or ``tests`` when every file of the story's surface is one, ``small`` for a
    story of one file, else ``default``. A story without a surface may touch anything."""
    surface = story.write_surface
    if not surface:
        return "default"
    if all(_DOC_FILE.search(p) for p in surface):
        return "docs"
    if all(_TEST_FILE.search(p) for p in surface):
        return "tests"
    if len(surface) == 1 and not is_glob(surface[0]) and not surface[0].endswith("/**"):
        return "small"
    return "default"


def agent_for(
    story: Story, backend: str, model: str | None, tiers: Sequence[Sequence[ModelTier]]
) -> tuple[str, str | None]:
    """The backend and model a story runs with: its own, else its kind's tier (the first
    list of tiers that has one wins), else the run's."""
    kind = story_kind(story)
    tier = None
    for table in tiers:
        by_kind = {t.kind: t for t in table}
        tier = by_kind.get(kind) or by_kind.get("default")
        if tier is not None:
            break
    if story.backend or story.model:
        chosen_backend = story.backend or backend
        # a story's own backend needs its own model (or the CLI's default), not the run's
        same = chosen_backend == backend
        return chosen_backend, story.model or (model if same else None)
    if tier is not None:
        return tier.backend or backend, tier.model
    return backend, model


def critical_path(stories: Sequence[Story]) -> dict[str, float]:
    """Each story's longest chain of remaining work: its effort plus the longest chain among
    the stories that depend on it (efforts default to 1). The scheduler starts (and
    integrates) the stories with the longest chains first, so the critical path never
    waits behind work that could run later."""
    dependents: dict[str, list[str]] = {st.id: [] for st in stories}
    for st in stories:
        for dep in st.depends_on:
            if dep in dependents:
                dependents[dep].append(st.id)
    effort = {st.id: st.effort or 1.0 for st in stories}
    chain: dict[str, float] = {}
    for sid in reversed(topological_order(stories)):
        chain[sid] = effort[sid] + max((chain[d] for d in dependents[sid]), default=0.0)
    return chain
