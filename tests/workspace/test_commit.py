"""Collecting what an agent left in its workspace, on real git clones: paths git refuses to
record (``.GIT/``-like, any case) stay out, and never cost the story the rest of its change."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_runner import workspace
from baro_shared.gitutil import GitError
from tests.conftest import make_repo, run_git
from tests.workspace.test_setup import prepared

FILES = {"app.py": "x = 1\n", "docs/guide.md": "read me\n"}


async def test_git_like_paths_stay_out_and_the_rest_is_committed(tmp_path: Path) -> None:
    ws, head = await prepared(tmp_path, make_repo(tmp_path / "user", FILES))
    hostile = [".GIT/hooks/post-checkout", ".Git/config", "sub/.gIt/hooks/pre-commit", "git~1"]
    for name in hostile:
        (ws.repo / name).parent.mkdir(parents=True, exist_ok=True)
        (ws.repo / name).write_text("#!/bin/sh\ntouch /tmp/pwned\n")
    (ws.repo / "app.py").write_text("x = 2\n")
    (ws.repo / "new.py").write_text("y = 1\n")
    (ws.repo / "docs" / "guide.md").unlink()

    change = await workspace.commit_result(ws, head, "fix app")

    assert change.changed_files == ["app.py", "docs/guide.md", "new.py"]
    assert change.unrecorded == sorted(hostile)
    committed = run_git(ws.repo, "ls-tree", "-r", "--name-only", change.head).split()
    assert committed == ["app.py", "new.py"]
    refusals = workspace.unrecorded_refusals(change.unrecorded)
    assert [(r.path, r.rule) for r in refusals] == [
        (".GIT/hooks/post-checkout", "git_path"),
        (".Git/config", "git_path"),
        ("git~1", "git_path"),
        ("sub/.gIt/hooks/pre-commit", "git_path"),
    ]
    assert "git refuses to record it" in refusals[0].reason


async def test_only_git_like_paths_is_no_change(tmp_path: Path) -> None:
    ws, head = await prepared(tmp_path, make_repo(tmp_path / "user", FILES))
    (ws.repo / ".GIT").mkdir()
    (ws.repo / ".GIT" / "config").write_text("[core]\n\thooksPath = /tmp\n")
    change = await workspace.commit_result(ws, head, "nothing")
    assert change.head == head and change.changed_files == []
    assert change.unrecorded == [".GIT/config"]


def test_thousands_of_refused_files_are_reported_in_a_few_lines() -> None:
    many = [f".GIT/objects/{i:04d}" for i in range(3000)]
    many += [f"d{i:02d}/.Git/x" for i in range(40)]
    refusals = workspace.unrecorded_refusals(many)
    assert len(refusals) == workspace.MAX_UNRECORDED_SHOWN
    assert refusals[0].path == ".GIT/" and "its 3000 files" in refusals[0].reason
    assert refusals[-1].reason.endswith("21 more .git-like paths like it not listed")


async def test_any_other_failure_to_stage_still_fails(tmp_path: Path) -> None:
    ws, head = await prepared(tmp_path, make_repo(tmp_path / "user", FILES))
    (ws.repo / ".GIT").mkdir()
    (ws.repo / ".GIT" / "config").write_text("x\n")
    (ws.repo / "app.py").write_text("x = 2\n")
    (ws.repo / ".git" / "index.lock").write_text("")  # as a git killed mid-write leaves it
    with pytest.raises(GitError, match=r"index\.lock"):
        await workspace.commit_result(ws, head, "broken")


@pytest.mark.parametrize("left", ["switched", "detached", "packed"])
async def test_the_head_is_found_wherever_the_agent_left_it(tmp_path: Path, left: str) -> None:
    """HEAD and the story branch are read without git only where a commit on the branch
    leaves them; an agent that switched, detached HEAD or packed its refs gets git's own
    reading, and its work is collected onto the story branch all the same."""
    ws, head = await prepared(tmp_path, make_repo(tmp_path / "user", FILES))
    (ws.repo / "app.py").write_text("x = 2\n")
    if left == "switched":
        run_git(ws.repo, "checkout", "--quiet", "-b", "elsewhere")
    elif left == "detached":
        run_git(ws.repo, "checkout", "--quiet", "--detach")
    run_git(ws.repo, "commit", "--quiet", "-am", "the agent's commit")
    if left == "packed":
        run_git(ws.repo, "pack-refs", "--all")
        assert not (ws.git_dir / "refs" / "heads" / workspace.STORY_BRANCH).exists()
    agents = run_git(ws.repo, "rev-parse", "HEAD")
    bundle = tmp_path / "result.bundle"

    change = await workspace.commit_result(ws, head, "story", bundle=bundle)

    assert change.head == agents
    assert change.changed_files == ["app.py"]
    assert run_git(ws.repo, "rev-parse", workspace.STORY_BRANCH) == agents
    # the result's bundle holds the story branch where the agent's work was collected
    listed = run_git(tmp_path, "bundle", "list-heads", str(bundle)).split()
    assert listed == [agents, f"refs/heads/{workspace.STORY_BRANCH}"]
