"""Write surfaces: repo-relative paths and globs a story may change.

Pure functions shared by the planner (validation), the conductor (which stories may run
side by side), the runner (changes outside a story's surface) and the merger (which files
nobody asked for).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

_GLOB_CHARS = re.compile(r"[*?\[]")


class UnsafePath(ValueError):
    pass


def normalize(path: str) -> str:
    """A repo-relative POSIX path, or raise UnsafePath (absolute, '..', inside .git)."""
    raw = path.strip().replace("\\", "/")
    if not raw:
        raise UnsafePath("empty path")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:/", raw):
        raise UnsafePath(f"absolute path {path!r}: write surfaces are relative to the repository")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePath(f"path {path!r} leaves the repository ('..')")
    if parts and parts[0] == ".git":
        raise UnsafePath(f"path {path!r} is inside .git")
    if not parts:
        raise UnsafePath(f"path {path!r} names the repository root")
    norm = "/".join(parts)
    if raw.endswith("/") and not _GLOB_CHARS.search(norm):
        norm += "/**"
    return norm


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def _static_prefix(pattern: str) -> str:
    """Directory part of a glob before its first wildcard segment."""
    out = []
    for seg in pattern.split("/"):
        if is_glob(seg):
            break
        out.append(seg)
    return "/".join(out)


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
    """Could some path be matched by both patterns? Conservative: True when unsure."""
    if a == b:
        return True
    ga, gb = is_glob(a), is_glob(b)
    if not ga and not gb:
        return matches(a, b) or matches(b, a)
    if not ga:
        return matches(b, a) or _prefix_related(_static_prefix(b), a)
    if not gb:
        return matches(a, b) or _prefix_related(_static_prefix(a), b)
    pa, pb = _static_prefix(a), _static_prefix(b)
    if not _prefix_related(pa, pb):
        return False
    # both globs under related directories: compare their file-name parts when both are
    # simple "dir/*.ext"-style patterns, otherwise assume they may overlap
    ta, tb = a.rsplit("/", 1)[-1], b.rsplit("/", 1)[-1]
    if "**" in a or "**" in b or posixpath.dirname(a) != posixpath.dirname(b):
        return True
    return fnmatch.fnmatchcase(ta, tb) or fnmatch.fnmatchcase(tb, ta) or _may_share(ta, tb)


def _prefix_related(pa: str, pb: str) -> bool:
    if not pa or not pb:
        return True
    return pa == pb or pa.startswith(pb + "/") or pb.startswith(pa + "/")


def _may_share(ta: str, tb: str) -> bool:
    """Two single-segment globs: disjoint only when their literal suffixes differ."""
    sa = re.split(r"[*?\[]", ta)[-1]
    sb = re.split(r"[*?\[]", tb)[-1]
    if sa and sb and not (sa.endswith(sb) or sb.endswith(sa)):
        return False
    pa = re.split(r"[*?\[]", ta)[0]
    pb = re.split(r"[*?\[]", tb)[0]
    return not (pa and pb and not (pa.startswith(pb) or pb.startswith(pa)))


def surfaces_overlap(a: list[str], b: list[str]) -> list[tuple[str, str]]:
    """Pairs of patterns, one from each surface, that may name the same file."""
    return [(x, y) for x in a for y in b if overlap(x, y)]


def covered(path: str, surface: list[str]) -> bool:
    return any(matches(p, path) for p in surface)
