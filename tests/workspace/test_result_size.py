"""A story's result never carries a file above the size limit: the runner leaves it out
before bundling, whether the agent left it uncommitted or committed it, on real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

from baro_runner import workspace
from tests.conftest import make_repo, run_git
from tests.workspace.test_setup import prepared

LIMIT = 1000
BIG = "x" * (LIMIT + 1)
NEW_BIG = "z" * (LIMIT + 1)


def blob_id(content: str) -> str:
    return subprocess.run(
        ["git", "hash-object", "--stdin"], input=content, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip


def has_object(repo: Path, oid: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", oid], cwd=repo).returncode == 0


def files_of(repo: Path, rev: str) -> list[str]:
    return run_git(repo, "ls-tree", "-r", "--name-only", rev).split()


def bundle_objects(ws: workspace.Workspace, base: str) -> set[str]:
    listed = run_git(ws.repo, "rev-list", "--objects", workspace.STORY_BRANCH, f"^{base}")
    return {line.split()[0] for line in listed.splitlines()}


def bundle_heads(tmp_path: Path, bundle: Path) -> list[str]:
    listed = run_git(tmp_path, "bundle", "list-heads", str(bundle))
    return [line.split()[0] for line in listed.splitlines()]


def bundled_objects(tmp_path: Path, user_repo: Path, bundle: Path) -> set[str]:
    """Every object the bundle carries, read in a clone of the user's repository."""
    reader = tmp_path / "reader"
    run_git(tmp_path, "clone", "-q", "--bare", str(user_repo), str(reader))
    before = set(run_git(reader, "rev-list", "--all", "--objects").split())
    run_git(reader, "fetch", "-q", str(bundle), "+refs/*:refs/bundled/*")
    return set(run_git(reader, "rev-list", "--all", "--objects").split()) - before


async def test_an_uncommitted_large_file_is_left_out_unhashed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n", "data/old.bin": BIG + "y"})
    ws, base = await prepared(tmp_path, repo)
    (ws.repo / "a.txt").write_text("a2\n")
    (ws.repo / "big file.bin").write_text(NEW_BIG)  # new and too large
    (ws.repo / "data" / "old.bin").write_text(BIG)  # too large, but it was larger at the base
    (ws.repo / "just.bin").write_text(BIG[:LIMIT])  # at the limit

    change = await workspace.commit_result(ws, base, "story", max_file_bytes=LIMIT)

    assert [(r.path, r.rule) for r in change.left_out] == [("big file.bin", "too_large")]
    assert change.left_out[0].reason.startswith("1001 bytes, above the 1000 bytes limit")
    assert sorted(change.changed_files) == ["a.txt", "data/old.bin", "just.bin"]
    assert "big file.bin" not in files_of(ws.repo, change.head)
    assert not has_object(ws.repo, blob_id(NEW_BIG)), "never even hashed into the workspace"
    assert (ws.repo / "big file.bin").exists(), "still in the workspace, for inspection"


async def test_a_large_file_in_the_agents_own_commits_leaves_the_history(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    ws, base = await prepared(tmp_path, repo)
    commit = ["-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm"]
    (ws.repo / "big.bin").write_text(BIG)
    run_git(ws.repo, "add", "-A")
    run_git(ws.repo, *commit, "add data")
    (ws.repo / "a.txt").write_text("a2\n")
    run_git(ws.repo, "rm", "-q", "big.bin")
    run_git(ws.repo, "add", "-A")
    run_git(ws.repo, *commit, "drop it again")
    (ws.repo / "b.txt").write_text("b\n")  # and something left uncommitted
    bundle = tmp_path / "result.bundle"

    change = await workspace.commit_result(ws, base, "story", max_file_bytes=LIMIT, bundle=bundle)

    assert [r.path for r in change.left_out] == ["big.bin"]
    assert sorted(change.changed_files) == ["a.txt", "b.txt"]
    assert run_git(ws.repo, "rev-parse", f"{change.head}^") == base, "one commit on the base"
    assert blob_id(BIG) not in bundle_objects(ws, base)
    # the bundle written while the blobs were checked held the agent's history: made again
    assert bundle_heads(tmp_path, bundle) == [change.head]
    assert blob_id(BIG) not in bundled_objects(tmp_path, repo, bundle)
    assert "baro left out files above the size limit: big.bin" in run_git(
        ws.repo, "log", "-1", "--format=%B", change.head
    )


async def test_nothing_large_leaves_the_agents_commits_as_they_are(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    ws, base = await prepared(tmp_path, repo)
    (ws.repo / "a.txt").write_text("a2\n")
    run_git(ws.repo, "add", "-A")
    run_git(ws.repo, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", "mine")
    agent_head = run_git(ws.repo, "rev-parse", "HEAD")
    bundle = tmp_path / "result.bundle"

    change = await workspace.commit_result(ws, base, "story", max_file_bytes=LIMIT, bundle=bundle)

    assert change.left_out == [] and change.head == agent_head
    assert bundle_heads(tmp_path, bundle) == [agent_head]
