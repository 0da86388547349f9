"""Delivery into the user's repository, and cleanup.

The merger is the only writer of the user's repository, and it writes refs and objects
only: ``git fetch`` from the integration repository (objects, plus the run's refs under
``refs/baro/<run>/``) and ``git update-ref`` for the result branch. Neither reads or
writes the index, the working tree, HEAD or the stash. Every git command here runs with
the user's hooks switched off (``core.hooksPath=/dev/null``: fetch and update-ref would
otherwise run a ``reference-transaction`` hook), without fsmonitor, automatic gc or
maintenance, and without writing FETCH_HEAD.

A new branch is created with ``update-ref --stdin`` ``create``, which git refuses when
the branch exists: a name is never reused silently, even against a branch created
between the check and the write.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from baro_merger import naming
from baro_merger.errors import DeliveryError, NotFastForward
from baro_merger.identity import load_identity
from baro_merger.integration import integration_head, run_base
from baro_merger.plumbing import (
    ZERO_OID,
    commit_tree,
    forget_repo_lock,
    list_refs,
    ref_value,
    repo_lock,
    resolve_commit,
    tree_of,
    update_refs,
)
from baro_shared import objectcache
from baro_shared.gitutil import GitResult, own_git
from baro_shared.schemas import Checkpoint

_QUIET_USER_GIT = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "fetch.writeCommitGraph=false",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
)  # fmt: skip
_NAME_ATTEMPTS = 20
PARTIAL_TRAILER = "Baro-Result: partial"  # on a checkpoint's marker commit


async def _user_git(user_repo: Path, *args: str, check: bool = True) -> GitResult:
    return await own_git(*_QUIET_USER_GIT, *args, cwd=user_repo, check=check)


@dataclass(frozen=True)
class Delivery:
    branch: str | None  # None: the run changed nothing, so no branch was made
    base: str
    head: str
    commits: int
    files_changed: list[str]
    diffstat: str
    updated_existing: bool  # --continue moved an existing baro branch
    already_delivered: bool  # a repeated call found this head already delivered
    preserved_refs: list[str]  # the run's refs now in the user's repository


async def deliver(
    repo: Path,
    run_id: str,
    user_repo: Path,
    *,
    slug: str,
    continue_branch: str | None = None,
    checkpoint: Checkpoint | None = None,
) -> Delivery:
    """Put the run's integration head into ``user_repo`` as a branch.

    New branch: ``baro/<slug>`` (``slug`` is normalized with ``naming.slugify``), or
    ``baro/<slug>-2``, ``-3``... when taken. ``continue_branch``: fast-forward that
    existing baro branch to the new head. Either way every attempt ref of the run is
    mirrored into ``user_repo`` first, so nothing is lost whatever happens next.
    Idempotent: a repeated call finds the branch this run created (recorded as
    ``refs/baro/<run>/delivered/<branch>`` in the same transaction as the branch) still
    at the head, or the continued branch already at the head, and returns it with
    ``already_delivered``.

    A partial result (``checkpoint``) is delivered as a new branch
    ``baro/<slug>-checkpoint`` (with ``continue_branch``: ``<that branch>-checkpoint``,
    the continued branch stays where it is), at its marker commit (``mark_checkpoint``);
    with ``checkpoint.deliver`` false as no branch at all: its work stays at the run's
    refs (``refs/baro/<run>/integration``).

    Raises DeliveryError (not a repository, the continued branch is missing, not a baro
    branch or checked out) and NotFastForward (the continued branch moved).
    """
    base = await run_base(repo, run_id)
    head = await integration_head(repo, run_id)
    await _require_repository(user_repo)
    if checkpoint is not None and checkpoint.deliver and head != base:
        head = await mark_checkpoint(repo, run_id, head, checkpoint)
    preserved = await preserve_refs(repo, run_id, user_repo)
    stats = await _stats(repo, base, head)
    if checkpoint is not None:
        if not checkpoint.deliver or head == base:
            return Delivery(None, base, head, *stats, False, False, preserved)
        beside = continue_branch.strip().removeprefix("refs/heads/") if continue_branch else slug
        name = naming.checkpoint_slug(beside.removeprefix(naming.BRANCH_PREFIX))
        branch, created = await _create_branch(user_repo, run_id, name, head)
        return Delivery(branch, base, head, *stats, False, not created, preserved)
    if continue_branch:
        branch, moved = await _fast_forward(user_repo, run_id, continue_branch, head)
        return Delivery(branch, base, head, *stats, True, not moved, preserved)
    if head == base:
        return Delivery(None, base, head, *stats, False, False, preserved)
    branch, created = await _create_branch(user_repo, run_id, naming.slugify(slug), head)
    return Delivery(branch, base, head, *stats, False, not created, preserved)


async def mark_checkpoint(repo: Path, run_id: str, head: str, checkpoint: Checkpoint) -> str:
    """The commit that marks a partial result: ``head``'s own tree (it changes no file)
    with a message saying what the result lacks and a ``Baro-Result: partial`` trailer,
    by the run's identity; kept as ``refs/baro/<run>/checkpoint``. Idempotent: the
    marker made before on the same head is the one returned."""
    ref = naming.checkpoint_ref(run_id)
    async with repo_lock(repo):
        current = await ref_value(repo, ref)
        if current is not None and await resolve_commit(repo, f"{current}^") == head:
            return current
        message = checkpoint_message(checkpoint)
        tree = await tree_of(repo, head)
        commit = await commit_tree(repo, tree, head, message, await load_identity(repo))
        await update_refs(repo, [f"update {ref} {commit} {current or ZERO_OID}"])
        return commit


def checkpoint_message(checkpoint: Checkpoint) -> str:
    """The marker commit's message: partial, what it holds, what it lacks and why."""
    held = ", ".join(checkpoint.integrated) or "nothing"
    missing = "\n".join(f"- {line[:400]}" for line in checkpoint.missing[:20])
    more = len(checkpoint.missing) - 20
    if more > 0:
        missing += f"\n- and {more} more"
    return (
        "baro checkpoint: a partial result, not the whole goal\n\n"
        f"Integrated: {held}. Not in it:\n{missing}\n\n"
        "This commit changes no file: it marks the branch as partial.\n\n"
        f"{PARTIAL_TRAILER}\n"
    )


