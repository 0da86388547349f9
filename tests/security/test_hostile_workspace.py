"""Hostile agents against the user's repository from inside their workspace: through the
object files its clone borrows from the source cache (hard links of the user's own, where
the file system allows) or would share with it, and by its absolute path."""

from __future__ import annotations

from pathlib import Path

from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import bus, request_for, run_to_end, stack  # noqa: F401  (fixtures)
from tests.merger_e2e.conftest import show

FILES = {"app.py": "x = 1\n", "README.md": "# app\n"}


async def test_an_agent_cannot_reach_the_users_repository(
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    objects = sorted(
        str(p.relative_to(repo)) for p in (repo / ".git" / "objects").rglob("*") if p.is_file()
    )
    before = {name: (repo / name).read_bytes() for name in objects}
    overwrite = "-type f -exec chmod u+w {} \\; -exec sh -c 'printf garbage > \"$1\"' _ {} \\;"
    attack = (
        # the source objects the clone borrows (a cache whose files may be hard links of
        # the user's own objects), then every object file of the clone: made writable and
        # overwritten in place
        f"for d in $(cat .git/objects/info/alternates); do find $d {overwrite}; done; "
        f"find .git/objects {overwrite}; "
        # the user's checkout by its absolute path
        f"printf pwned > {repo}/app.py; printf pwned > {repo}/.git/HEAD; "
        f"mkdir -p {repo}/.git/hooks && printf 'touch {tmp_path}/hooked' > {repo}/.git/hooks/post-checkout; "
        "true"
    )
    script = {"default": {"steps": [{"run": attack}, {"write": "app.py", "content": "x = 2\n"}]}}
    # run_to_end also checks the user's branch, index, working tree and stash
    report = await run_to_end(bus, request_for(repo, "fix app.py", script))

    assert {name: (repo / name).read_bytes() for name in objects} == before
    run_git(repo, "fsck", "--strict", "--no-dangling")
    assert not (repo / ".git" / "hooks" / "post-checkout").exists()
    # the clone's own object files and its alternates were overwritten: the runner seals
    # the clone again (alternates naming the cache) before collecting, so the agent's
    # change is delivered and nothing else moved
    assert report.status == "delivered", report.reason
    assert report.branch is not None and show(repo, report.branch, "app.py") == "x = 2\n"


async def test_an_agent_reads_the_borrowed_history_and_cannot_change_it(
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Inside the sandbox the source cache is read-only: git works in the clone, and the
    cache's files (hard links of the user's objects, where the file system allows) stay."""
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    objects = sorted(p for p in (repo / ".git" / "objects").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in objects}
    attack = (
        "git log -1 --format=%s > seen.txt; "
        "for d in $(cat .git/objects/info/alternates); do "
        "find $d -type f -exec chmod u+w {} \\; -exec sh -c 'printf garbage > \"$1\"' _ {} \\; ; "
        "done 2> refused.txt; true"
    )
    script = {"default": {"steps": [{"run": attack}, {"write": "app.py", "content": "x = 2\n"}]}}
    report = await run_to_end(bus, request_for(repo, "fix app.py", script))

    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert show(repo, report.branch, "seen.txt") == run_git(repo, "log", "-1", "--format=%s") + "\n"
    assert "Read-only file system" in (show(repo, report.branch, "refused.txt") or "")
    assert {p: p.read_bytes() for p in objects} == before
    run_git(repo, "fsck", "--strict", "--no-dangling")
