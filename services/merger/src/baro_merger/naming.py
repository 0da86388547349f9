"""Names the merger gives to things: branch slugs, result branches, run refs.

Pure functions only. The ref layout of one run, in the integration repository and
(mirrored at delivery) in the user's repository:

    refs/baro/<run>/base                         the run's base commit
    refs/baro/<run>/integration                  the integration head
    refs/baro/<run>/<story>/<attempt>            every imported attempt of every story
    refs/baro/<run>/integrated/<story>/<attempt> which attempt of a story was integrated
    refs/baro/<run>/conflicted/<story>/<attempt> (integration repository) the head an
                                                 attempt conflicted with: asked again,
                                                 it is answered the same
    refs/baro/<run>/oversized/<story>/<attempt>  (integration repository) an attempt with
                                                 a file refused as too large: it is not
                                                 mirrored into the user's repository
    refs/baro/<run>/published                    the head of the last bundle handed out
    refs/baro/<run>/checkpoint                   a partial result's marker commit (on the
                                                 integration head, the same tree)
    refs/baro/<run>/delivered/<branch>           (user's repository) the branch delivered
    refs/baro/<run>/source, source-refs/*        (reserved; older versions fetched the
                                                 source through them)

A story whose id is one of the reserved names below gets a hashed suffix so that its
attempt refs can never collide with the run's own refs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection

SLUG_MAX = 48
BRANCH_PREFIX = "baro/"
CHECKPOINT_SUFFIX = "-checkpoint"  # a partial result's branch: baro/<slug>-checkpoint
FALLBACK_SLUG = "change"

RESERVED_STORY_COMPONENTS = frozenset(
    {
        "base",
        "integration",
        "integrated",
        "conflicted",
        "oversized",
        "published",
        "checkpoint",
        "delivered",
        "source",
        "source-refs",
    }
)

_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def slugify(text: str, max_len: int = SLUG_MAX) -> str:
    """Lowercase ``[a-z0-9-]``, at most ``max_len`` chars, no leading or trailing dash.

    A long goal is cut at a word boundary when that keeps at least a third of the limit.
    Text with nothing usable (only punctuation or non-latin script) gives ``change``.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[: max_len + 1]
        boundary = cut.rfind("-")
        slug = cut[:boundary] if boundary >= max_len // 3 else slug[:max_len]
        slug = slug.strip("-")
    return slug or FALLBACK_SLUG


def checkpoint_slug(slug: str) -> str:
    """The slug of a partial result's branch: ``slug`` (normalized) with ``-checkpoint``."""
    return slugify(slug, SLUG_MAX - len(CHECKPOINT_SUFFIX)) + CHECKPOINT_SUFFIX


def branch_candidates(slug: str) -> list[str]:
    """The first names tried for a result branch, in order: baro/<slug>, baro/<slug>-2, ..."""
    return [f"{BRANCH_PREFIX}{slug}"] + [f"{BRANCH_PREFIX}{slug}-{n}" for n in range(2, 1000)]


def branch_conflicts(name: str, existing: Collection[str]) -> bool:
    """Would creating branch ``name`` clash with an existing branch (same name, or a
    file/directory clash such as ``baro/x`` next to ``baro/x/y``)?"""
    for other in existing:
        if other == name or other.startswith(name + "/") or name.startswith(other + "/"):
            return True
    return False


def unique_branch_name(slug: str, existing: Collection[str]) -> str:
    """The first candidate branch name (short names, without ``refs/heads/``) that does
    not clash with ``existing``. Raises ValueError when none is free."""
    for name in branch_candidates(slug):
        if not branch_conflicts(name, existing):
            return name
    raise ValueError(f"no free branch name for slug {slug!r}")


def normalize_baro_branch(branch: str) -> str:
    """``refs/heads/baro/x`` or ``baro/x`` -> ``baro/x``; anything else raises ValueError.

    --continue only ever moves a branch baro created, never one of the user's own.
    """
    name = branch.strip().removeprefix("refs/heads/")
    if not name.startswith(BRANCH_PREFIX) or len(name) == len(BRANCH_PREFIX):
        raise ValueError(f"{branch!r} is not a baro branch (expected baro/<name>)")
    return name


def ref_component(name: str) -> str:
    """``name`` when it is a safe single ref component, else a sanitized form with a
    hash suffix, so that distinct names never map to the same component."""
    if _SAFE_COMPONENT.match(name) and not _awkward(name):
        return name
    cleaned = re.sub(r"\.{2,}", ".", _UNSAFE_CHARS.sub("-", name)).strip("._-")[:80] or "x"
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{cleaned}-{digest}"


def _awkward(name: str) -> bool:
    return ".." in name or name.endswith((".", ".lock"))


def story_component(story_id: str) -> str:
    if story_id in RESERVED_STORY_COMPONENTS:
        digest = hashlib.sha256(story_id.encode()).hexdigest()[:12]
        return f"{story_id}-{digest}"
    return ref_component(story_id)


def run_prefix(run_id: str) -> str:
    return f"refs/baro/{ref_component(run_id)}/"


def base_ref(run_id: str) -> str:
    return run_prefix(run_id) + "base"


def integration_ref(run_id: str) -> str:
    return run_prefix(run_id) + "integration"


def checkpoint_ref(run_id: str) -> str:
    return run_prefix(run_id) + "checkpoint"


def published_ref(run_id: str) -> str:
    return run_prefix(run_id) + "published"


def delivered_prefix(run_id: str) -> str:
    return run_prefix(run_id) + "delivered/"


def attempt_ref(run_id: str, story_id: str, attempt: int) -> str:
    return f"{run_prefix(run_id)}{story_component(story_id)}/{int(attempt)}"


def integrated_prefix(run_id: str, story_id: str) -> str:
    return f"{run_prefix(run_id)}integrated/{story_component(story_id)}/"


def integrated_marker(run_id: str, story_id: str, attempt: int) -> str:
    return f"{integrated_prefix(run_id, story_id)}{int(attempt)}"


def conflicted_prefix(run_id: str) -> str:
    return run_prefix(run_id) + "conflicted/"


def conflicted_marker(run_id: str, story_id: str, attempt: int) -> str:
    """Holds the integration head ``attempt_ref(run_id, story_id, attempt)`` conflicted with."""
    return f"{conflicted_prefix(run_id)}{story_component(story_id)}/{int(attempt)}"


def oversized_prefix(run_id: str) -> str:
    return run_prefix(run_id) + "oversized/"


def oversized_marker(run_id: str, story_id: str, attempt: int) -> str:
    """Marks ``attempt_ref(run_id, story_id, attempt)`` as too large to mirror."""
    return f"{oversized_prefix(run_id)}{story_component(story_id)}/{int(attempt)}"


def integration_repo_name(run_id: str) -> str:
    """Directory name of a run's bare integration repository under the cache root."""
    return f"{ref_component(run_id)}.git"