async def preserve_refs(repo: Path, run_id: str, user_repo: Path) -> list[str]:
    """Mirror the run's refs (base, integration head, every story attempt) into
    ``user_repo`` under ``refs/baro/<run>/``, and return their names. Also what a failed
    or conflicting run calls, so that every attempt stays reachable until cleanup."""
    prefix = naming.run_prefix(run_id)
    source = await asyncio.to_thread(repo.resolve)
    oversized = naming.oversized_prefix(run_id)
    # an attempt holding a file refused as too large stays in the integration repository
    # (baro's cache): copying it would grow the user's .git by what the guard refused
    too_large = [
        f"^{prefix}{marker.removeprefix(oversized)}" for marker in await list_refs(repo, oversized)
    ]
    fetched = await _user_git(
        user_repo,
        "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules",
        "--no-auto-maintenance", "--no-auto-gc",
        str(source),
        f"+{prefix}*:{prefix}*",
        f"^{prefix}integrated/*",
        f"^{naming.conflicted_prefix(run_id)}*",
        f"^{oversized}*",
        f"^{naming.published_ref(run_id)}",
        *too_large,
        check=False,
    )  # fmt: skip
    if fetched.returncode != 0:
        # e.g. a ref named refs/baro where baro needs a directory of refs: a condition
        # of the user's repository that another try would meet again
        raise DeliveryError(
            f"cannot write the run's refs under {prefix} in {user_repo}: "
            f"{objectcache.git_line(fetched.stderr)} (rename or delete the ref in the way and run again)"
        )
    mirrored = await list_refs(user_repo, prefix)
    delivered = naming.delivered_prefix(run_id)
    return sorted(name for name in mirrored if not name.startswith(delivered))


async def _require_repository(user_repo: Path) -> None:
    if not await _is_repository(user_repo):
        raise DeliveryError(f"{user_repo} is not a git repository: nothing was delivered")


async def _stats(repo: Path, base: str, head: str) -> tuple[int, list[str], str]:
    count = await own_git("rev-list", "--count", f"{base}..{head}", cwd=repo)
    names = await own_git(
        "diff", "--no-ext-diff", "--no-renames", "--name-only", "-z", base, head, cwd=repo
    )
    stat = await own_git("diff", "--no-ext-diff", "--stat=100", base, head, cwd=repo)
    files = [name for name in names.stdout.split("\0") if name]
    return int(count.out), files, stat.stdout.rstrip()


