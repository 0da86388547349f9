"""Artifact hygiene: which of a story's changed paths stay out of the delivered branch.

Pure decisions only; ``integration`` applies them to git trees.

A changed path is dropped when nobody asked for it and it is either

* an artifact: it matches an artifact pattern (planning and progress files, ADR drafts,
  scratch notes, agent and tool state, caches, OS litter); or
* a lockfile changed while none of its manifests changed in the same story, in the
  lockfile's directory or below (``npm install`` regenerating package-lock.json).

"Asked for" means: a ``keep`` pattern of the repository's .baro.toml matches it, the
story's write surface names it, or the goal mentions it. A surface entry *names* a path
when it is that path, or a glob whose last segment carries a literal part (``*.md``,
``prd.json``) and matches it, or (artifacts only, not lockfiles) a directory entry
(``docs/adr/``) for the files directly inside that directory. Catch-alls such as ``**``
or ``src/**`` name nothing in particular, so they keep nothing. The goal mentions a path
when it contains the path, its file name or its directory (``docs/adr``) as a word, or
a hint word of the pattern (``ADR`` for ADR drafts; ``lockfile``, ``upgrade``,
``dependencies``... for lockfiles). Artifact patterns match case-insensitively.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from baro_shared.surfaces import UnsafePath, is_glob, matches, normalize


@dataclass(frozen=True)
class ArtifactPattern:
    pattern: str
    # words in a goal that show files of this kind were asked for
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """One path of a story's change; ``status`` is git's letter (A, M, D, T)."""

    path: str
    status: str


@dataclass(frozen=True)
class Dropped:
    path: str
    status: str
    reason: str


ADR_HINTS = ("adr", "adrs", "architecture decision", "decision record", "decision records")

DEFAULT_ARTIFACT_PATTERNS: tuple[ArtifactPattern, ...] = (
    # planning, progress and scratch files agents keep for themselves
    ArtifactPattern("**/prd.json", ("prd",)),
    ArtifactPattern("**/progress.txt"),
    ArtifactPattern("**/progress.md"),
    ArtifactPattern("**/plan.md"),
    ArtifactPattern("**/plan.txt"),
    ArtifactPattern("**/implementation_plan.md"),
    ArtifactPattern("**/implementation-plan.md"),
    ArtifactPattern("**/todo.md"),
    ArtifactPattern("**/todo.txt"),
    ArtifactPattern("**/notes.md"),
    ArtifactPattern("**/scratch.md"),
    ArtifactPattern("**/scratch/**"),
    # architecture-decision drafts
    ArtifactPattern("docs/adr/*.md", ADR_HINTS),
    ArtifactPattern("adr/*.md", ADR_HINTS),
    ArtifactPattern("docs/decisions/*.md", ADR_HINTS),
    # baro's and the agents' own state
    ArtifactPattern(".baro/**"),
    ArtifactPattern("baro.lock"),
    ArtifactPattern(".claude/settings.local.json"),
    # tool caches, virtual environments, OS litter, logs
    ArtifactPattern("**/__pycache__/**"),
    ArtifactPattern("**/*.pyc"),
    ArtifactPattern("**/.pytest_cache/**"),
    ArtifactPattern("**/.mypy_cache/**"),
    ArtifactPattern("**/.ruff_cache/**"),
    ArtifactPattern("**/.hypothesis/**"),
    ArtifactPattern("**/.tox/**"),
    ArtifactPattern("**/.venv/**"),
    ArtifactPattern("**/node_modules/**"),
    ArtifactPattern("**/.coverage"),
    ArtifactPattern("**/htmlcov/**"),
    ArtifactPattern("**/.ds_store"),
    ArtifactPattern("**/thumbs.db"),
    ArtifactPattern("**/*.log"),
)

# lockfile name -> manifests whose change justifies a change of the lockfile
LOCKFILE_MANIFESTS: dict[str, tuple[str, ...]] = {
    "package-lock.json": ("package.json",),
    "npm-shrinkwrap.json": ("package.json",),
    "yarn.lock": ("package.json",),
    "pnpm-lock.yaml": ("package.json", "pnpm-workspace.yaml"),
    "bun.lock": ("package.json",),
    "bun.lockb": ("package.json",),
    "poetry.lock": ("pyproject.toml",),
    "uv.lock": ("pyproject.toml",),
    "pdm.lock": ("pyproject.toml",),
    "Pipfile.lock": ("Pipfile",),
    "Cargo.lock": ("Cargo.toml",),
    "Gemfile.lock": ("Gemfile", "*.gemspec"),
    "composer.lock": ("composer.json",),
    "go.sum": ("go.mod",),
}

LOCKFILE_HINTS = (
    "lockfile",
    "lockfiles",
    "lock file",
    "lock files",
    "dependency",
    "dependencies",
    "deps",
    "upgrade",
    "bump",
    "vulnerability",
    "vulnerabilities",
    "audit",
)


@dataclass(frozen=True)
class ArtifactRules:
    patterns: tuple[ArtifactPattern, ...] = DEFAULT_ARTIFACT_PATTERNS
    keep: tuple[str, ...] = ()
    lockfiles: bool = True


DEFAULT_RULES = ArtifactRules()


def select_dropped(
    changes: Iterable[Change],
    surface: Sequence[str],
    goal: str,
    rules: ArtifactRules = DEFAULT_RULES,
) -> list[Dropped]:
    """The paths of ``changes`` to leave out of the delivered branch, sorted by path."""
    changes = sorted(changes, key=lambda c: c.path)
    entries = surface_entries(surface)
    mentions = GoalMentions(goal)
    changed = [c.path for c in changes]
    dropped: list[Dropped] = []
    for change in changes:
        if any(_matches_ci(pattern, change.path) for pattern in rules.keep):
            continue
        reason = _artifact_reason(change.path, rules.patterns, entries, mentions)
        if reason is None and rules.lockfiles:
            reason = _lockfile_reason(change.path, changed, entries, mentions)
        if reason is not None:
            dropped.append(Dropped(change.path, change.status, reason))
    return dropped


def _artifact_reason(
    path: str,
    patterns: Sequence[ArtifactPattern],
    entries: Sequence[str],
    mentions: GoalMentions,
) -> str | None:
    hit = next((p for p in patterns if _matches_ci(p.pattern, path)), None)
    if hit is None:
        return None
    if any(names(entry, path, directories=True) for entry in entries):
        return None
    if mentions.path(path) or mentions.any_word(hit.hints):
        return None
    return f"artifact nobody asked for (matches {hit.pattern})"


def _lockfile_reason(
    path: str, changed: Sequence[str], entries: Sequence[str], mentions: GoalMentions
) -> str | None:
    manifests = LOCKFILE_MANIFESTS.get(posixpath.basename(path))
    if manifests is None:
        return None
    lock_dir = posixpath.dirname(path)
    for other in changed:
        if _is_manifest(other, manifests) and _within(posixpath.dirname(other), lock_dir):
            return None
    if any(names(entry, path, directories=False) for entry in entries):
        return None
    if mentions.path(path) or mentions.any_word(LOCKFILE_HINTS):
        return None
    return f"lockfile changed without a change to {' or '.join(manifests)}"


def _is_manifest(path: str, manifests: Sequence[str]) -> bool:
    name = posixpath.basename(path)
    return any(fnmatch.fnmatchcase(name, m) for m in manifests)


def _within(directory: str, ancestor: str) -> bool:
    return not ancestor or directory == ancestor or directory.startswith(ancestor + "/")


def _matches_ci(pattern: str, path: str) -> bool:
    return matches(pattern.lower(), path.lower())


def surface_entries(surface: Sequence[str]) -> list[str]:
    """The surface's entries, normalized; unsafe ones (refused by plan validation) skipped."""
    entries = []
    for raw in surface:
        try:
            entries.append(normalize(raw))
        except UnsafePath:
            continue
    return entries


