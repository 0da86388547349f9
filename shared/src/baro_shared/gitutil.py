"""Running git as a subprocess, with an environment that never prompts or pages."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from baro_shared import usertools

# Variables that point git at a particular repository (``git rev-parse --local-env-vars``):
# inherited from the user's shell (a hook, an activated worktree), they would make git act on
# the user's repository instead of the one it is started in.
REPOSITORY_VARIABLES = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)

# baro's own settings and credentials: git needs none of them
BARO_PREFIXES = ("BARO_", "NATS_")

BARO_IDENTITY = {
    "GIT_AUTHOR_NAME": "baro",
    "GIT_AUTHOR_EMAIL": "baro@localhost",
    "GIT_COMMITTER_NAME": "baro",
    "GIT_COMMITTER_EMAIL": "baro@localhost",
}


class GitError(RuntimeError):
    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        self.args_ = args
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"git {' '.join(args[:3])} failed ({returncode}): {self.stderr[:500]}")


@dataclass(frozen=True)
class GitResult:
    stdout: str
    stderr: str
    returncode: int

    @property
    def out(self) -> str:
        return self.stdout.strip()


def git_program() -> str:
    """The git baro runs, found on ``PATH`` once, when this process starts (or first runs
    git): before it has started any agent. Looked up again at every start, a ``git`` an
    agent put in a folder of ``PATH`` it can write (``~/.local/bin``, ``~/.cargo/bin``,
    pyenv's shims) would run as baro (``baro_shared.usertools``)."""
    return usertools.tool("git") or "git"


_QUIET_CONFIG = "'gc.auto=0' 'maintenance.auto=false' 'advice.detachedHead=false'"


def git_env(extra: dict[str, str] | None = None, *, own: bool = False) -> dict[str, str]:
    """The environment of baro's git processes. ``own``: in a repository baro keeps (an
    agent's clone, a source cache, an integration repository), where git reads neither
    the user's global nor the system config (``own_repository_config``); else git reads
    the user's global config files as they were when this process started
    (``usertools.user_config_env``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in REPOSITORY_VARIABLES and not k.startswith(BARO_PREFIXES)
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_ASKPASS="true",
        SSH_ASKPASS="true",
        GIT_EDITOR="true",
        LC_ALL="C",
        GIT_CONFIG_PARAMETERS=_QUIET_CONFIG,
    )
    # elsewhere git reads the user's config, as it was before any agent could write it
    env.update(own_repository_config() if own else usertools.user_config_env())
    if extra:
        env.update(extra)
    return env


def _user_config(*args: str) -> list[str]:
    listed = git_sync("config", *args, cwd="/", check=False, timeout=30)
    return [line for line in listed.stdout.splitlines() if line]


@functools.cache
def own_repository_config() -> dict[str, str]:
    """What keeps the user's global and system git config away from the repositories
    baro keeps. An agent can write the user's global config (the home directory stays
    writable in its fence: its tools keep their state there), and what it would set there
    (hooks, an fsmonitor, a filter its own ``.gitattributes`` names, a signing program)
    would run as baro, outside the fence, when baro's git next reads it. Those
    repositories need nothing from it (baro's git gives identities and signing keys
    explicitly) but the user's ignore file and the repositories the user declared safe
    to read though another user owns them (a local source), read once, when this process
    first runs git in one of them: before it has started any agent."""
    parameters = _QUIET_CONFIG
    for key, value in [
        *(
            ("core.excludesFile", v)
            for v in _user_config("--global", "--path", "core.excludesFile")
        ),
        *(("safe.directory", v) for v in _user_config("--get-all", "safe.directory")),
    ]:
        quoted = f"{key}={value}".replace("'", "'\\''")
        parameters += f" '{quoted}'"
    return {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_PARAMETERS": parameters,
    }


async def git(
    *args: str,
    cwd: Path | str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    input: bytes | BinaryIO | None = None,
    output: BinaryIO | None = None,
    timeout: float = 600.0,
    own: bool = False,
) -> GitResult:
    """Run git. ``input``: bytes written to its stdin, or an open file it reads from its
    current position (a pack inside a bundle, without reading it into memory). ``output``:
    an open file its stdout is written to from its current position (then ``stdout`` is
    empty). ``own``: in a repository baro keeps (``git_env``)."""
    fed = input if isinstance(input, bytes) else None
    proc = await asyncio.create_subprocess_exec(
        git_program(),
        *args,
        cwd=str(cwd) if cwd else None,
        stdin=asyncio.subprocess.PIPE if fed is not None else input or asyncio.subprocess.DEVNULL,
        stdout=output or asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=git_env(env, own=own),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(fed), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(args, -9, f"timed out after {timeout:.0f}s") from None
    result = GitResult(
        (out or b"").decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        proc.returncode or 0,
    )
    if check and result.returncode != 0:
        raise GitError(args, result.returncode, result.stderr or result.stdout)
    return result


async def own_git(*args: str, **options: Any) -> GitResult:
    """``git`` in a repository baro keeps: without the user's global and system config."""
    return await git(*args, own=True, **options)


