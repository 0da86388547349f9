"""Small git plumbing steps the merger composes. No working tree anywhere."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from baro_merger.identity import BARO, CommitIdentity, SigningError, signing_failure
from baro_shared.gitutil import (
    GitError,
    git_env,
    git_program,
    is_object_id,
    own_git,
    read_objects,
)

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
    result = await own_git(
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
    return (await own_git("rev-parse", "--verify", f"{commit}^{{tree}}", cwd=repo)).out


async def peel(repo: Path, revs: list[str]) -> list[str | None]:
    """The object id each of ``revs`` names (``<rev>^{commit}``, ``<rev>^{tree}``...),
    None for one that names nothing: one ``cat-file --batch-check`` for all."""
    if not revs:
        return []
    if any("\n" in rev or rev.startswith("-") for rev in revs):
        raise GitError(("cat-file", "--batch-check"), 1, f"not a revision: {revs!r}")
    listed = await own_git(
        "cat-file", "--batch-check=%(objectname)",
        cwd=repo,
        input="".join(f"{rev}\n" for rev in revs).encode(),
    )  # fmt: skip
    lines = listed.stdout.splitlines()
    return [
        line if len(line) in (40, 64) and " " not in line else None for line in lines[: len(revs)]
    ] + [None] * (len(revs) - len(lines))


class ObjectLookup:
    """One ``git cat-file --batch-check`` process for many lookups (peeled revisions,
    object sizes), started at the first and ended by ``close``: a series of steps on one
    repository then costs one git process for them all rather than one per step. Objects
    written meanwhile are found (git looks again when an object is not where it looked)."""

    FORMAT = "--batch-check=%(objectname) %(objecttype) %(objectsize)"

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def info(self, names: list[str]) -> list[tuple[str, str, int] | None]:
        """(object id, type, size) of what each of ``names`` names, None where it names
        nothing."""
        if not names:
            return []
        if any("\n" in name or name.startswith("-") for name in names):
            raise GitError(("cat-file", "--batch-check"), 1, f"not a revision: {names!r}")
        async with self._lock:  # one question at a time: the answers come in order
            proc = await self._started()
            assert proc.stdin is not None and proc.stdout is not None
            # written in the background while the answers are read: neither pipe fills up
            proc.stdin.write("".join(f"{name}\n" for name in names).encode())
            found: list[tuple[str, str, int] | None] = []
            for _ in names:
                line = await proc.stdout.readline()
                if not line:
                    raise GitError(("cat-file", "--batch-check"), 1, "git cat-file ended early")
                fields = line.decode("utf-8", "replace").split()
                known = len(fields) == 3 and len(fields[0]) in (40, 64) and fields[2].isdigit()
                found.append((fields[0], fields[1], int(fields[2])) if known else None)
            await proc.stdin.drain()
        return found

    async def peel(self, revs: list[str]) -> list[str | None]:
        """The object id each of ``revs`` names (``<rev>^{commit}``, ``<rev>^{tree}``...),
        None for one that names nothing."""
        return [found[0] if found else None for found in await self.info(revs)]

    async def sizes(self, oids: list[str]) -> dict[str, int]:
        """Object id -> size in bytes, for the ids that exist."""
        wanted = list(dict.fromkeys(oids))
        found = await self.info(wanted)
        return {oid: info[2] for oid, info in zip(wanted, found, strict=True) if info}

    async def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            self._proc = await _serving(self.repo, "cat-file", self.FORMAT)
        return self._proc

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        await _ended(proc)


class MergeCommits:
    """The throwaway commits ``three_way_merge`` merges (a tree on one parent), written by
    one ``git hash-object --stdin-paths`` process for a series of merges instead of a
    ``commit-tree`` each. They are unreferenced and only their shape counts, so they are
    by baro at time 0: the same tree on the same parent is the same commit."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._proc: asyncio.subprocess.Process | None = None
        self._scratch: Path | None = None
        self._lock = asyncio.Lock()

    async def commit(self, tree: str, parent: str, message: str) -> str:
        if not (is_object_id(tree) and is_object_id(parent)) or "\n" in message:
            raise GitError(("hash-object",), 1, f"not a commit of {tree!r} on {parent!r}")
        signature = "baro <baro@localhost> 0 +0000"
        text = f"tree {tree}\nparent {parent}\nauthor {signature}\ncommitter {signature}\n\n"
        async with self._lock:  # one object at a time through the one scratch file
            proc, scratch = await self._started()
            assert proc.stdin is not None and proc.stdout is not None
            # off the event loop: on a busy disk a file's truncation waits for the journal
            await asyncio.to_thread(scratch.write_text, f"{text}{message}\n")
            proc.stdin.write(f"{scratch}\n".encode())
            line = (await proc.stdout.readline()).decode().strip()
        if not is_object_id(line):
            raise GitError(("hash-object", "--stdin-paths"), 1, "git hash-object ended early")
        return line

    async def _started(self) -> tuple[asyncio.subprocess.Process, Path]:
        if self._scratch is None:
            folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="baro-merge-"))
            self._scratch = folder / "commit"
        if self._proc is None:
            self._proc = await _serving(
                self.repo, "hash-object", "-w", "-t", "commit", "--no-filters", "--stdin-paths"
            )
        return self._proc, self._scratch

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        scratch, self._scratch = self._scratch, None
        try:
            await _ended(proc)
        finally:
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch.parent, True)


