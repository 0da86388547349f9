"""A finished story's clone kept as a spare for the next story of the same source: the next
workspace writes only the files that differ from its base, and nothing the earlier agent
left in the spare survives into it. The earlier agent is an adversary here: it edits files
so that size and mtime still match, links files to places outside, makes a directory of
the tree a symlink, plants nested repositories, fifos, unreadable files and directories."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from baro_runner import workspace
from baro_shared import objectcache
from baro_shared import schemas as s
from tests.conftest import make_repo, run_git

FILES = {
    "app.py": "print('app')\n",
    "lib/util.py": "X = 1\n",
    "lib/deep/more.py": "Y = 2\n",
    "docs/guide.md": "# guide\n",
    "run.sh": "#!/bin/sh\necho run\n",
    ".gitignore": "build/\n*.log\n",
}


def _source(repo: Path) -> s.RepoSource:
    return s.RepoSource(kind="path", location=str(repo), commit=run_git(repo, "rev-parse", "HEAD"))


async def _workspace(cache_dir: Path, run: str, source: s.RepoSource) -> workspace.Workspace:
    return await workspace.prepare(
        cache_dir / "workspaces" / run / "S1-1",
        source,
        source.commit or "",
        sources=cache_dir / "sources",
        reuse=True,
    )


def _tree_of(repo: Path) -> dict[str, tuple[str, bool]]:
    """Every path under ``repo`` but ``.git``: its content (or link target) and whether it
    is executable; directories, symlinks and other kinds are told apart."""
    found: dict[str, tuple[str, bool]] = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        if ".git" in dirnames and Path(dirpath) == repo:
            dirnames.remove(".git")
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(repo))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("symlink -> " + os.readlink(path), False)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", False)
            elif stat.S_ISREG(st.st_mode):
                found[rel] = (path.read_text(), bool(st.st_mode & stat.S_IXUSR))
            else:
                found[rel] = ("special", False)
    return found


def _expected(user: Path) -> dict[str, tuple[str, bool]]:
    fresh = user.parent / "fresh-clone"
    subprocess.run(["git", "clone", "--quiet", str(user), str(fresh)], check=True)
    return _tree_of(fresh)


def _spare_git(spare: Path) -> list[str]:
    return sorted(str(p.relative_to(spare / ".git")) for p in (spare / ".git").rglob("*"))


def _tamper(repo: Path, outside: Path) -> None:
    """What a hostile agent leaves behind in its clone."""
    app = repo / "app.py"
    before = os.stat(app)
    app.write_text("print('APP')\n")  # same size, and the old mtime put back
    os.utime(app, ns=(before.st_atime_ns, before.st_mtime_ns))
    (repo / "docs" / "guide.md").unlink()
    (repo / "untracked.txt").write_text("left over\n")
    (repo / "build").mkdir()
    (repo / "build" / "out.bin").write_text("ignored output\n")
    (repo / "debug.log").write_text("ignored log\n")
    nested = repo / "vendor" / "thing"
    nested.mkdir(parents=True)
    run_git(nested, "init", "--quiet")
    (nested / "x.py").write_text("nested\n")
    # lib/ becomes a symlink to an outside copy with the very same files
    outside_lib = outside / "lib"
    subprocess.run(["cp", "-r", str(repo / "lib"), str(outside_lib)], check=True)
    subprocess.run(["rm", "-rf", str(repo / "lib")], check=True)
    (repo / "lib").symlink_to(outside_lib)
    # run.sh hard-linked to an outside file with the same bytes
    outside_run = outside / "run.sh"
    outside_run.write_text(FILES["run.sh"])
    os.chmod(outside_run, 0o755)
    (repo / "run.sh").unlink()
    os.link(outside_run, repo / "run.sh")
    os.mkfifo(repo / "pipe")
    (repo / "secret.txt").write_text("unreadable\n")
    os.chmod(repo / "secret.txt", 0)
    locked = repo / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_text("in a read-only directory\n")
    os.chmod(locked, 0o500)
    (repo / ".git" / "hooks").mkdir(exist_ok=True)
    (repo / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\ntouch /tmp/pwned\n")
    # its index says the changed app.py is unchanged and the deleted guide is not there
    run_git(repo, "update-index", "--assume-unchanged", "app.py")
    run_git(repo, "update-index", "--skip-worktree", "docs/guide.md")
    run_git(repo, "config", "core.fsmonitor", "touch /tmp/pwned-fsmonitor")


async def test_a_spare_becomes_exactly_the_base_whatever_the_agent_left(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user", FILES)
    os.chmod(user / "run.sh", 0o755)
    run_git(user, "add", "run.sh")
    run_git(user, "commit", "--quiet", "-m", "executable")
    expected = _expected(user)
    outside = tmp_path / "outside"
    outside.mkdir()
    cache_dir = tmp_path / "cache"

    first = await _workspace(cache_dir, "r1", _source(user))
    assert _tree_of(first.repo) == expected
    kept_inode = os.stat(first.repo / "lib" / "deep" / "more.py").st_ino  # goes with lib/
    untouched_inode = os.stat(first.repo / ".gitignore").st_ino
    _tamper(first.repo, outside)
    outside_before = _tree_of(outside)
    await first.retire(spares=2)
    assert not first.root.exists()
    pool = objectcache.cache_of(cache_dir / "sources", _source(user)).meta / workspace.SPARES_DIR
    spare = pool / "slot-0"
    kept = {str(p.relative_to(spare)) for p in spare.rglob("*") if not p.is_dir()}
    assert kept - {".git/index"} <= set(FILES), "a spare holds no more than its story's tree"
    assert _spare_git(spare) == ["index"], "of a .git, a spare keeps only the runner's index"

    second = await _workspace(cache_dir, "r2", _source(user))
    assert os.stat(second.repo / ".gitignore").st_ino == untouched_inode, "the spare was reused"
    assert os.stat(second.repo / "lib" / "deep" / "more.py").st_ino != kept_inode
    assert _tree_of(second.repo) == expected
    assert run_git(second.repo, "status", "--porcelain", "--ignored") == ""
    assert run_git(second.repo, "symbolic-ref", "--short", "HEAD") == workspace.STORY_BRANCH
    assert run_git(second.repo, "rev-parse", "HEAD") == _source(user).commit
    assert not (second.git_dir / "hooks" / "post-checkout").exists()
    assert "fsmonitor" not in run_git(second.repo, "config", "--local", "--list")
    # writing through the reused clone reaches nothing outside it
    (second.repo / "run.sh").write_text("changed by the next story\n")
    (second.repo / "lib" / "util.py").write_text("X = 2\n")
    assert _tree_of(outside) == outside_before
    assert not Path("/tmp/pwned").exists() and not Path("/tmp/pwned-fsmonitor").exists()


async def test_at_most_the_given_number_of_spares_per_source(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    made = [await _workspace(cache_dir, f"r{i}", _source(user)) for i in range(3)]
    for ws in made:
        await ws.retire(spares=2)
    cache = objectcache.cache_of(cache_dir / "sources", _source(user))
    pool = cache.meta / workspace.SPARES_DIR
    assert sorted(p.name for p in pool.iterdir()) == ["slot-0", "slot-1"]
    assert all(_spare_git(p) == ["index"] for p in pool.iterdir()), "no spare keeps a .git"
    # the cache's size (what `baro clean` shows and trims by) counts the spares
    assert objectcache.inspect(cache).bytes >= objectcache.disk_usage(pool)[0] > 0


async def test_a_spare_that_is_not_a_plain_directory_is_never_used(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    ws = await _workspace(cache_dir, "r1", _source(user))
    await ws.retire(spares=2)
    cache = objectcache.cache_of(cache_dir / "sources", _source(user))
    pool = cache.meta / workspace.SPARES_DIR
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("not baro's\n")
    for spare in pool.iterdir():
        shutil.rmtree(spare)
        spare.symlink_to(elsewhere)

    fresh = await _workspace(cache_dir, "r2", _source(user))
    assert _tree_of(fresh.repo) == _expected(user)
    assert (elsewhere / "precious.txt").read_text() == "not baro's\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"]


async def test_without_reuse_a_retired_clone_is_only_deleted(tmp_path: Path) -> None:
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    ws = await _workspace(cache_dir, "r1", _source(user))
    await ws.retire(spares=0)
    cache = objectcache.cache_of(cache_dir / "sources", _source(user))
    assert not (cache.meta / workspace.SPARES_DIR).exists()
    assert not ws.root.exists()


async def test_a_spare_changed_after_it_was_kept_is_compared_by_content(tmp_path: Path) -> None:
    """The spare's index is trusted for a file only while the file's stat data is what the
    runner recorded when it kept the spare; a file rewritten since (its size and mtime put
    back) and an index git cannot read both fall back to comparing content. What the
    index does not track is removed either way."""
    user = make_repo(tmp_path / "user", FILES)
    expected = _expected(user)
    cache_dir = tmp_path / "cache"
    pool = objectcache.cache_of(cache_dir / "sources", _source(user)).meta / workspace.SPARES_DIR
    await (await _workspace(cache_dir, "r1", _source(user))).retire(spares=1)
    app = pool / "slot-0" / "app.py"
    before = os.stat(app)
    app.write_text("print('APP')\n")
    os.utime(app, ns=(before.st_atime_ns, before.st_mtime_ns))
    # and files its index does not track, one of them ignored, in a new directory
    (pool / "slot-0" / "late.txt").write_text("written after the spare was kept\n")
    (pool / "slot-0" / "build").mkdir()
    (pool / "slot-0" / "build" / "late.bin").write_text("ignored\n")

    second = await _workspace(cache_dir, "r2", _source(user))
    assert _tree_of(second.repo) == expected
    assert run_git(second.repo, "status", "--porcelain", "--ignored") == ""
    await second.retire(spares=1)
    (pool / "slot-0" / ".git" / "index").write_bytes(b"DIRC not an index")
    (pool / "slot-0" / "lib" / "util.py").write_text("X = 9\n")

    third = await _workspace(cache_dir, "r3", _source(user))
    assert _tree_of(third.repo) == expected
    assert run_git(third.repo, "status", "--porcelain", "--ignored") == ""
    assert run_git(third.repo, "rev-parse", "HEAD") == _source(user).commit


async def test_a_spare_kept_before_the_machine_started_is_compared_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of a spare is synced to the disk: after a crash a file may keep its recorded
    size and times but not its bytes, so an index from before the boot is not trusted."""
    user = make_repo(tmp_path / "user", FILES)
    cache_dir = tmp_path / "cache"
    pool = objectcache.cache_of(cache_dir / "sources", _source(user)).meta / workspace.SPARES_DIR
    await (await _workspace(cache_dir, "r1", _source(user))).retire(spares=2)
    await (await _workspace(cache_dir, "r2", _source(user))).retire(spares=2)
    os.utime(pool / "slot-0" / ".git" / "index", (0, 0))  # written before the boot
    ran: list[str] = []
    real_git = workspace.own_git

    async def recording_git(*args: str, **kwargs: Any) -> Any:
        ran.append(args[0])
        return await real_git(*args, **kwargs)

    monkeypatch.setattr(workspace, "own_git", recording_git)
    before_boot = await _workspace(cache_dir, "r3", _source(user))
    assert "reset" in ran, "every file was compared by content"
    ran.clear()
    since_boot = await _workspace(cache_dir, "r4", _source(user))
    assert "reset" not in ran, "the index made at retirement was used"
    expected = _expected(user)
    for ws in (before_boot, since_boot):
        assert _tree_of(ws.repo) == expected
        assert run_git(ws.repo, "status", "--porcelain", "--ignored") == ""
