"""What of a story's change may be integrated: the trust boundary at integration. Pure.

Everything an agent produced is untrusted input. Per story attempt, each changed path is
judged before anything is merged:

* **guards**, whatever the policy, refuse a path with a named rule:

  - ``git_path``: a path with a component a file system could take for ``.git``
    (``.GIT/hooks/x``, ``sub/.Git/config``; see ``baro_shared.surfaces.is_git_like_name``);
  - ``symlink_escape``: a symbolic link whose target leaves the repository (an absolute
    target, ``..`` above the root, also through other links of the tree) or points
    into ``.git``;
  - ``gitlink``: a submodule entry (mode 160000) the story added, or a file it turned into
    one: a repository the agent cloned or made inside the workspace, which ``git add -A``
    records as a bare commit pointer; its files are not in the change and the pointer
    leads nowhere (an existing submodule's pointer moved is judged like any change);
  - ``too_large``: a file above the size limit (default 5 MiB) that was not already
    that large at the story's base (the merger then keeps that attempt in its own
    repository only, so the user's ``.git`` does not grow by it);
  - ``mass_deletion``: the story deletes more than a share of the files tracked at its
    base (default half; files moved elsewhere do not count): every such deletion is
    refused;
  - ``baro_config``: a change to ``.baro.toml`` that neither the story's write surface
    names nor the goal mentions (it decides which commands baro runs);

* then artifact hygiene (``hygiene.select_dropped``) drops what nobody asked for;

* then the **write surface**: a remaining path the story's surface does not cover is a
  surface violation (an empty surface covers everything). Under the ``strict`` policy a
  story with violations is not integrated at all (its conductor re-runs it once with the
  violations named, then fails it); under ``warn`` it is integrated and the violations
  are reported.

Refused and dropped paths are left out of the integration and stay in the story's
attempt ref. ``integration`` gathers the facts (modes, sizes, link targets) from git.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from baro_merger.hygiene import GoalMentions, surface_entries
from baro_shared.repoconfig import CONFIG_FILE, DEFAULT_SURFACE, SurfaceConfig, human_size
from baro_shared.schemas import RefusalRule, SurfacePolicy
from baro_shared.surfaces import GIT_PATH_REASON, covered, is_git_like_name

Policy = SurfacePolicy
Rule = RefusalRule

SYMLINK_MODE = "120000"
GITLINK_MODE = "160000"
DELETED_MODE = "000000"
MAX_LINK_HOPS = 40  # what Linux allows before ELOOP


@dataclass(frozen=True)
class Entry:
    """One changed path of a story attempt, with the facts the guards need."""

    path: str
    status: str  # git's letter: A, M, D, T
    old_mode: str = DELETED_MODE
    new_mode: str = DELETED_MODE
    old_oid: str = ""
    new_oid: str = ""
    old_size: int | None = None
    new_size: int | None = None
    link_target: str | None = None  # the new side's target, for a symbolic link

    @property
    def deleted(self) -> bool:
        return self.new_mode == DELETED_MODE


@dataclass(frozen=True)
class Refused:
    path: str
    status: str
    rule: Rule
    reason: str


@dataclass(frozen=True)
class Verdict:
    refused: list[Refused] = field(default_factory=list)  # by a guard: always left out
    outside_surface: list[str] = field(default_factory=list)  # after guards and hygiene

    @property
    def refused_paths(self) -> set[str]:
        return {r.path for r in self.refused}


def resolve_policy(requested: Policy | None, configured: Policy | None, mode: str | None) -> Policy:
    """The run's flag, else ``[surface] policy``, else strict for parallel runs (stories
    side by side must not write each other's files), warn otherwise."""
    return requested or configured or ("strict" if mode == "parallel" else "warn")


def guard(
    entries: Sequence[Entry],
    *,
    surface: Sequence[str],
    goal: str,
    tracked_at_base: int,
    links: Mapping[str, str],
    limits: SurfaceConfig = DEFAULT_SURFACE,
) -> list[Refused]:
    """The paths the guards refuse, sorted by path. ``links`` maps every symbolic link of
    the story's resulting tree to its target (only read when the change adds links)."""
    refused: dict[str, Refused] = {}

    def refuse(entry: Entry, rule: Rule, reason: str) -> None:
        refused.setdefault(entry.path, Refused(entry.path, entry.status, rule, reason))

    for entry in entries:
        if any(is_git_like_name(part) for part in entry.path.split("/")):
            refuse(entry, "git_path", GIT_PATH_REASON)
    for entry in entries:
        if entry.new_mode == SYMLINK_MODE:
            why = link_escape(entry.path, entry.link_target or "", links)
            if why is not None:
                refuse(entry, "symlink_escape", f"symbolic link to {entry.link_target!r} {why}")
    for entry in entries:
        if entry.new_mode == GITLINK_MODE and entry.old_mode != GITLINK_MODE:
            refuse(entry, "gitlink", _gitlink_reason(entry))
    for entry in entries:
        reason = _too_large(entry, limits.max_file_bytes)
        if reason is not None:
            refuse(entry, "too_large", reason)
    for entry, reason in _mass_deletion(entries, tracked_at_base, limits.max_deleted_share):
        refuse(entry, "mass_deletion", reason)
    for entry in entries:
        if entry.path == CONFIG_FILE and not _config_asked_for(surface, goal):
            refuse(
                entry,
                "baro_config",
                f"{CONFIG_FILE} decides which commands baro runs; no story was asked to change it",
            )
    return [refused[p] for p in sorted(refused)]