async def _ended(proc: asyncio.subprocess.Process | None) -> None:
    """End a long-lived git process fed on its stdin: its input closed, it exits; killed
    when it does not (or when the caller is cancelled meanwhile)."""
    if proc is None or proc.returncode is not None:
        return
    try:
        assert proc.stdin is not None
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), timeout=10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def list_refs(repo: Path, prefix: str) -> dict[str, str]:
    """refname -> object id, for every ref under ``prefix`` (a ``refs/...`` path)."""
    result = await own_git("for-each-ref", "--format=%(objectname) %(refname)", prefix, cwd=repo)
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
        await own_git(*git_args, "update-ref", "--stdin", cwd=repo, input=payload)


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
    result = await own_git(
        "diff-tree", "-r", "-z", "--no-renames", "--no-ext-diff", old, new, cwd=repo
    )
    fields = result.stdout.split("\0")
    changes = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i], fields[i + 1]
        if not meta.startswith(":"):
            break
        old_mode, new_mode, old_oid, new_oid, status = meta[1:].split(" ")
        changes.append(RawChange(path, status[:1], old_mode, old_oid, new_mode, new_oid))
    return changes


async def revert_paths(repo: Path, tree: str, originals: list[RawChange]) -> str:
    """``tree`` with each given path put back to its ``old`` side (removed when it was
    added)."""
    edits: dict[str, tuple[str, str] | None] = {
        c.path: None if c.added else (c.old_mode, c.old_oid) for c in originals
    }
    return await edit_tree(repo, tree, edits)


TREE_MODE = "040000"


async def edit_tree(repo: Path, tree: str, edits: dict[str, tuple[str, str] | None]) -> str:
    """``tree`` with each path set to ``(mode, oid)`` or removed (None); empty directories
    go. Built with ``ls-tree``/``mktree``, not an index: an index refuses the paths an
    agent may have put into a tree on purpose (``.GIT/hooks/x``), and those are exactly
    the ones to take out."""
    edited = await _edit_level(repo, tree, edits)
    if edited is None:
        return (await own_git("mktree", "-z", cwd=repo, input=b"")).out
    return edited


