"""The best achievable makespan of a DAG of stories on P agents: exact for small plans.

Scheduling stories with dependencies on identical slots to finish soonest (P|prec|Cmax)
is NP-hard, but the benchmark's small plans (up to 16 stories) are solved exactly by
branch and bound. At every moment a slot frees, the search chooses which ready stories to
start, including starting fewer than it could (waiting for a story on the critical path
can be better than filling every slot), so it covers every schedule that could be
optimal. It prunes with the classic bounds (the longest remaining path, the remaining
work over the slots), remembers states already seen at an earlier time, treats stories
that are interchangeable (same duration, same dependencies, same dependents) as one
choice, and starts from the best list schedule as the incumbent.

``optimum`` returns the makespan and whether it is proven optimal (the search stops
after ``max_nodes`` and then returns its best schedule, not proven).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

Deps = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Optimum:
    makespan: float
    proven: bool
    nodes: int


def tails(deps: Deps, work: Mapping[str, float]) -> dict[str, float]:
    """The longest path from each story to the end of the plan, its own duration included."""
    children: dict[str, list[str]] = {sid: [] for sid in deps}
    for sid, parents in deps.items():
        for parent in parents:
            children[parent].append(sid)
    memo: dict[str, float] = {}

    def tail(sid: str) -> float:
        if sid not in memo:
            memo[sid] = work[sid] + max((tail(c) for c in children[sid]), default=0.0)
        return memo[sid]

    return {sid: tail(sid) for sid in deps}


def list_schedule(deps: Deps, work: Mapping[str, float], slots: int, order: Sequence[str]) -> float:
    """Whenever a slot is free, start the first ready story in ``order``."""
    done: dict[str, float] = {}
    running: list[tuple[float, str]] = []
    clock = 0.0
    pending = list(order)
    while pending or running:
        ready = [sid for sid in pending if all(d in done and done[d] <= clock for d in deps[sid])]
        while ready and len(running) < slots:
            sid = ready.pop(0)
            pending.remove(sid)
            running.append((clock + work[sid], sid))
        running.sort()
        clock, sid = running.pop(0)
        done[sid] = clock
    return clock


def optimum(
    deps: Deps, work: Mapping[str, float], slots: int, max_nodes: int = 2_000_000
) -> Optimum:
    ids = list(deps)
    index = {sid: i for i, sid in enumerate(ids)}
    # exact arithmetic: the durations are multiples of a half second times a scale
    dur = [Fraction(work[sid]).limit_denominator(1000) for sid in ids]
    parents = [sum(1 << index[p] for p in deps[sid]) for sid in ids]
    tail = tails(deps, {sid: float(dur[index[sid]]) for sid in ids})
    tail_f = [Fraction(tail[sid]).limit_denominator(1000) for sid in ids]
    children = [0] * len(ids)
    for i, sid in enumerate(ids):
        for p in deps[sid]:
            children[index[p]] |= 1 << i
    # interchangeable stories: same duration, parents and children
    klass = {}
    for i in range(len(ids)):
        klass.setdefault((dur[i], parents[i], children[i]), []).append(i)
    # of interchangeable stories, the one before each (started first, by convention)
    before = {m[k]: m[k - 1] for m in klass.values() for k in range(1, len(m))}

    by_tail = sorted(ids, key=lambda sid: (-tail[sid], index[sid]))
    best = Fraction(
        min(list_schedule(deps, work, slots, by_tail), list_schedule(deps, work, slots, ids))
    ).limit_denominator(1000)
    full = (1 << len(ids)) - 1
    seen: dict[tuple[int, tuple[tuple[int, Fraction], ...]], Fraction] = {}
    nodes = 0
    stopped = False

    def bound(t: Fraction, started: int, running: tuple[tuple[int, Fraction], ...]) -> Fraction:
        remaining_work = sum((end - t for _, end in running), Fraction(0))
        path = max((end for _, end in running), default=t)
        for i in range(len(ids)):
            if not started >> i & 1:
                remaining_work += dur[i]
                path = max(path, t + tail_f[i])
        for i, end in running:
            path = max(path, end - dur[i] + tail_f[i])
        return max(path, t + remaining_work / slots)

    def search(
        t: Fraction, done: int, started: int, running: tuple[tuple[int, Fraction], ...]
    ) -> None:
        nonlocal best, nodes, stopped
        if stopped:
            return
        nodes += 1
        if nodes > max_nodes:
            stopped = True
            return
        if done == full:
            best = min(best, t)
            return
        if bound(t, started, running) >= best:
            return
        key = (done, tuple(sorted((i, end - t) for i, end in running)))
        if seen.get(key, best + 1) <= t:
            return
        seen[key] = t
        free = slots - len(running)
        ready = [
            i for i in range(len(ids))
            if not started >> i & 1 and parents[i] & done == parents[i]
        ]  # fmt: skip
        ready.sort(key=lambda i: (-tail_f[i], i))
        choices: list[tuple[int, ...]] = []
        for size in range(min(free, len(ready)), -1, -1):
            if size == 0 and not running:
                break  # nothing running: waiting would wait forever
            for combo in itertools.combinations(ready, size):
                # of interchangeable stories, start the lowest-numbered ones first
                if any(
                    i in before and not started >> before[i] & 1 and before[i] not in combo
                    for i in combo
                ):
                    continue
                choices.append(combo)
        for combo in choices:
            now_running = running + tuple((i, t + dur[i]) for i in combo)
            now_started = started | sum(1 << i for i in combo)
            if not now_running:
                continue
            next_t = min(end for _, end in now_running)
            finished = sum(1 << i for i, end in now_running if end == next_t)
            still = tuple((i, end) for i, end in now_running if end != next_t)
            search(next_t, done | finished, now_started, still)

    search(Fraction(0), 0, 0, ())
    return Optimum(float(best), not stopped, nodes)


def interval_bound(deps: Deps, work: Mapping[str, float], slots: int) -> float:
    """A lower bound at least as tight as max(critical path, work / slots).

    For stories ``u`` and ``v`` (``v`` after ``u``), every story that must start after ``u`` ends and end
    before ``v`` starts is done inside that window, on at most ``slots`` agents:
    makespan >= head(u) + work(u) + work(between u and v) / slots + tail(v). ``u`` or ``v``
    may also be the plan's start or end (then the window opens at 0 or closes at the end).
    Raised to the durations' common step (``on_grid``).
    """
    ids = list(deps)
    children: dict[str, list[str]] = {sid: [] for sid in ids}
    for sid, parents in deps.items():
        for parent in parents:
            children[parent].append(sid)
    tail = tails(deps, work)
    head: dict[str, float] = {}
    for sid in ids:  # plan order is a dependency order
        head[sid] = max((head[p] + work[p] for p in deps[sid]), default=0.0)

    def closure(start: str, step: Mapping[str, Sequence[str]]) -> set[str]:
        seen: set[str] = set()
        todo = list(step[start])
        while todo:
            sid = todo.pop()
            if sid not in seen:
                seen.add(sid)
                todo.extend(step[sid])
        return seen

    below = {sid: closure(sid, children) for sid in ids}
    above = {sid: closure(sid, deps) for sid in ids}
    total = sum(work.values())
    best = max(max(head[s] + tail[s] for s in ids), total / slots)
    for u in [None, *ids]:
        after_u = set(ids) if u is None else below[u]
        opened = 0.0 if u is None else head[u] + work[u]
        for v in [None, *ids]:
            before_v = set(ids) if v is None else above[v]
            closed = 0.0 if v is None else tail[v]
            between = after_u & before_v
            if (u is None and v is None) or (u is not None and v is not None and v not in below[u]):
                continue  # the window is only a window when v comes after u
            best = max(best, opened + sum(work[s] for s in between) / slots + closed)
    return on_grid(best, work.values())


def on_grid(bound: float, durations: Iterable[float]) -> float:
    """A lower bound raised to the next multiple of the durations' common step.

    Some optimal schedule starts every story at 0 or when another ends (shift each story
    as early as its dependencies and a free slot allow: it ends no later), so its makespan
    is a sum of durations: with durations of 1, 1.5 and 2 s, a multiple of 0.5 s. A bound of
    13.75 s then means 14 s. Durations with no common step of at least a millisecond leave
    the bound as it is."""
    step = Fraction(0)
    for value in durations:
        exact = Fraction(value).limit_denominator(1000)
        if abs(exact - Fraction(value)) > 1e-9 or exact <= 0:
            return bound
        step = exact if step == 0 else _gcd(step, exact)
    if step == 0:
        return bound
    steps = -(-Fraction(bound).limit_denominator(10**6) // step)  # ceiling
    return max(bound, float(steps * step))


def _gcd(a: Fraction, b: Fraction) -> Fraction:
    while b:
        a, b = b, a % b
    return a
