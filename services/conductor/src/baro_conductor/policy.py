"""Mode enforcement: whatever a planner proposed, the accepted plan obeys the run's mode.

Pure functions over plain data. Every repair (a collapse, a merge, an added ordering, a
change of mode) is written as a note for the user; no story is ever dropped: merged
stories carry every original title, description, acceptance criterion and write surface.

- focused: exactly one story.
- the story cap is hard: overflow is merged into neighbouring stories.
- sequential: a chain in plan order, one story at a time.
- parallel: two stories run side by side only when neither waits for the other and their
  write surfaces are declared and disjoint; otherwise one is ordered after the other. A
  plan in which no two stories can run side by side (or a parallelism cap of 1) runs as
  sequential.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from baro_shared.plan import ancestors, topological_order, validate_plan, with_dependencies
from baro_shared.schemas import Caps, Mode, Story
from baro_shared.surfaces import surfaces_overlap

_TITLE_LIMIT = 100


@dataclass(frozen=True)
class Enforced:
    mode: Mode
    stories: list[Story]
    notes: list[str]
    # original story id -> id of the accepted story that carries its work
    carried_by: dict[str, str] = field(default_factory=dict)


def enforce(stories: list[Story], mode: Mode, caps: Caps, goal: str) -> Enforced:
    """The plan as it will run under ``mode`` and ``caps``; raises PlanError if invalid."""
    plan = validate_plan(stories)
    order = topological_order(plan)
    by_id = {s.id: s for s in plan}
    originals = [by_id[sid] for sid in order]

    if mode == "focused":
        return _focused(originals, goal)

    notes: list[str] = []
    cap = max(1, caps.max_stories)
    groups = _fit_cap(originals, cap, mode, notes)
    stories_now = _in_dependency_order(_render_all(groups))

    if mode == "parallel":
        if caps.parallelism <= 1 and len(stories_now) > 1:
            notes.append(
                "the parallelism cap is 1, so no two stories can run at the same time; "
                "running as sequential"
            )
            mode = "sequential"
        else:
            stories_now = _serialize_conflicts(stories_now, notes)
            if not _has_independent_pair(stories_now):
                notes.append(_why_not_parallel(stories_now))
                mode = "sequential"

    if mode == "sequential":
        stories_now = _chain(stories_now, notes)

    result = validate_plan(stories_now)
    carried_by = {member.id: group[0].id for group in groups for member in group}
    return Enforced(mode=mode, stories=result, notes=notes, carried_by=carried_by)


# --------------------------------------------------------------------------- focused


def _focused(originals: list[Story], goal: str) -> Enforced:
    if len(originals) == 1:
        only = originals[0]
        return Enforced("focused", [only], [], {only.id: only.id})
    first = originals[0]
    goal_text = goal.strip()
    title = _shorten(goal_text.splitlines()[0]) if goal_text else first.title
    intro = "Do all of the following as one change, in this order:"
    description = f"{goal_text}\n\n{intro}" if goal_text else intro
    story = Story(
        id=first.id,
        title=title,
        description=f"{description}\n\n{_member_sections(originals)}",
        depends_on=[],
        write_surface=_union_surfaces(originals),
        acceptance=_union(s.acceptance for s in originals),
        **_shared_agent(originals),
    )
    ids = ", ".join(s.id for s in originals)
    note = (
        f"focused mode runs exactly one story: the plan's {len(originals)} stories ({ids}) "
        f"were collapsed into {first.id}, which lists each of them and combines their "
        "acceptance criteria and write surfaces"
    )
    silent = [s.id for s in originals if not s.write_surface]
    if silent and len(silent) < len(originals):
        note += f" ({_join(silent)} declared none, so the collapsed story declares none)"
    return Enforced("focused", [story], [note], {s.id: first.id for s in originals})


# --------------------------------------------------------------------------- story cap

Group = list[Story]  # original stories merged into one, in dependency order


def _fit_cap(originals: list[Story], cap: int, mode: Mode, notes: list[str]) -> list[Group]:
    """Merge stories until at most ``cap`` remain, keeping the plan acyclic.

    Each step merges the pair that costs least: first a story with one it directly
    depends on, or one it would have to wait for anyway (overlapping or undeclared write
    surfaces); then a pair that stays within an even share of the stories (the fullest
    such pair, so groups fill one by one and none grows past its share); then the pair
    closest together in plan order.
    """
    groups: list[Group] = [[s] for s in originals]
    if len(groups) <= cap:
        return groups
    notes.append(
        f"the plan has {len(originals)} stories and the story cap is {cap}: "
        f"merged {len(originals) - cap} of them into neighbouring stories "
        "(nothing is dropped; a merged story lists every original title and description)"
    )
    rank = {s.id: i for i, s in enumerate(originals)}
    clashes = _clashes(originals) if mode == "parallel" else None
    share = -(-len(originals) // cap)  # ceiling division
    while len(groups) > cap:
        i, j, ordered = _cheapest_merge(groups, rank, clashes, share)
        notes.append(_merge_note(groups, i, j, ordered, mode))
        groups[i] = sorted(groups[i] + groups[j], key=lambda s: rank[s.id])
        del groups[j]
        groups.sort(key=lambda g: rank[g[0].id])
    return groups


def _clashes(originals: list[Story]) -> list[int]:
    """For each story (by position), the bitset of stories it must not run beside."""
    bits = [0] * len(originals)
    for i, a in enumerate(originals):
        for j in range(i + 1, len(originals)):
            if _conflict(a, originals[j]) is not None:
                bits[i] |= 1 << j
                bits[j] |= 1 << i
    return bits


def _cheapest_merge(
    groups: list[Group], rank: dict[str, int], clashes: list[int] | None, share: int
) -> tuple[int, int, bool]:
    """The pair of groups to merge next (i < j), and whether one waits for the other.

    Relations are bitsets: over group positions for ordering, over original story
    positions for clashes, so each of the O(n^2) candidate pairs costs O(1).
    """
    owner = {m.id: gi for gi, g in enumerate(groups) for m in g}
    deps = [{owner[d] for m in g for d in m.depends_on} - {gi} for gi, g in enumerate(groups)]
    anc = _ancestor_bits(deps)
    desc = [0] * len(groups)
    for gi, bits in enumerate(anc):
        for gj in _bit_positions(bits):
            desc[gj] |= 1 << gi
    members = [sum(1 << rank[m.id] for m in g) for g in groups]
    clash = [0] * len(groups)
    if clashes is not None:
        for gi, g in enumerate(groups):
            for m in g:
                clash[gi] |= clashes[rank[m.id]]

    best: tuple[tuple[int, bool, int, int, int], int, int, bool] | None = None
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            if anc[i] >> j & 1 or anc[j] >> i & 1:
                later, earlier = (i, j) if anc[i] >> j & 1 else (j, i)
                if anc[later] & desc[earlier]:
                    continue  # a story in between would end up both before and after
                ordered, cost = True, 0
            else:
                ordered = False
                cost = 0 if clashes is None or clash[i] & members[j] else 1
            size = len(groups[i]) + len(groups[j])
            over = size > share
            key = (cost, over, size if over else -size, j - i, i)
            if best is None or key < best[0]:
                best = (key, i, j, ordered)
    if best is None:  # unreachable: the last two groups in dependency order can merge
        raise AssertionError("no mergeable pair of stories")
    return best[1], best[2], best[3]


def _ancestor_bits(deps: list[set[int]]) -> list[int]:
    """Transitive dependencies as bitsets, for a DAG given by direct dependencies."""
    anc: list[int | None] = [None] * len(deps)

    def resolve(node: int) -> int:
        stack = [node]
        while stack:
            top = stack[-1]
            pending = [d for d in deps[top] if anc[d] is None]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if anc[top] is None:
                bits = 0
                for d in deps[top]:
                    bits |= (1 << d) | (anc[d] or 0)
                anc[top] = bits
        return anc[node] or 0

    return [resolve(n) for n in range(len(deps))]


def _bit_positions(bits: int) -> list[int]:
    out = []
    while bits:
        low = bits & -bits
        out.append(low.bit_length() - 1)
        bits ^= low
    return out


def _merge_note(groups: list[Group], i: int, j: int, ordered: bool, mode: Mode) -> str:
    a, b = groups[i], groups[j]
    if ordered:
        dependent, dependency = _direct_dependency(a, b)
        reason = f"{dependent} depends on {dependency}"
    elif mode != "parallel":
        reason = "sequential mode runs them one at a time anyway"
    else:
        first, second = _surface_holder(a), _surface_holder(b)
        conflict = _conflict(first, second)
        reason = (
            f"they could not run side by side anyway ({conflict})"
            if conflict
            else "they are independent; merging them gives up running them side by side"
        )
    note = f"merged {_label(b)} into {_label(a)}: {reason}"
    if bool(_union_surfaces(a)) != bool(_union_surfaces(b)):
        note += "; the merged story declares no write surface, as one of them had none"
    return note


def _direct_dependency(a: Group, b: Group) -> tuple[str, str]:
    """A story of one group that directly depends on a story of the other."""
    for later, earlier in ((b, a), (a, b)):
        earlier_ids = {m.id for m in earlier}
        for member in later:
            for dep in member.depends_on:
                if dep in earlier_ids:
                    return member.id, dep
    raise AssertionError("merging ordered groups that share no direct dependency")


def _surface_holder(group: Group) -> Story:
    """A stand-in for a group when only its id and write surface matter."""
    return Story(id=group[0].id, title=group[0].title, write_surface=_union_surfaces(group))


# --------------------------------------------------------------------------- parallel


def _serialize_conflicts(stories: list[Story], notes: list[str]) -> list[Story]:
    """Order every unordered pair that could write the same files, later after earlier.

    Edges always point from a later story to an earlier one in a fixed dependency order,
    so the plan stays acyclic. Closer stories are considered first, so an ordering that
    already follows from an added edge is not added again.
    """
    anc: dict[str, set[str]] = {}
    result: list[Story] = []
    for story in stories:
        deps = list(story.depends_on)
        waits_for: set[str] = set()
        for dep in deps:
            waits_for |= {dep} | anc[dep]
        added: dict[str, list[str]] = {}  # reason -> ids of the stories it now waits for
        for earlier in reversed(result):
            if earlier.id in waits_for:
                continue
            reason = _conflict(story, earlier)
            if reason is None:
                continue
            deps.append(earlier.id)
            waits_for |= {earlier.id} | anc[earlier.id]
            added.setdefault(reason, []).append(earlier.id)
        if added:
            why = "; ".join(f"{_join(ids)} ({reason})" for reason, ids in added.items())
            notes.append(f"{story.id} now runs after {why}")
        anc[story.id] = waits_for
        result.append(with_dependencies(story, deps))
    return result


def _conflict(a: Story, b: Story) -> str | None:
    """Why the two stories must not run at the same time, or None."""
    for s in (a, b):
        if not s.write_surface:
            return f"{s.id} declares no write surface, so it may change any file"
    shared = surfaces_overlap(a.write_surface, b.write_surface)
    if shared:
        return f"write surfaces overlap: {_pairs(shared)}"
    return None


def _has_independent_pair(stories: list[Story]) -> bool:
    anc = ancestors(stories)
    ids = [s.id for s in stories]
    return any(b not in anc[a] and a not in anc[b] for i, a in enumerate(ids) for b in ids[i + 1 :])


def _why_not_parallel(stories: list[Story]) -> str:
    if len(stories) == 1:
        why = "the plan has a single story"
    else:
        why = "every story waits for another (by dependency or shared write surface)"
    return f"parallel mode needs two stories that can run side by side, but {why}; running as sequential"


# --------------------------------------------------------------------------- sequential


def _chain(stories: list[Story], notes: list[str]) -> list[Story]:
    """One story at a time: each depends on the one before, in dependency order."""
    by_id = {s.id: s for s in stories}
    order = topological_order(stories)
    chained = [
        with_dependencies(by_id[sid], [order[i - 1]] if i else []) for i, sid in enumerate(order)
    ]
    already_chain = [s.id for s in stories] == order and all(
        set(by_id[sid].depends_on) == set(chained[i].depends_on) for i, sid in enumerate(order)
    )
    if len(order) > 1 and not already_chain:
        notes.append(
            f"sequential mode runs one story at a time, in this order: {' -> '.join(order)}"
        )
    return chained


# --------------------------------------------------------------------------- rendering


def _in_dependency_order(stories: list[Story]) -> list[Story]:
    """Dependencies first (a merge can put a story before one it now waits for)."""
    by_id = {s.id: s for s in stories}
    return [by_id[sid] for sid in topological_order(stories)]


def _render_all(groups: Sequence[Group]) -> list[Story]:
    """One story per group, its dependencies pointing at groups."""
    owner = {member.id: g[0].id for g in groups for member in g}
    return [_render(group, owner) for group in groups]


def _render(group: Group, owner: dict[str, str]) -> Story:
    first = group[0]
    deps = _union([owner[d] for d in m.depends_on] for m in group)
    deps = [d for d in deps if d != first.id]
    if len(group) == 1:
        return with_dependencies(first, deps)
    description = (
        f"This story carries {len(group)} planned stories, merged to respect the story cap. "
        f"Do all of them, in this order:\n\n{_member_sections(group)}"
    )
    return Story(
        id=first.id,
        title=_shorten(first.title, suffix=f" (and {len(group) - 1} more)"),
        description=description,
        depends_on=deps,
        write_surface=_union_surfaces(group),
        acceptance=_union(m.acceptance for m in group),
        **_shared_agent(group),
    )


def _shared_agent(members: Sequence[Story]) -> dict[str, str | None]:
    """A merged story keeps a backend or model only when every member asked for the same
    one; otherwise it runs with the run's (or its tier's)."""
    backends = {m.backend for m in members}
    models = {m.model for m in members}
    return {
        "backend": backends.pop() if len(backends) == 1 else None,
        "model": models.pop() if len(models) == 1 else None,
    }


def _member_sections(members: Sequence[Story]) -> str:
    sections = []
    for m in members:
        section = f"## {m.id}: {m.title}"
        if m.description:
            section += f"\n{m.description}"
        sections.append(section)
    return "\n\n".join(sections)


def _label(group: Group) -> str:
    first = group[0]
    if len(group) == 1:
        return f"{first.id} ({first.title!r})"
    others = ", ".join(m.id for m in group[1:])
    return f"{first.id} (with {others})"


def _union_surfaces(members: Sequence[Story]) -> list[str]:
    """The merged write surface. A story without one may change any file, so a merge
    that contains one has none either: a declared surface would promise too much."""
    if any(not m.write_surface for m in members):
        return []
    return _union(m.write_surface for m in members)


def _union(lists: Iterable[Iterable[str]]) -> list[str]:
    out: dict[str, None] = {}
    for items in lists:
        out.update(dict.fromkeys(items))
    return list(out)


def _pairs(shared: list[tuple[str, str]]) -> str:
    shown = ", ".join(f"{x} ~ {y}" for x, y in shared[:3])
    return shown + (f" and {len(shared) - 3} more" if len(shared) > 3 else "")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _shorten(text: str, suffix: str = "") -> str:
    """A title of at most _TITLE_LIMIT characters, cut at a word, ending in ``suffix``."""
    text = " ".join(text.split())
    room = _TITLE_LIMIT - len(suffix)
    if len(text) > room:
        text = text[: room - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
    return text + suffix