async def _edit_level(
    repo: Path, tree: str | None, edits: dict[str, tuple[str, str] | None]
) -> str | None:
    """One directory level of ``edit_tree``; None when the directory ends up empty."""
    entries = await _tree_entries(repo, tree) if tree else {}
    below: dict[str, dict[str, tuple[str, str] | None]] = {}
    for path, value in edits.items():
        name, _, rest = path.partition("/")
        if rest:
            below.setdefault(name, {})[rest] = value
        elif value is None:
            entries.pop(name, None)
        else:
            entries[name] = value
    for name, inner in below.items():
        current = entries.get(name)
        if current is not None and current[0] != TREE_MODE:
            if all(v is None for v in inner.values()):
                continue  # removing paths below what is now a file: nothing to remove
            current = None
        subtree = await _edit_level(repo, current[1] if current else None, inner)
        if subtree is None:
            entries.pop(name, None)
        else:
            entries[name] = (TREE_MODE, subtree)
    if not entries:
        return None
    listing = "".join(
        f"{mode} {_object_type(mode)} {oid}\t{name}\0" for name, (mode, oid) in entries.items()
    )
    return (await own_git("mktree", "-z", cwd=repo, input=listing.encode())).out


async def _tree_entries(repo: Path, tree: str) -> dict[str, tuple[str, str]]:
    listed = await own_git("ls-tree", "-z", "--full-tree", tree, cwd=repo)
    entries = {}
    for record in listed.stdout.split("\0"):
        if record:
            meta, _, name = record.partition("\t")
            mode, _, oid = meta.split(" ")
            entries[name] = (mode, oid)
    return entries


def _object_type(mode: str) -> str:
    return {TREE_MODE: "tree", "160000": "commit"}.get(mode, "blob")


async def blob_texts(repo: Path, oids: list[str]) -> dict[str, str]:
    """Object id -> content (decoded, invalid bytes replaced) of small blobs such as link
    targets (one ``cat-file`` for all)."""
    wanted = list(dict.fromkeys(oids))
    found = await read_objects(repo, wanted)
    return {
        oid: entry[1].decode("utf-8", "replace")
        for oid, entry in zip(wanted, found, strict=True)
        if entry is not None
    }


async def commit_tree(
    repo: Path, tree: str, parent: str, message: str, identity: CommitIdentity = BARO
) -> str:
    try:
        result = await own_git(
            *identity.commit_tree_args(),
            tree,
            "-p",
            parent,
            "-F",
            "-",
            cwd=repo,
            env=identity.env(),
            input=message.encode(),
        )
    except GitError as exc:
        if identity.signing is None:
            raise
        reason = exc.stderr.splitlines()[0] if exc.stderr else "the signing program failed"
        raise SigningError(signing_failure(reason)) from None
    return result.out


@dataclass(frozen=True)
class MergeResult:
    tree: str
    conflicts: list[str]
    messages: list[str]


async def three_way_merge(
    repo: Path, base: str, ours: str, theirs: str, commits: MergeCommits | None = None
) -> MergeResult:
    """Merge two trees against an explicit base commit, with no working tree.

    ``git merge-tree --write-tree`` picks its own merge base (``--merge-base`` needs git
    2.40), so both sides are first recorded as throwaway commits whose only parent is
    ``base`` (through ``commits`` when given): their merge base is then exactly ``base``.
    The commits stay unreferenced.
    """
    if commits is not None:
        ours_commit = await commits.commit(ours, base, "ours")
        theirs_commit = await commits.commit(theirs, base, "theirs")
    else:
        ours_commit = await commit_tree(repo, ours, base, "ours")
        theirs_commit = await commit_tree(repo, theirs, base, "theirs")
    args = ("merge-tree", "--write-tree", "-z", "--name-only", ours_commit, theirs_commit)
    result = await own_git(*args, cwd=repo, check=False)
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


async def _serving(repo: Path, *args: str) -> asyncio.subprocess.Process:
    """A git process that answers one request per line of its stdin for a whole batch."""
    return await asyncio.create_subprocess_exec(
        git_program(), *args,
        cwd=str(repo),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=git_env(own=True),
    )  # fmt: skip
