"""The story clone's ``.git`` is written by the runner, not by ``git init``: git must take it
for its own, exactly as it takes a repository it made, through every command baro runs in
a workspace (and an agent's own git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from baro_runner import workspace
from tests.conftest import make_repo, run_git
from tests.workspace.test_setup import prepared

FILES = {"app.py": "x = 1\n", "docs/guide.md": "read me\n"}


def test_the_written_git_dir_is_what_git_init_makes_less_its_templates(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    workspace.init_clone(ours / ".git")
    subprocess.run(
        ["git", "init", "--quiet", "--template=", f"--initial-branch={workspace.STORY_BRANCH}",
         str(theirs)],
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1"},
    )  # fmt: skip

    def listing(git_dir: Path) -> dict[str, str | None]:
        return {
            str(p.relative_to(git_dir)): p.read_text() if p.is_file() else None
            for p in sorted(git_dir.rglob("*"))
        }

    assert listing(ours / ".git") == listing(theirs / ".git")
    assert run_git(ours, "rev-parse", "--is-inside-work-tree", "--git-dir") == "true\n.git"
    assert run_git(ours, "symbolic-ref", "HEAD") == f"refs/heads/{workspace.STORY_BRANCH}"
    run_git(ours, "fsck", "--strict")


async def test_a_story_clone_takes_every_command_baro_and_an_agent_run(tmp_path: Path) -> None:
    ws, base = await prepared(tmp_path, make_repo(tmp_path / "user", FILES))
    run_git(ws.repo, "fsck", "--strict", "--no-dangling")
    assert run_git(ws.repo, "status", "--porcelain", "--ignored") == ""
    assert run_git(ws.repo, "rev-parse", "HEAD") == base
    # the agent's own commit, then what the runner leaves uncommitted
    (ws.repo / "app.py").write_text("x = 2\n")
    run_git(ws.repo, "commit", "--quiet", "-am", "agent's own commit")
    (ws.repo / "new.py").write_text("y = 1\n")

    change = await workspace.commit_result(ws, base, "story")
    assert change.changed_files == ["app.py", "new.py"]
    assert run_git(ws.repo, "rev-list", "--count", f"{base}..{workspace.STORY_BRANCH}") == "2"
    bundle = tmp_path / "result.bundle"
    await workspace.write_bundle(ws, base, bundle)
    run_git(ws.repo, "bundle", "verify", str(bundle))
    assert "app.py" in await workspace.change_diff(ws, base)
    run_git(ws.repo, "fsck", "--strict", "--no-dangling")
    assert run_git(ws.repo, "reflog", "--format=%gs", workspace.STORY_BRANCH).count("\n") == 2