async def object_sizes(repo: Path, oids: list[str]) -> dict[str, int]:
    """Object id -> size in bytes, for the ids that exist (one ``cat-file`` for all)."""
    if not oids:
        return {}
    payload = "".join(f"{oid}\n" for oid in dict.fromkeys(oids)).encode()
    listed = await git(
        "cat-file", "--batch-check=%(objectname) %(objectsize)", cwd=repo, input=payload
    )
    sizes = {}
    for line in listed.stdout.splitlines():
        oid, _, size = line.partition(" ")
        if size.isdigit():
            sizes[oid] = int(size)
    return sizes


async def read_objects(repo: Path, names: list[str]) -> list[tuple[str, bytes] | None]:
    """(type, content) of each object ``names`` name (``<commit>:<path>``, ``<rev>^{tree}``,
    an id...), None for one that does not exist: one ``cat-file --batch`` for all."""
    if not names:
        return []
    if any("\n" in name for name in names):
        raise ValueError("an object name cannot hold a newline")
    payload = "".join(f"{name}\n" for name in names).encode()
    proc = await asyncio.create_subprocess_exec(
        git_program(), "cat-file", "--batch",
        cwd=str(repo),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=git_env(),
    )  # fmt: skip
    out, err = await proc.communicate(payload)
    if proc.returncode != 0:
        raise GitError(
            ("cat-file", "--batch"), proc.returncode or 1, err.decode("utf-8", "replace")
        )
    found: list[tuple[str, bytes] | None] = []
    at = 0
    for _ in names:
        header_end = out.index(b"\n", at)
        header = out[at:header_end].decode("utf-8", "replace")
        at = header_end + 1
        fields = header.rsplit(" ", 2)  # "<id> <type> <size>", else "<name> missing"
        if header.endswith((" missing", " ambiguous")) or not fields[-1].isdigit():
            found.append(None)
            continue
        size = int(fields[2])
        found.append((fields[1], out[at : at + size]))
        at += size + 1
    return found


_OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def is_object_id(rev: str) -> bool:
    """A full object id (not a name or a prefix): what it names can never change."""
    return _OBJECT_ID.fullmatch(rev) is not None


V = TypeVar("V")


class ByCommit(Generic[V]):
    """Facts read from one commit, kept in memory by its full object id: a commit's content
    never changes, so a fact read once holds in every repository that has the commit.
    Anything else (a branch, ``HEAD``, an abbreviated id) is never kept. Bounded: the
    oldest entries go first."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._known: dict[object, V] = {}

    def get(self, commit: str, key: object = None, default: object = None) -> V | object:
        """What was kept for ``commit`` (and ``key``), else ``default``."""
        return self._known.get((commit, key), default) if is_object_id(commit) else default

    def put(self, commit: str, value: V, key: object = None) -> V:
        if is_object_id(commit):
            self._known.pop((commit, key), None)
            self._known[(commit, key)] = value
            while len(self._known) > self.size:
                del self._known[next(iter(self._known))]
        return value

    def clear(self) -> None:
        self._known.clear()


async def tree_listing(repo: Path, rev: str) -> list[tuple[str, str, str]]:
    """(path, mode, oid) of every file of ``rev``, recursively."""
    listed = await git("ls-tree", "-r", "-z", "--full-tree", rev, cwd=repo)
    out = []
    for record in listed.stdout.split("\0"):
        if record:
            meta, _, path = record.partition("\t")
            mode, _, oid = meta.split(" ")
            out.append((path, mode, oid))
    return out


def git_sync(
    *args: str, cwd: Path | str | None = None, check: bool = True, timeout: float = 60.0
) -> GitResult:
    proc = subprocess.run(
        [git_program(), *args],
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        env=git_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    result = GitResult(
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        proc.returncode,
    )
    if check and result.returncode != 0:
        raise GitError(args, result.returncode, result.stderr or result.stdout)
    return result
