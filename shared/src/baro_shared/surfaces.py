"""Write surfaces: repo-relative paths and globs a story may change.

Pure functions shared by the planner (validation), the conductor (which stories may run
side by side), the runner (changes outside a story's surface) and the merger (which files
nobody asked for).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

_GLOB_CHARS = re.compile(r"[*?\[]")


class UnsafePath(ValueError):
    pass


# Why a path with a .git-like component never reaches a delivered branch (the merger's
# guard, and the runner, which git itself refuses to record some of these names for).
GIT_PATH_REASON = "a path git and file systems treat as a repository's .git"

# Code points HFS+ ignores when it compares names: ".g\u200cit" is ".git" there.
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def is_git_like_name(name: str) -> bool:
    """Would a file system take this one path component for ``.git``?

    Case-insensitively (``.GIT``, ``.Git``), with the characters HFS+ ignores removed,
    with trailing dots and spaces removed (NTFS drops them: ``.git.``), and the NTFS
    short name ``git~1``. What a checkout on some machine could read as a repository's
    own directory (its hooks and config run code).
    """
    folded = _HFS_IGNORED.sub("", name).lower().rstrip(". ")
    return folded in (".git", "git~1")


def is_git_like_path(path: str) -> bool:
    """Does any component of ``path`` (``/`` or ``\\`` separated) look like ``.git``?"""
    return any(is_git_like_name(part) for part in re.split(r"[/\\]", path) if part)


def has_control_character(text: str) -> bool:
    """A C0 or C1 control character, or DEL: never part of a path, ref or name."""
    return _CONTROL.search(text) is not None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def normalize(path: str) -> str:
    """A repo-relative POSIX path, or raise UnsafePath (absolute, '..', a .git component,
    control characters)."""
    if has_control_character(path):
        raise UnsafePath(f"path {path!r} contains a control character")
    raw = path.strip().replace("\\", "/")
    if not raw:
        raise UnsafePath("empty path")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:/", raw):
        raise UnsafePath(f"absolute path {path!r}: write surfaces are relative to the repository")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePath(f"path {path!r} leaves the repository ('..')")
    if any(is_git_like_name(p) for p in parts):
        raise UnsafePath(
            f"path {path!r} is inside .git (in any spelling): git's own files are off limits"
        )
    if any(_glob_names_git_dir(p) for p in parts):
        raise UnsafePath(
            f"pattern {path!r} could name a .git directory: name the files instead "
            "(e.g. .gitignore)"
        )
    if not parts:
        raise UnsafePath(f"path {path!r} names the repository root")
    norm = "/".join(parts)
    if raw.endswith("/") and not _GLOB_CHARS.search(norm):
        norm += "/**"
    return norm


def _glob_names_git_dir(component: str) -> bool:
    """A wildcard component written to reach ``.git`` (``.gi?``, ``.[Gg]it``); a bare
    ``*`` or ``**`` is not, or no surface could say "everything below src"."""
    if component in ("*", "**") or not is_glob(component):
        return False
    head = literal_prefix(component).casefold()
    tail = component[max(component.rfind(c) for c in "*?]") + 1 :].casefold()
    if not any(n.startswith(head) and n.endswith(tail) for n in (".git", "git~1")):
        return False  # cheaper than the regex, which would say the same
    pattern = _glob_re(component)
    return any(pattern.match(name) for name in _GIT_DIR_SPELLINGS)


# every case of the two names, for matching wildcards against them
_GIT_DIR_SPELLINGS = tuple(
    dict.fromkeys(
        "".join(c.upper() if mask >> k & 1 else c for k, c in enumerate(name))
        for name in (".git", "git~1")
        for mask in range(1 << len(name))
    )
)


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def matches(pattern: str, path: str) -> bool:
    """Does ``path`` fall under ``pattern`` (a path, a directory, or a glob with ``**``)?"""
    if not is_glob(pattern):
        return path == pattern or path.startswith(pattern.rstrip("/") + "/")
    return _glob_re(pattern).match(path) is not None


_cache: dict[str, re.Pattern[str]] = {}


def _glob_re(pattern: str) -> re.Pattern[str]:
    cached = _cache.get(pattern)
    if cached is not None:
        return cached
    i, out = 0, []
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape("["))
                i += 1
            else:
                out.append(fnmatch.translate(pattern[i : j + 1])[4:-3])
                i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    compiled = re.compile("".join(out) + r"(?:/.*)?\Z")
    _cache[pattern] = compiled
    return compiled


def overlap(a: str, b: str) -> bool:
    """Could some path be named by both patterns?

    A pattern names what it matches and everything below it (see ``matches``), so two
    patterns overlap when their languages intersect. That is decided exactly, on the
    product of the two patterns' automata, rather than guessed from prefixes: a wrong
    "disjoint" would let two agents write the same file at the same time.
    """
    if a == b:
        return True
    if not _may_meet(a, b):
        return False
    if not is_glob(a) and not is_glob(b):
        return matches(a, b) or matches(b, a)
    return _overlap(a, b) if a < b else _overlap(b, a)


@functools.lru_cache(maxsize=65536)
def _overlap(a: str, b: str) -> bool:
    comps_a, comps_b = _shape(a)[1], _shape(b)[1]
    if comps_a is None or comps_b is None:
        return _intersect(_automaton(a), _automaton(b))
    # Without ``**`` and brackets no wildcard crosses a '/': a pattern of k components
    # names a path exactly when the path's first k components match them one by one
    # (what lies below is free), so two such patterns share a path exactly when each
    # pair of components they both have shares a name.
    return all(_components_meet(x, y) for x, y in zip(comps_a, comps_b, strict=False))


def _components_meet(x: _Component, y: _Component) -> bool:
    """Do two components (no '/', no ``**``, no brackets), which ``_may_meet`` found
    compatible, match a common name?"""
    if x.text == y.text:
        return True
    if x.single_star and y.single_star:
        # head*tail meets head'*tail' exactly when heads and tails are compatible: the
        # longer head followed by the longer tail matches both
        return True
    if (x.literal and y.single_star) or (y.literal and x.single_star):
        name, star = (x, y) if x.literal else (y, x)
        return len(name.text) >= len(star.head) + len(star.tail)
    return _intersect(_automaton(x.text), _automaton(y.text))


class _Component(NamedTuple):
    text: str
    head: str  # literal text before its first wildcard
    tail: str  # literal text after its last wildcard
    literal: bool
    single_star: bool  # head*tail, one '*' and no '?'


@functools.lru_cache(maxsize=65536)
def _shape(pattern: str) -> tuple[str, tuple[_Component, ...] | None]:
    """A pattern's literal prefix, and its components when they can be compared one by
    one (no ``**``, no brackets)."""
    if "**" in pattern or "[" in pattern:
        return literal_prefix(pattern), None
    text = pattern if is_glob(pattern) else pattern.rstrip("/")
    parts = tuple(
        _Component(
            part,
            literal_prefix(part),
            _literal_suffix(part),
            not is_glob(part),
            part.count("*") == 1 and "?" not in part,
        )
        for part in text.split("/")
    )
    return literal_prefix(pattern), parts


def _may_meet(a: str, b: str) -> bool:
    """A quick necessary condition for ``overlap``: every path a pattern names starts
    with its literal prefix, and (component by component, where that applies) a name a
    component matches starts with its head and ends with its tail."""
    prefix_a, comps_a = _shape(a)
    prefix_b, comps_b = _shape(b)
    if not (prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)):
        return False
    if comps_a is None or comps_b is None:
        return True
    for x, y in zip(comps_a, comps_b, strict=False):
        if x.literal and y.literal:
            if x.text != y.text:
                return False
        elif not (
            (x.head.startswith(y.head) or y.head.startswith(x.head))
            and (x.tail.endswith(y.tail) or y.tail.endswith(x.tail))
        ):
            return False
    return True


def _literal_suffix(pattern: str) -> str:
    """The text every match of a bracket-free pattern ends with: after its last wildcard."""
    cut = max(pattern.rfind("*"), pattern.rfind("?"))
    return pattern[cut + 1 :]


class _CharTest(NamedTuple):
    """One character a pattern consumes: the regex it must match, and the characters
    its definition mentions (the only places where its answer can change)."""

    regex: re.Pattern[str]
    mentioned: str


_ANY = _CharTest(re.compile(".", re.S), "")
_NOT_SLASH = _CharTest(re.compile("[^/]"), "/")
_SLASH = _CharTest(re.compile("/"), "/")


class _Automaton(NamedTuple):
    edges: tuple[tuple[tuple[_CharTest, int], ...], ...]
    epsilons: tuple[tuple[int, ...], ...]
    final: int
    can_finish: frozenset[int]  # states from which the final state is reachable


def _literal(ch: str) -> _CharTest:
    return _CharTest(re.compile(re.escape(ch)), ch)


@functools.lru_cache(maxsize=4096)
def _automaton(pattern: str) -> _Automaton:
    """An NFA for the pattern's own matches (without the implied "/..." below them).

    It reads the pattern exactly as ``_glob_re`` does, so both agree on every path.
    """
    edges: list[list[tuple[_CharTest, int]]] = [[]]
    epsilons: list[list[int]] = [[]]

    def new_state() -> int:
        edges.append([])
        epsilons.append([])
        return len(edges) - 1

    def step(test: _CharTest) -> None:
        nonlocal state
        nxt = new_state()
        edges[state].append((test, nxt))
        state = nxt

    def repeat(test: _CharTest) -> None:
        nonlocal state
        nxt = new_state()
        edges[state].append((test, state))
        epsilons[state].append(nxt)
        state = nxt

    text = pattern if is_glob(pattern) else pattern.rstrip("/")
    glob = is_glob(pattern)
    state, i = 0, 0
    while i < len(text):
        if glob and text.startswith("**/", i):
            inner, out = new_state(), new_state()
            epsilons[state] += [out, inner]
            edges[inner] += [(_ANY, inner), (_SLASH, out)]
            state, i = out, i + 3
        elif glob and text.startswith("**", i):
            repeat(_ANY)
            i += 2
        elif glob and text[i] == "*":
            repeat(_NOT_SLASH)
            i += 1
        elif glob and text[i] == "?":
            step(_NOT_SLASH)
            i += 1
        elif glob and text[i] == "[" and (j := text.find("]", i + 1)) != -1:
            piece = text[i : j + 1]
            translated = fnmatch.translate(piece)[4:-3]
            if translated.startswith("[") or translated == "(?!)":
                step(_CharTest(re.compile(translated, re.S), piece))
            else:  # fnmatch reads it as literal text
                for ch in piece:
                    step(_literal(ch))
            i = j + 1
        else:
            step(_literal(text[i]))
            i += 1

    frozen_edges = tuple(tuple(e) for e in edges)
    frozen_eps = tuple(tuple(e) for e in epsilons)
    return _Automaton(
        frozen_edges, frozen_eps, state, _states_reaching(frozen_edges, frozen_eps, state)
    )


def _states_reaching(
    edges: tuple[tuple[tuple[_CharTest, int], ...], ...],
    epsilons: tuple[tuple[int, ...], ...],
    final: int,
) -> frozenset[int]:
    preds: dict[int, set[int]] = {}
    for src, outs in enumerate(edges):
        for test, dst in outs:
            if _satisfiable(test):
                preds.setdefault(dst, set()).add(src)
    for src, outs_eps in enumerate(epsilons):
        for dst in outs_eps:
            preds.setdefault(dst, set()).add(src)
    seen, todo = {final}, [final]
    while todo:
        for p in preds.get(todo.pop(), ()):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return frozenset(seen)


def _closure(aut: _Automaton, states: Iterable[int]) -> frozenset[int]:
    seen, todo = set(states), list(states)
    while todo:
        for nxt in aut.epsilons[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def _candidates(*tests: _CharTest) -> set[str]:
    """Characters that decide whether the tests share one: every boundary of the
    character ranges they define is a mentioned character or its successor."""
    out = {"\x00", "a", "/"}
    for test in tests:
        for ch in test.mentioned:
            code = ord(ch)
            out.update(chr(c) for c in (code - 1, code, code + 1) if 0 <= c <= 0x10FFFF)
    return out


def _satisfiable(test: _CharTest) -> bool:
    return any(test.regex.fullmatch(c) for c in _candidates(test))


def _share_char(x: _CharTest, y: _CharTest) -> bool:
    return any(x.regex.fullmatch(c) and y.regex.fullmatch(c) for c in _candidates(x, y))


def _accepts_slash_then_finishes(aut: _Automaton, states: frozenset[int]) -> bool:
    return any(
        test.regex.fullmatch("/") and dst in aut.can_finish
        for s in states
        for test, dst in aut.edges[s]
    )


def _intersect(a: _Automaton, b: _Automaton) -> bool:
    """Is some path matched by both, counting what lies below each match?"""
    start = (_closure(a, [0]), _closure(b, [0]))
    seen, todo = {start}, [start]
    while todo:
        sa, sb = todo.pop()
        a_done, b_done = a.final in sa, b.final in sb
        if a_done and b_done:
            return True
        # one pattern has matched a directory; the other goes on below it
        if a_done and _accepts_slash_then_finishes(b, sb):
            return True
        if b_done and _accepts_slash_then_finishes(a, sa):
            return True
        for x in sa:
            for tx, dx in a.edges[x]:
                for y in sb:
                    for ty, dy in b.edges[y]:
                        pair = (_closure(a, [dx]), _closure(b, [dy]))
                        if pair not in seen and _share_char(tx, ty):
                            seen.add(pair)
                            todo.append(pair)
    return False


def surfaces_overlap(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    """Pairs of patterns, one from each surface, that may name the same file."""
    return [(x, y) for x in a for y in b if overlap(x, y)]


def literal_prefix(pattern: str) -> str:
    """Text every path a pattern names starts with: up to its first wildcard (a plain
    path names itself and what is below it, with or without its trailing '/')."""
    found = _GLOB_CHARS.search(pattern)
    return pattern.rstrip("/") if found is None else pattern[: found.start()]


def overlapping_surfaces(surfaces: Sequence[Sequence[str]]) -> set[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, of surfaces (by position) that may name the same
    file, as ``surfaces_overlap`` would find, without comparing every pair.

    Two patterns can only share a path when one's literal prefix is a prefix of the
    other's (every path a pattern names starts with its literal prefix), so patterns are
    bucketed by literal prefix and only a bucket and the buckets along its own prefix are
    compared exactly; inside a bucket, patterns compared component by component are also
    told apart by the literal tail of their last component (``src/*_1.py``,
    ``src/*_2.py``). An empty surface names nothing here; what an undeclared surface
    means is the caller's business.
    """
    holders: dict[str, list[int]] = {}
    for index, surface in enumerate(surfaces):
        for pattern in dict.fromkeys(surface):
            holders.setdefault(pattern, []).append(index)
    buckets: dict[str, list[str]] = {}
    for pattern in holders:
        buckets.setdefault(literal_prefix(pattern), []).append(pattern)

    pairs: set[tuple[int, int]] = set()

    def record(x: str, y: str) -> None:
        for i in holders[x]:
            for j in holders[y]:
                if i != j:
                    pairs.add((i, j) if i < j else (j, i))

    for pattern in holders:
        record(pattern, pattern)
    for prefix, patterns in buckets.items():
        for x, y in _bucket_candidates(patterns):
            if overlap(x, y):
                record(x, y)
        for cut in range(len(prefix)):
            for y in buckets.get(prefix[:cut], ()):
                for x in patterns:
                    if overlap(x, y):
                        record(x, y)
    return pairs


