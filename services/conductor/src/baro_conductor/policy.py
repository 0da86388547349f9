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

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from baro_shared.plan import topological_order, validate_plan, with_dependencies
from baro_shared.schemas import Caps, Mode, Story
from baro_shared.surfaces import overlapping_surfaces, surfaces_overlap

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

    In parallel mode, merges that cost no parallelism come first: a story with one it
    directly depends on, or with one it would have to wait for anyway (overlapping or
    undeclared write surfaces), closest in plan order first, as long as no merged story
    grows past an even share of the plan. Then (and in the other modes, where stories run
    one at a time anyway) runs of neighbours in dependency order are merged, split so
    that the largest merged story is as small as it can be.

    Every step costs at most a pass over the stories (relations are bitsets), so
    enforcing a plan of ``MAX_PLAN_STORIES`` stays fast; see bench/policy_bench.py.
    """
    if len(originals) <= cap:
        return [[s] for s in originals]
    notes.append(
        f"the plan has {len(originals)} stories and the story cap is {cap}: "
        f"merged {len(originals) - cap} of them into neighbouring stories "
        "(nothing is dropped; a merged story lists every original title and description)"
    )
    graph = _MergeGraph(originals)
    share = -(-len(originals) // cap)  # ceiling division
    if mode == "parallel":
        graph.merge_free_pairs(_free_pairs(originals), cap, share, notes)
    graph.merge_neighbours(cap, notes, mode)
    return graph.groups()


def _free_pairs(originals: list[Story]) -> list[tuple[int, int]]:
    """Pairs of stories (by position, in dependency order) whose merge costs no
    parallelism: one depends on the other, or they could not run side by side anyway.
    Closest first (then earliest)."""
    count = len(originals)
    rank = {s.id: i for i, s in enumerate(originals)}

    def key(i: int, j: int) -> int:  # sorts by distance, then position
        low, high = (i, j) if i < j else (j, i)
        return (high - low) * count + low

    keys = {key(rank[d], i) for i, s in enumerate(originals) for d in s.depends_on}
    keys.update(key(i, j) for i, j in overlapping_surfaces([s.write_surface for s in originals]))
    for i, story in enumerate(originals):
        if not story.write_surface:  # it could change any file: it clashes with every story
            keys.update((i - j) * count + j for j in range(i))
            keys.update((j - i) * count + i for j in range(i + 1, count))
    return [(k % count, k % count + k // count) for k in sorted(keys)]


class _MergeGraph:
    """Groups of original stories and the dependency relation between groups.

    Each group is named by its first member's position. While pairs chosen anywhere in
    the plan are merged, ``closure`` holds per live group the bitsets of groups it waits
    for and of groups that wait for it (transitively), to tell whether a merge would
    close a cycle; merging neighbours in dependency order never can, and needs none.
    """

    def __init__(self, originals: list[Story]) -> None:
        self.originals = originals
        rank = {s.id: i for i, s in enumerate(originals)}
        self.deps = [{rank[d] for d in s.depends_on} for s in originals]
        self.members: dict[int, list[int]] = {i: [i] for i in range(len(originals))}
        self.owner = list(range(len(originals)))
        self.closure: tuple[list[int], list[int]] | None = None

    def __len__(self) -> int:
        return len(self.members)

    def groups(self) -> list[Group]:
        return [self.group(g) for g in sorted(self.members)]

    def group(self, g: int) -> Group:
        return [self.originals[m] for m in self.members[g]]

    def _direct_edges(self) -> set[tuple[int, int]]:
        """(group, group it directly waits for), between live groups."""
        return {
            (self.owner[m], self.owner[d])
            for m, deps in enumerate(self.deps)
            for d in deps
            if self.owner[m] != self.owner[d]
        }

    def _closures(self) -> tuple[list[int], list[int]]:
        if self.closure is None:
            waits: list[set[int]] = [set() for _ in self.owner]
            for g, d in self._direct_edges():
                waits[g].add(d)
            anc = _ancestor_bits(waits)
            desc = [0] * len(anc)
            for node, bits in enumerate(anc):
                for other in _bit_positions(bits):
                    desc[other] |= 1 << node
            self.closure = (anc, desc)
        return self.closure

    def _depends_directly(self, a: int, b: int) -> bool:
        """Does a story of one group directly depend on a story of the other?"""
        return any(self.owner[d] == b for m in self.members[a] for d in self.deps[m]) or any(
            self.owner[d] == a for m in self.members[b] for d in self.deps[m]
        )

    def mergeable(self, a: int, b: int) -> bool:
        """Would merging the two groups keep the plan acyclic? Not when a third group
        waits for one of them and is waited for by the other."""
        anc, desc = self._closures()
        if anc[a] >> b & 1:
            return not anc[a] & desc[b]
        if anc[b] >> a & 1:
            return not anc[b] & desc[a]
        return True

    def merge(self, a: int, b: int, notes: list[str], mode: Mode) -> int:
        """Merge groups ``a`` and ``b`` (named by the smaller) and note why. The groups
        are either unordered or one directly waits for the other (nothing in between)."""
        keep, gone = (a, b) if a < b else (b, a)
        ordered = self._depends_directly(keep, gone)
        notes.append(_merge_note([self.group(keep), self.group(gone)], 0, 1, ordered, mode))
        if self.closure is not None:
            anc, desc = self.closure
            both = (1 << keep) | (1 << gone)
            ancestors = (anc[keep] | anc[gone]) & ~both
            descendants = (desc[keep] | desc[gone]) & ~both
            for g in _bit_positions(descendants):
                anc[g] = (anc[g] & ~both) | ancestors | (1 << keep)
            for g in _bit_positions(ancestors):
                desc[g] = (desc[g] & ~both) | descendants | (1 << keep)
            anc[keep], desc[keep] = ancestors, descendants
            anc[gone] = desc[gone] = 0
        merged = sorted(self.members[keep] + self.members.pop(gone))
        self.members[keep] = merged
        for m in merged:
            self.owner[m] = keep
        return keep

    def merge_free_pairs(
        self, pairs: list[tuple[int, int]], cap: int, share: int, notes: list[str]
    ) -> None:
        """Merge the pairs in order while they fit in ``share``; a pair refused because a
        third group sat between them is tried again after the merges it waited for."""
        retry = True
        while retry:
            merged = refused = False
            for x, y in pairs:
                a, b = self.owner[x], self.owner[y]
                if a == b or len(self.members[a]) + len(self.members[b]) > share:
                    continue
                if not self.mergeable(a, b):
                    refused = True
                    continue
                self.merge(a, b, notes, "parallel")
                merged = True
                if len(self) <= cap:
                    break
            retry = merged and refused and len(self) > cap
        self.closure = None  # merging neighbours needs none

    def merge_neighbours(self, cap: int, notes: list[str], mode: Mode) -> None:
        """Merge runs of neighbours in dependency order into ``cap`` groups, the largest
        as small as it can be. Neighbours in a dependency order can always merge: nothing
        can wait for one of them and be waited for by the other."""
        order = self._dependency_order()
        if len(order) <= cap:
            return
        sizes = [len(self.members[g]) for g in order]
        bound = _smallest_bound(sizes, cap)
        runs: list[list[int]] = []
        run: list[int] = []
        total = 0
        for position, (group, size) in enumerate(zip(order, sizes, strict=True)):
            # close the run when the bound says so, or when every group left must make
            # a story of its own for the plan to keep ``cap`` stories
            left = len(order) - position
            if run and (total + size > bound or left <= cap - len(runs) - 1):
                runs.append(run)
                run, total = [], 0
            run.append(group)
            total += size
        runs.append(run)
        for members in runs:
            merged = members[0]
            for group in members[1:]:
                merged = self.merge(merged, group, notes, mode)

    def _dependency_order(self) -> list[int]:
        """The groups, each after every group it waits for; by first member otherwise."""
        waiting = dict.fromkeys(self.members, 0)
        dependents: dict[int, list[int]] = {g: [] for g in self.members}
        for g, d in self._direct_edges():
            waiting[g] += 1
            dependents[d].append(g)
        ready = [g for g, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            g = heapq.heappop(ready)
            order.append(g)
            for child in dependents[g]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, child)
        return order


def _smallest_bound(sizes: list[int], parts: int) -> int:
    """The smallest largest sum of any split of ``sizes`` into at most ``parts`` runs."""

    def runs_needed(bound: int) -> int:
        count, total = 1, 0
        for size in sizes:
            if total + size > bound:
                count, total = count + 1, 0
            total += size
        return count

    low, high = max(sizes), sum(sizes)
    while low < high:
        middle = (low + high) // 2
        if runs_needed(middle) <= parts:
            high = middle
        else:
            low = middle + 1
    return low


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
    digits = bin(bits)[:1:-1]  # lowest bit first, without "0b"
    out = []
    found = digits.find("1")
    while found >= 0:
        out.append(found)
        found = digits.find("1", found + 1)
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
    already follows from an added edge is not added again. Only pairs that can clash are
    looked at (``overlapping_surfaces``), and what a story waits for is a bitset.
    """
    index = {s.id: i for i, s in enumerate(stories)}
    clashing: list[set[int]] = [set() for _ in stories]
    for i, j in overlapping_surfaces([s.write_surface for s in stories]):
        clashing[j].add(i)
    undeclared = [i for i, s in enumerate(stories) if not s.write_surface]
    anc: list[int] = []
    result: list[Story] = []
    for k, story in enumerate(stories):
        deps = list(story.depends_on)
        waits_for = 0
        for dep in deps:
            waits_for |= (1 << index[dep]) | anc[index[dep]]
        candidates = range(k) if not story.write_surface else clashing[k].union(undeclared)
        added: dict[str, list[str]] = {}  # reason -> ids of the stories it now waits for
        for i in sorted((i for i in candidates if i < k), reverse=True):
            if waits_for >> i & 1:
                continue
            reason = _conflict(story, stories[i])
            if reason is None:
                continue
            deps.append(stories[i].id)
            waits_for |= (1 << i) | anc[i]
            added.setdefault(reason, []).append(stories[i].id)
        if added:
            why = "; ".join(f"{_join(ids)} ({reason})" for reason, ids in added.items())
            notes.append(f"{story.id} now runs after {why}")
        anc.append(waits_for)
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
    """Can two stories run side by side? Exactly when the dependency order is not forced:
    when some story does not directly depend on the one before it in that order."""
    by_id = {s.id: s for s in stories}
    order = topological_order(stories)
    return any(prev not in by_id[sid].depends_on for prev, sid in pairwise(order))


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


def _shared_agent(members: Sequence[Story]) -> dict[str, Any]:
    """A merged story keeps a backend or model only when every member asked for the same
    one; otherwise it runs with the run's (or its tier's)."""
    backends = {m.backend for m in members}
    models = {m.model for m in members}
    efforts = [m.effort for m in members]
    return {
        "backend": backends.pop() if len(backends) == 1 else None,
        "model": models.pop() if len(models) == 1 else None,
        # a merged story is as big as its members together
        "effort": sum(e or 1.0 for e in efforts) if any(e is not None for e in efforts) else None,
        # merged with work that must change something, the story must too
        "may_change_nothing": all(m.may_change_nothing for m in members),
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