async def _create_branch(user_repo: Path, run_id: str, slug: str, head: str) -> tuple[str, bool]:
    """(branch name, created?) for a new result branch; see module doc."""
    marker_prefix = naming.delivered_prefix(run_id)
    branches = {
        name.removeprefix("refs/heads/"): oid
        for name, oid in (await list_refs(user_repo, "refs/heads/")).items()
    }
    for marker in await list_refs(user_repo, marker_prefix):
        delivered = marker.removeprefix(marker_prefix)
        if branches.get(delivered) == head:
            return delivered, False
    taken = set(branches)
    for _ in range(_NAME_ATTEMPTS):
        try:
            name = naming.unique_branch_name(slug, taken)
        except ValueError:
            break
        # the branch and the run's record of it, in one transaction; "create" fails
        # when the branch exists
        created = await own_git(
            *_QUIET_USER_GIT,
            "update-ref", "-m", f"baro: deliver run {run_id}", "--stdin",
            cwd=user_repo,
            check=False,
            input=f"create refs/heads/{name} {head}\ncreate {marker_prefix}{name} {head}\n".encode(),
        )  # fmt: skip
        if created.returncode == 0:
            return name, True
        taken.add(name)  # created meanwhile, or clashes with a branch directory
    raise DeliveryError(
        f"no free branch name for baro/{slug} in {user_repo} (is there a branch named 'baro'?); "
        f"the result is kept at {naming.integration_ref(run_id)}"
    )


async def _fast_forward(
    user_repo: Path, run_id: str, continue_branch: str, head: str
) -> tuple[str, bool]:
    """(branch name, moved?) for --continue."""
    kept = f"the result is kept at {naming.integration_ref(run_id)}"
    try:
        branch = naming.normalize_baro_branch(continue_branch)
    except ValueError as exc:
        raise DeliveryError(f"{exc}; {kept}") from None
    ref = f"refs/heads/{branch}"
    current = await ref_value(user_repo, ref)
    if current is None:
        raise DeliveryError(f"branch {branch} does not exist in {user_repo}; {kept}")
    if current == head:
        return branch, False
    checked_out = await _checked_out_at(user_repo, ref)
    if checked_out is not None:
        raise DeliveryError(
            f"{branch} is checked out in {checked_out}, and moving it would change what that "
            f"checkout shows: switch it to another branch and deliver again; {kept}"
        )
    ancestor = await _user_git(user_repo, "merge-base", "--is-ancestor", current, head, check=False)
    if ancestor.returncode != 0:
        raise NotFastForward(
            f"{branch} is at {current[:12]}, which the run's result {head[:12]} does not "
            f"contain (the branch moved since the run started): not a fast-forward; {kept}"
        )
    await _user_git(
        user_repo,
        "update-ref", "-m", f"baro: continue run {run_id}", ref, head, current,
    )  # fmt: skip
    return branch, True


async def _checked_out_at(user_repo: Path, ref: str) -> str | None:
    listing = await _user_git(user_repo, "worktree", "list", "--porcelain")
    worktree = None
    for line in listing.stdout.splitlines():
        if line.startswith("worktree "):
            worktree = line.removeprefix("worktree ")
        elif line == f"branch {ref}":
            return worktree
    return None


# --------------------------------------------------------------------------- cleanup


@dataclass(frozen=True)
class Cleanup:
    removed_refs: list[str]
    removed_repository: bool


async def cleanup_run(repo: Path, run_id: str, user_repo: Path | None = None) -> Cleanup:
    """``baro clean``: delete ``refs/baro/<run>/...`` from ``user_repo`` and remove the
    run's integration repository. Delivered branches stay. Idempotent."""
    removed: list[str] = []
    if user_repo is not None and await _is_repository(user_repo):
        refs = await list_refs(user_repo, naming.run_prefix(run_id))
        if refs:
            payload = "".join(f"delete {name} {oid}\n" for name, oid in sorted(refs.items()))
            await own_git(
                *_QUIET_USER_GIT, "update-ref", "--stdin", cwd=user_repo, input=payload.encode()
            )
            removed = sorted(refs)
    exists = await asyncio.to_thread(repo.is_dir)
    if exists:
        async with repo_lock(repo):
            objectcache.release(repo)  # its source cache may go once nothing borrows
            await asyncio.to_thread(shutil.rmtree, repo)
    forget_repo_lock(repo)
    return Cleanup(removed, exists)


async def _is_repository(path: Path) -> bool:
    if not await asyncio.to_thread(path.is_dir):
        return False
    return (await _user_git(path, "rev-parse", "--git-dir", check=False)).returncode == 0