def _bucket_candidates(patterns: list[str]) -> Iterable[tuple[str, str]]:
    """Pairs of distinct patterns (sharing a literal prefix) that ``_may_meet`` could pass,
    each once: patterns with the same number of components can only meet when the tail
    of one's last component ends the other's, so those are paired through an index of
    their tails; every other pair is given as is."""
    by_depth: dict[int, list[str]] = {}
    rest: list[str] = []
    for pattern in patterns:
        comps = _shape(pattern)[1]
        if comps is None:
            rest.append(pattern)
        else:
            by_depth.setdefault(len(comps), []).append(pattern)
    for k, x in enumerate(rest):
        yield from ((x, y) for y in rest[k + 1 :])
        yield from ((x, y) for group in by_depth.values() for y in group)
    depths = sorted(by_depth)
    for k, depth in enumerate(depths):
        for other in depths[k + 1 :]:
            yield from ((x, y) for x in by_depth[depth] for y in by_depth[other])
        by_tail: dict[str, list[str]] = {}
        for pattern in by_depth[depth]:
            comps = _shape(pattern)[1]
            assert comps is not None
            by_tail.setdefault(comps[-1].tail[::-1], []).append(pattern)
        for reversed_tail, group in by_tail.items():
            for j, x in enumerate(group):
                yield from ((x, y) for y in group[j + 1 :])
            for cut in range(len(reversed_tail)):
                for y in by_tail.get(reversed_tail[:cut], ()):
                    yield from ((x, y) for x in group)


def covered(path: str, surface: list[str]) -> bool:
    return any(matches(p, path) for p in surface)


def near(path: str, surface: list[str]) -> bool:
    """Is ``path`` in or next to a surface: named by it, or in a directory it writes in?

    An empty surface (any file) is near everything.
    """
    if not surface or covered(path, surface):
        return True
    directory = path.rsplit("/", 1)[0] if "/" in path else ""
    for pattern in surface:
        fixed = _GLOB_CHARS.split(pattern, 1)[0] if is_glob(pattern) else pattern
        home = fixed.rsplit("/", 1)[0] if "/" in fixed else ""
        if directory == home or (home and directory.startswith(home + "/")):
            return True
    return False
