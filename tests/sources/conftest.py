"""Real repositories for the per-source object caches: a user's repository, runs'
integration repositories and story workspaces borrowing from the caches."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from baro_shared import objectcache
from tests.conftest import run_git


def object_count(repo: Path) -> int:
    """Objects stored in ``repo`` itself (loose and packed), not those it borrows."""
    counts = dict(line.split(": ", 1) for line in run_git(repo, "count-objects", "-v").splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


def commit_file(repo: Path, name: str, content: str, message: str = "change") -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(content)
    run_git(repo, "add", "--", name)
    run_git(repo, "commit", "--quiet", "-m", message, "--", name)
    return run_git(repo, "rev-parse", "HEAD")


def git_dir_state(repo: Path) -> dict[str, str]:
    """Every file of the repository's .git (name -> content digest): what a read-only
    user of it leaves exactly as it was."""
    state = {}
    for path in sorted((repo / ".git").rglob("*")):
        if path.is_file():
            state[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def only_cache(root: Path) -> objectcache.SourceCache:
    found = objectcache.caches(root)
    assert len(found) == 1, found
    return found[0]


def try_git(repo: Path, *args: str) -> int:
    """Run git in ``repo`` as a user would; its exit code (a refusal is not an error here)."""
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True).returncode


def fsck(repo: Path) -> None:
    """Raises when ``repo`` misses an object it needs (through its alternates too)."""
    run_git(repo, "fsck", "--connectivity-only", "--no-dangling")