def outside_surface(paths: Iterable[str], surface: Sequence[str]) -> list[str]:
    """The paths the write surface does not cover (none when the surface is empty)."""
    entries = surface_entries(surface)
    if not entries:
        return []
    return sorted(p for p in paths if not covered(p, entries))


# --------------------------------------------------------------------------- links


def link_escape(path: str, target: str, links: Mapping[str, str]) -> str | None:
    """Why the link at ``path`` pointing to ``target`` is refused, or None.

    Resolved as the operating system would, component by component, following the
    tree's other links (``links``: path -> target): refused when a target is absolute,
    when ``..`` climbs above the repository's root at any step, when it lands in
    ``.git``, when the links loop, or when the target is empty.
    """
    if not target:
        return "has an empty target"
    current = [p for p in posixpath.dirname(path).split("/") if p]
    pending = _parts(target)
    if target.startswith("/"):
        return "is absolute: it points outside the repository"
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not current:
                return "leaves the repository"
            current.pop()
            continue
        if is_git_like_name(part):
            return "points into .git"
        candidate = "/".join([*current, part])
        next_target = links.get(candidate)
        if next_target is None:
            current.append(part)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS:
            return "goes through a loop of links"
        if next_target.startswith("/"):
            return f"goes through {candidate!r}, a link outside the repository"
        if not next_target:
            return f"goes through {candidate!r}, a link with an empty target"
        pending = _parts(next_target) + pending
    return None


def _parts(target: str) -> list[str]:
    return [p for p in target.split("/") if p not in ("", ".")]


# --------------------------------------------------------------------------- gitlinks


def _gitlink_reason(entry: Entry) -> str:
    commit = entry.new_oid[:12] or "a commit"
    was = "" if entry.old_mode == DELETED_MODE else ", in place of a file"
    return (
        f"a submodule entry (gitlink to {commit}{was}): a repository made or cloned inside "
        "the workspace, recorded as a commit pointer without its files; add a submodule "
        "yourself with git submodule add"
    )


# --------------------------------------------------------------------------- sizes


def _too_large(entry: Entry, limit: int) -> str | None:
    if entry.deleted or entry.new_mode in (SYMLINK_MODE, GITLINK_MODE) or entry.new_size is None:
        return None
    if entry.new_size <= limit:
        return None
    if entry.old_size is not None and entry.old_size >= entry.new_size:
        return None  # it was this large already: the story did not make it so
    return (
        f"{human_size(entry.new_size)}, above the {human_size(limit)} limit for one file "
        "(its attempt stays in baro's cache, not in your repository, until baro clean)"
    )


# --------------------------------------------------------------------------- deletions


def _mass_deletion(
    entries: Sequence[Entry], tracked_at_base: int, share: float
) -> list[tuple[Entry, str]]:
    """Every lost deletion, when they are more than ``share`` of the tracked files.

    A deletion whose content the story adds back elsewhere is a move, not a loss.
    """
    kept_content = {e.new_oid for e in entries if not e.deleted and e.new_oid}
    lost = [e for e in entries if e.deleted and e.old_oid not in kept_content]
    if len(lost) < 2 or tracked_at_base <= 0 or len(lost) <= share * tracked_at_base:
        return []
    reason = (
        f"the story deletes {len(lost)} of the {tracked_at_base} files tracked at its base "
        f"({len(lost) / tracked_at_base:.0%}), more than the {share:.0%} allowed"
    )
    return [(e, reason) for e in lost]


# --------------------------------------------------------------------------- surfaces


def _config_asked_for(surface: Sequence[str], goal: str) -> bool:
    """The surface lists the file itself (a glob or catch-all does not), or the goal names it."""
    return CONFIG_FILE in surface_entries(surface) or GoalMentions(goal).path(CONFIG_FILE)
