"""Source objects once per repository, on real git: runs borrow from one cache per source,
the cache fetches only what it lacks, and nothing the user does to their repository (or
anyone does to a borrower) takes objects away from a run."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from baro_merger.integration import prepare_run
from baro_runner import workspace
from baro_shared import objectcache
from baro_shared import schemas as s
from tests.conftest import make_repo, run_git, snapshot
from tests.sources.conftest import (
    commit_file,
    fsck,
    git_dir_state,
    object_count,
    only_cache,
    try_git,
)

FILES = {"app.py": "print('app')\n", "lib/util.py": "X = 1\n", "README.md": "# app\n"}


def path_source(repo: Path, *, commit: bool = True) -> s.RepoSource:
    head = run_git(repo, "rev-parse", "HEAD") if commit else None
    return s.RepoSource(kind="path", location=str(repo), commit=head)


async def story_workspace(
    cache_dir: Path, run: str, source: s.RepoSource, base: str
) -> workspace.Workspace:
    return await workspace.prepare(
        cache_dir / "workspaces" / run / "S1-1", source, base, sources=cache_dir / "sources"
    )


async def test_runs_borrow_and_a_second_run_fetches_only_the_new_commit(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user", FILES, dirty=True)
    before, user_git = snapshot(user), git_dir_state(user)
    cache_dir = tmp_path / "cache"

    first = await prepare_run(cache_dir / "integration", "r1", path_source(user))
    cache = only_cache(cache_dir / "sources")
    assert object_count(first.repo) == 0, "the integration repository borrows every object"
    ws = await story_workspace(cache_dir, "r1", path_source(user), first.base)
    assert object_count(ws.repo) == 0 and (ws.repo / "lib/util.py").read_text() == "X = 1\n"
    cached = object_count(cache.path)
    assert snapshot(user) == before and git_dir_state(user) == user_git, "the user's repo is read"

    # the agent's commit lands in the workspace's own objects, never in the cache
    (ws.repo / "app.py").write_text("print('fixed')\n")
    change = await workspace.commit_result(ws, first.base, "fix")
    assert change.changed_files == ["app.py"]
    assert object_count(ws.repo) == 3 and object_count(cache.path) == cached

    # the user commits once more: the next run brings in that commit, its tree and blob
    run_git(user, "stash", "--quiet")
    second_head = commit_file(user, "README.md", "# app, second\n")
    second = await prepare_run(cache_dir / "integration", "r2", path_source(user))
    assert second.base == second_head and only_cache(cache_dir / "sources") == cache
    assert object_count(cache.path) == cached + 3
    assert not second.cache_created and first.cache_created

    # the same commit again: the cache has it, nothing is fetched at all
    fetched = run_git(cache.path, "for-each-ref", "refs/baro/fetched/")
    third = await prepare_run(cache_dir / "integration", "r3", path_source(user))
    assert third.base == second_head and object_count(cache.path) == cached + 3
    assert run_git(cache.path, "for-each-ref", "refs/baro/fetched/") == fetched
    for repo in (first.repo, second.repo, third.repo, ws.repo):
        fsck(repo)


async def test_a_url_source_is_read_only_for_what_the_cache_lacks(tmp_path: Path) -> None:
    work = make_repo(tmp_path / "work", FILES)
    server = tmp_path / "server" / "app.git"
    run_git(tmp_path, "clone", "--quiet", "--bare", str(work), str(server))
    head = run_git(work, "rev-parse", "HEAD")
    url = s.RepoSource(kind="url", location=f"file://{server}", commit=head)
    cache_dir = tmp_path / "cache"
    first = await prepare_run(cache_dir / "integration", "r1", url)
    assert first.base == head

    server.rename(server.with_name("moved.git"))  # the server is gone
    second = await prepare_run(cache_dir / "integration", "r2", url)
    ws = await story_workspace(cache_dir, "r2", url, head)
    assert second.base == head and (ws.repo / "app.py").exists()
    gone = s.RepoSource(kind="url", location=url.location)  # HEAD must be asked for
    with pytest.raises(Exception, match="cannot read"):
        await prepare_run(cache_dir / "integration", "r3", gone)
    assert not (cache_dir / "integration" / "r3.git").exists(), "a failed prepare leaves nothing"


async def test_the_users_gc_between_runs_breaks_no_run(tmp_path: Path) -> None:
    """The user rewinds their branch and prunes everything unreachable: the commit a live
    run started from is then gone from their repository, not from the run's cache."""
    user = make_repo(tmp_path / "user", FILES)
    for i in range(3):
        commit_file(user, f"f{i}.txt", f"{i}\n")
    cache_dir = tmp_path / "cache"
    first = await prepare_run(cache_dir / "integration", "r1", path_source(user))
    run_git(user, "reset", "--quiet", "--hard", "HEAD~2")
    run_git(user, "reflog", "expire", "--expire=now", "--all")
    run_git(user, "gc", "--quiet", "--prune=now")
    with pytest.raises(subprocess.CalledProcessError):
        run_git(user, "cat-file", "-e", first.base)  # gone from the user's repository

    fsck(first.repo)
    ws = await story_workspace(cache_dir, "r1", path_source(user), first.base)
    assert (ws.repo / "f2.txt").read_text() == "2\n"
    after = commit_file(user, "new.txt", "after the gc\n")
    second = await prepare_run(cache_dir / "integration", "r2", path_source(user))
    assert second.base == after
    fsck(second.repo)
    fsck(ws.repo)


