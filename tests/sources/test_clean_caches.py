"""`baro clean` accounts for the source object caches and removes only those nothing uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from baro_merger.integration import prepare_run
from baro_runner import workspace
from baro_shared import objectcache
from baro_shared import schemas as s
from tests.conftest import make_repo, run_git
from tests.sources.conftest import fsck

BARO = str(Path(sys.executable).parent / "baro")
FILES = {"app.py": "print('app')\n", "data.bin": "x" * 200_000}


def baro_clean(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BARO, "clean", *args],
        cwd=tmp_path,
        env={
            **os.environ,
            "BARO_CACHE_DIR": str(tmp_path / "cache"),
            "BARO_STATE_DIR": str(tmp_path / "state"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def source(repo: Path) -> s.RepoSource:
    return s.RepoSource(kind="path", location=str(repo), commit=run_git(repo, "rev-parse", "HEAD"))


async def kept_run(tmp_path: Path, repo: Path, run_id: str) -> None:
    """A run's integration repository and a kept (failed) workspace, both borrowing."""
    cache = tmp_path / "cache"
    prepared = await prepare_run(cache / "integration", run_id, source(repo))
    await workspace.prepare(
        cache / "workspaces" / run_id / "S1-1",
        source(repo),
        prepared.base,
        sources=cache / "sources",
    )


async def test_clean_lists_each_cache_and_removes_it_once_no_run_uses_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    await kept_run(tmp_path, repo, "run-1")

    listed = baro_clean(tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("source object caches"))
    assert "limit 20.0 GB (BARO_SOURCE_CACHE_MAX_BYTES)" in lines[heading]
    entry = lines[heading + 1]
    assert entry.startswith(f"  path {repo.resolve()}: ")
    assert "shared with the repository by hard links" in entry  # a local clone costs no copy
    assert "used by 2 run repositories or workspace(s)" in entry

    refused = baro_clean(tmp_path, "--caches")
    assert refused.returncode == 0 and "removed" not in refused.stdout
    assert len(objectcache.caches(tmp_path / "cache" / "sources")) == 1, "runs still borrow"

    cleaned = baro_clean(tmp_path, "run-1", "--repo", str(repo))
    assert cleaned.returncode == 0, cleaned.stderr
    assert "no run uses it" in baro_clean(tmp_path).stdout
    dry = baro_clean(tmp_path, "--caches", "--dry-run")
    assert dry.stdout.startswith(f"would remove the source cache of path {repo.resolve()}")
    assert len(objectcache.caches(tmp_path / "cache" / "sources")) == 1

    gone = baro_clean(tmp_path, "--caches")
    assert gone.stdout.startswith(f"removed the source cache of path {repo.resolve()}")
    assert objectcache.caches(tmp_path / "cache" / "sources") == []
    assert run_git(repo, "fsck", "--no-dangling") == "", "the user's repository is whole"


async def test_cleaning_a_run_trims_the_caches_to_the_limit_least_recently_used_first(
    tmp_path: Path,
) -> None:
    old, recent, busy = (
        make_repo(tmp_path / name, {**FILES, "name.txt": name})
        for name in ("old", "recent", "busy")
    )
    cache = tmp_path / "cache"
    for run_id, repo in (("run-old", old), ("run-recent", recent), ("run-busy", busy)):
        await prepare_run(cache / "integration", run_id, source(repo))
    by_source = {i.source: i for i in objectcache.inventory(cache / "sources")}
    objectcache.touch(by_source[f"path {recent.resolve()}"].cache)
    one_cache = max(i.own_bytes for i in by_source.values())

    assert baro_clean(tmp_path, "run-old", "--repo", str(old)).returncode == 0
    assert len(objectcache.caches(cache / "sources")) == 3, "within the default limit"
    # the limit leaves room for about two caches of their own: the older unused one goes
    limit = str(2 * one_cache + one_cache // 2)
    trimmed = baro_clean(
        tmp_path, "run-recent", "--repo", str(old), BARO_SOURCE_CACHE_MAX_BYTES=limit
    )
    assert trimmed.returncode == 0, trimmed.stderr
    assert f"removed the source cache of path {old.resolve()}" in trimmed.stdout
    left = {i.source for i in objectcache.inventory(cache / "sources")}
    assert left == {f"path {recent.resolve()}", f"path {busy.resolve()}"}
    fsck(cache / "integration" / "run-busy.git")