def names(entry: str, path: str, *, directories: bool) -> bool:
    """Does the (normalized) surface entry name ``path`` specifically? See module doc."""
    if not matches(entry, path):
        return False
    if entry == path:
        return True
    last = entry.rsplit("/", 1)[-1]
    if is_glob(entry):
        if set(last) != {"*"}:
            return True
        directory = entry[: -len(last)].rstrip("/")
    else:
        directory = entry
    if not directories or not directory or is_glob(directory):
        return False
    return posixpath.dirname(path) == directory


_TOKEN_EDGES = "`'\"()[]{}<>"
_TOKEN_TRAILERS = ".,;:!?"


class GoalMentions:
    """Answers "does the goal text mention this path / any of these words?"."""

    def __init__(self, goal: str) -> None:
        self._text = goal.lower()
        tokens = set()
        for raw in self._text.split():
            token = raw.strip(_TOKEN_EDGES).rstrip(_TOKEN_TRAILERS).strip(_TOKEN_EDGES)
            token = token.removeprefix("./").rstrip("/")
            if token:
                tokens.add(token)
        self._tokens = frozenset(tokens)

    def path(self, path: str) -> bool:
        lowered = path.lower()
        if lowered in self._tokens or posixpath.basename(lowered) in self._tokens:
            return True
        # only the immediate directory: "src" must not keep src/__pycache__/x.pyc
        parent = posixpath.dirname(lowered)
        return bool(parent) and parent in self._tokens

    def any_word(self, words: Iterable[str]) -> bool:
        return any(
            re.search(rf"(?<![a-z0-9_]){re.escape(word)}(?![a-z0-9_])", self._text)
            for word in words
        )
