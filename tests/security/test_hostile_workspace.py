"""Hostile agents against the user's repository from inside their workspace: through the
object files a local clone would share with it, and by its absolute path."""

from __future__ import annotations

from pathlib import Path

from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import bus, request_for, run_to_end, stack  # noqa: F401  (fixtures)

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
    attack = (
        # every object file of the clone: made writable and overwritten in place
        "find .git/objects -type f -exec chmod u+w {} \\; -exec sh -c 'printf garbage > \"$1\"' _ {} \\; ; "
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
    assert report.status == "failed", "the agent broke its own clone, and only that"
