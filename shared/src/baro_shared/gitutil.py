"""Running git as a subprocess, with an environment that never prompts or pages."""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

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


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
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
        GIT_CONFIG_PARAMETERS="'gc.auto=0' 'maintenance.auto=false' 'advice.detachedHead=false'",
    )
    if extra:
        env.update(extra)
    return env


async def git(
    *args: str,
    cwd: Path | str | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 600.0,
) -> GitResult:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=str(cwd) if cwd else None,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=git_env(env),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(args, -9, f"timed out after {timeout:.0f}s") from None
    result = GitResult(
        out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), proc.returncode or 0
    )
    if check and result.returncode != 0:
        raise GitError(args, result.returncode, result.stderr or result.stdout)
    return result


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
        ["git", *args],
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
