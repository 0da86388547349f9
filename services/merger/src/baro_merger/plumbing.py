"""Small git plumbing steps the merger composes. No working tree anywhere."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from baro_shared.gitutil import BARO_IDENTITY, GitError, git

ZERO_OID = "0" * 40

_locks: dict[str, asyncio.Lock] = {}


def repo_lock(repo: Path) -> asyncio.Lock:
    """One lock per repository: ref-moving steps of a run happen one at a time."""
    key = str(repo.resolve())
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


def forget_repo_lock(repo: Path) -> None:
    _locks.pop(str(repo.resolve()), None)


async def resolve_commit(repo: Path, rev: str) -> str | None:
    result = await git(
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{rev}^{{commit}}",
        cwd=repo,
        check=False,
    )
    return result.out if result.returncode == 0 and result.out else None


async def tree_of(repo: Path, commit: str) -> str:
    return (await git("rev-parse", "--verify", f"{commit}^{{tree}}", cwd=repo)).out


async def list_refs(repo: Path, prefix: str) -> dict[str, str]:
    """refname -> object id, for every ref under ``prefix`` (a ``refs/...`` path)."""
    result = await git("for-each-ref", "--format=%(objectname) %(refname)", prefix, cwd=repo)
    refs = {}
    for line in result.stdout.splitlines():
        oid, _, name = line.partition(" ")
        if name:
            refs[name] = oid
    return refs


async def ref_value(repo: Path, ref: str) -> str | None:
    return (await list_refs(repo, ref)).get(ref)


async def update_refs(repo: Path, lines: list[str], *, git_args: tuple[str, ...] = ()) -> None:
    """Apply ``update-ref --stdin`` instructions atomically: all of them or none."""
    if lines:
        payload = "".join(line + "\n" for line in lines).encode()
        await git(*git_args, "update-ref", "--stdin", cwd=repo, input=payload)


@dataclass(frozen=True)
class RawChange:
    """One entry of ``git diff-tree --raw`` between two commits."""

    path: str
    status: str
    old_mode: str
    old_oid: str
    new_mode: str
    new_oid: str

    @property
    def added(self) -> bool:
        return self.old_mode == "000000"


async def changed_entries(repo: Path, old: str, new: str) -> list[RawChange]:
    """Every path that differs between two commits, renames shown as delete + add."""
    result = await git("diff-tree", "-r", "-z", "--no-renames", "--no-ext-diff", old, new, cwd=repo)
    fields = result.stdout.split("\0")
    changes = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i], fields[i + 1]
        if not meta.startswith(":"):
            break
        old_mode, new_mode, old_oid, new_oid, status = meta[1:].split(" ")
        changes.append(RawChange(path, status[:1], old_mode, old_oid, new_mode, new_oid))
    return changes


async def revert_paths(repo: Path, commit: str, originals: list[RawChange]) -> str:
    """The tree of ``commit`` with each given path put back to its ``old`` side
    (removed when it was added). Works in a bare repository through a throwaway index."""
    entries = []
    for change in originals:
        if change.added:
            entries.append(f"0 {ZERO_OID}\t{change.path}")
        else:
            entries.append(f"{change.old_mode} {change.old_oid}\t{change.path}")
    with tempfile.TemporaryDirectory(prefix="baro-index-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index"), "GIT_WORK_TREE": scratch}
        await git("read-tree", commit, cwd=repo, env=env)
        payload = "".join(e + "\0" for e in entries).encode()
        await git("update-index", "-z", "--index-info", cwd=repo, env=env, input=payload)
        return (await git("write-tree", cwd=repo, env=env)).out


async def commit_tree(repo: Path, tree: str, parent: str, message: str) -> str:
    result = await git(
        "commit-tree",
        tree,
        "-p",
        parent,
        "-F",
        "-",
        cwd=repo,
        env=BARO_IDENTITY,
        input=message.encode(),
    )
    return result.out


@dataclass(frozen=True)
class MergeResult:
    tree: str
    conflicts: list[str]
    messages: list[str]


async def three_way_merge(repo: Path, base: str, ours: str, theirs: str) -> MergeResult:
    """Merge two trees against an explicit base commit, with no working tree.

    ``git merge-tree --write-tree`` picks its own merge base (``--merge-base`` needs git
    2.40), so both sides are first recorded as throwaway commits whose only parent is
    ``base``: their merge base is then exactly ``base``. The commits stay unreferenced.
    """
    ours_commit = await commit_tree(repo, ours, base, "ours")
    theirs_commit = await commit_tree(repo, theirs, base, "theirs")
    args = ("merge-tree", "--write-tree", "-z", "--name-only", ours_commit, theirs_commit)
    result = await git(*args, cwd=repo, check=False)
    if result.returncode not in (0, 1):
        raise GitError(args, result.returncode, result.stderr)
    tree, conflicts, messages = _parse_merge_tree(result.stdout)
    return MergeResult(tree, conflicts if result.returncode == 1 else [], messages)


def _parse_merge_tree(output: str) -> tuple[str, list[str], list[str]]:
    """``<tree>\\0<path>\\0...\\0\\0`` then records ``<n>\\0<path>*n<type>\\0<text>\\0``."""
    fields = output.split("\0")
    tree = fields[0]
    conflicts: list[str] = []
    i = 1
    while i < len(fields) and fields[i]:
        if fields[i] not in conflicts:
            conflicts.append(fields[i])
        i += 1
    i += 1
    messages = []
    while i < len(fields) and fields[i].isdigit():
        count = int(fields[i])
        text_at = i + count + 2
        if text_at < len(fields) and fields[i + count + 1].startswith("CONFLICT"):
            messages.append(fields[text_at].strip())
        i = text_at + 1
    return tree, conflicts, messages