async def test_gc_inside_the_cache_cannot_drop_what_runs_borrow(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    prepared = await prepare_run(cache_dir / "integration", "r1", path_source(user))
    cache = only_cache(cache_dir / "sources")
    # someone deletes every ref of the cache, then prunes: nothing is reachable there now
    for ref in run_git(cache.path, "for-each-ref", "--format=%(refname)").split():
        run_git(cache.path, "update-ref", "-d", ref)
    for command in (["gc", "--prune=now"], ["prune", "--expire=now"], ["repack", "-a", "-d"]):
        try_git(cache.path, *command)
    fsck(prepared.repo)
    ws = await story_workspace(cache_dir, "r1", path_source(user, commit=False), prepared.base)
    assert (ws.repo / "app.py").exists()


async def test_a_deleted_workspace_leaves_the_cache_whole(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    base = run_git(user, "rev-parse", "HEAD")
    ws = await story_workspace(cache_dir, "r1", path_source(user), base)
    cache = only_cache(cache_dir / "sources")
    assert objectcache.borrowers(cache) == [ws.git_dir]
    shutil.rmtree(ws.root)  # not through baro: the registration is left behind
    run_git(cache.path, "fsck", "--no-dangling")
    assert objectcache.borrowers(cache, drop_stale=True) == []
    assert not any(cache.borrowers_dir.iterdir())
    again = await story_workspace(cache_dir, "r2", path_source(user), base)
    fsck(again.repo)
    await again.remove()
    assert objectcache.borrowers(cache) == []


_CONCURRENT = """
import asyncio, json, sys
from pathlib import Path
from baro_merger.integration import prepare_run
from baro_runner import workspace
from baro_shared import schemas as s

async def main(cache_dir, run, user):
    source = s.RepoSource(kind="path", location=user)
    prepared = await prepare_run(Path(cache_dir) / "integration", run, source)
    ws = await workspace.prepare(
        Path(cache_dir) / "workspaces" / run / "S1-1", source, prepared.base,
        sources=Path(cache_dir) / "sources",
    )
    print(json.dumps({"base": prepared.base, "repo": str(prepared.repo), "ws": str(ws.repo)}))

asyncio.run(main(*sys.argv[1:]))
"""


async def test_concurrent_runs_on_one_source_make_one_cache(tmp_path: Path) -> None:
    """Four processes start runs on a source nobody has cached yet, at the same moment."""
    user = make_repo(tmp_path / "user", FILES)
    for i in range(5):
        commit_file(user, f"history/{i}.txt", f"{i}\n" * 100)
    head = run_git(user, "rev-parse", "HEAD")
    cache_dir = tmp_path / "cache"

    async def one(run: str) -> dict[str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CONCURRENT, str(cache_dir), run, str(user),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return json.loads(out)

    results = await asyncio.gather(*(one(f"r{i}") for i in range(4)))
    cache = only_cache(cache_dir / "sources")
    assert not list((cache_dir / "sources").glob(".*")), "no half-built cache is left"
    assert {r["base"] for r in results} == {head}
    assert len(objectcache.borrowers(cache)) == 8
    for r in results:
        fsck(Path(r["repo"]))
        fsck(Path(r["ws"]))
        assert object_count(Path(r["repo"])) == 0 and object_count(Path(r["ws"])) == 0


async def test_trim_removes_least_recently_used_caches_nothing_borrows(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    sources = cache_dir / "sources"
    repos = [make_repo(tmp_path / f"user{i}", {**FILES, "n.txt": f"{i}\n"}) for i in range(3)]
    prepared = [
        await prepare_run(cache_dir / "integration", f"r{i}", path_source(repo))
        for i, repo in enumerate(repos)
    ]
    by_source = {info.source: info.cache for info in objectcache.inventory(sources)}
    assert len(by_source) == 3 and all(i.bytes > 0 for i in objectcache.inventory(sources))
    # r0 and r1 are cleaned; r1's source was used last
    for i in (0, 1):
        objectcache.release(prepared[i].repo)
        shutil.rmtree(prepared[i].repo)
    objectcache.touch(by_source[f"path {repos[1].resolve()}"])

    removed = objectcache.trim(sources, max_bytes=0)
    assert [info.source for info in removed] == [
        f"path {repos[0].resolve()}",
        f"path {repos[1].resolve()}",
    ]
    left = objectcache.inventory(sources)
    assert [info.source for info in left] == [f"path {repos[2].resolve()}"], "r2 still borrows"
    fsck(prepared[2].repo)
    # a trimmed source is simply cold again
    again = await prepare_run(cache_dir / "integration", "r4", path_source(repos[0]))
    assert again.cache_created
    fsck(again.repo)


async def test_a_cache_fetched_into_run_after_run_keeps_a_bounded_number_of_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every run fetches the user's new commit: the loose objects and small packs that
    leaves are packed into one, and only the newest fetched bases keep a ref, while every
    run's base stays readable in every repository that borrows it."""
    monkeypatch.setattr(objectcache, "MAX_LOOSE", 4)
    monkeypatch.setattr(objectcache, "MAX_SMALL_PACKS", 1)
    monkeypatch.setattr(objectcache, "KEPT_FETCHED", 2)
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    runs = []
    for i in range(6):
        commit_file(user, f"notes/{i}.md", f"note {i}\n")
        runs.append(await prepare_run(cache_dir / "integration", f"r{i}", path_source(user)))
        cache = only_cache(cache_dir / "sources")
        loose = [f for d in cache.objects.glob("[0-9a-f][0-9a-f]") for f in d.iterdir()]
        assert len(loose) <= 4 and len(list((cache.objects / "pack").glob("*.pack"))) <= 2
        assert len(run_git(cache.path, "for-each-ref", "refs/baro/fetched/").splitlines()) <= 2
    assert object_count(cache.path) == object_count(user), "every object, each stored once"
    for run in runs:
        fsck(run.repo)
        assert run_git(run.repo, "cat-file", "-t", run.base) == "commit"


async def test_stories_of_one_process_take_the_cache_lock_in_turn_and_a_kept_commit_needs_no_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    first = await prepare_run(cache_dir / "integration", "r1", path_source(user))
    cache = only_cache(cache_dir / "sources")

    order: list[int] = []
    inside = 0

    async def hold(i: int) -> None:
        nonlocal inside
        async with objectcache.locked(cache):
            inside += 1
            assert inside == 1, "one holder at a time"
            order.append(i)
            await asyncio.sleep(0.01)
            inside -= 1

    async with objectcache.locked(cache):
        waiters = [asyncio.create_task(hold(i)) for i in range(4)]
        await asyncio.sleep(0.05)
        waiters[1].cancel()  # a cancelled waiter blocks nobody
        assert order == []
    await asyncio.gather(*waiters, return_exceptions=True)
    assert order == [0, 2, 3]

    ran: list[tuple[str, ...]] = []
    for name in ("git", "own_git"):
        real_git = getattr(objectcache, name)

        async def counted(*args: str, real_git: Any = real_git, **kwargs: object) -> object:
            ran.append(args)
            return await real_git(*args, **kwargs)

        monkeypatch.setattr(objectcache, name, counted)
    got = await objectcache.obtain(
        cache, "user", lambda: pytest.fail("the source is not read"), first.base, commit=first.base
    )
    assert got.fetched.commit == first.base and not got.created and not got.fetched_objects
    assert ran == [], "the commit's kept ref says the cache has it"
