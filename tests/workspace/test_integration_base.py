"""A story whose base is an integration commit starts from the merger's bundle of it: the
bundle's pack is indexed into the clone (thin against the source's objects), the base is
checked out, and a bundle that is not one, or lacks what it was built on, fails the
workspace with a message rather than a clone at the wrong commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_runner import workspace
from baro_shared import schemas as s
from tests.conftest import make_repo, run_git

FILES = {"app.py": "x = 1\n" * 50, "docs/guide.md": "read me\n"}


def integration(tmp_path: Path) -> tuple[Path, str, str, Path]:
    """The user's repository, and a merger-like repository past its base with a bundle of
    base..head (deltas against the base's blobs: a thin pack)."""
    user = make_repo(tmp_path / "user", FILES)
    base = run_git(user, "rev-parse", "HEAD")
    merger = tmp_path / "merger"
    run_git(tmp_path, "clone", "--quiet", "--bare", str(user), str(merger))
    work = tmp_path / "work"
    run_git(tmp_path, "clone", "--quiet", str(merger), str(work))
    (work / "app.py").write_text("x = 1\n" * 50 + "y = 2\n")
    (work / "new.py").write_text("z = 3\n")
    run_git(work, "add", "-A")
    run_git(work, "commit", "--quiet", "-m", "S1")
    run_git(work, "push", "--quiet", "origin", "HEAD:refs/baro/r/published")
    head = run_git(work, "rev-parse", "HEAD")
    bundle = tmp_path / "head.bundle"
    run_git(merger, "bundle", "create", "--quiet", str(bundle), "refs/baro/r/published", f"^{base}")
    return user, base, head, bundle


async def prepare(
    tmp_path: Path, user: Path, base: str, head: str, bundle: Path
) -> workspace.Workspace:
    return await workspace.prepare(
        tmp_path / "ws" / "run" / "S2-1",
        s.RepoSource(kind="path", location=str(user), commit=base),
        head,
        sources=tmp_path / "sources",
        run_base=base,
        base_bundle=bundle,
    )


async def test_a_story_starts_at_the_integration_head_from_its_bundle(tmp_path: Path) -> None:
    user, base, head, bundle = integration(tmp_path)
    ws = await prepare(tmp_path, user, base, head, bundle)
    assert run_git(ws.repo, "rev-parse", "HEAD") == head
    assert (ws.repo / "new.py").read_text() == "z = 3\n"
    assert run_git(ws.repo, "status", "--porcelain", "--ignored") == ""
    run_git(ws.repo, "fsck", "--strict", "--no-dangling")
    # the bundle's ref is not taken: the story branch alone holds the base
    assert run_git(ws.repo, "for-each-ref", "--format=%(refname)") == (
        f"refs/heads/{workspace.STORY_BRANCH}"
    )


async def test_a_file_that_is_not_a_bundle_fails_the_workspace(tmp_path: Path) -> None:
    user, base, head, bundle = integration(tmp_path)
    bundle.write_bytes(b"PK\x03\x04 not a bundle")
    with pytest.raises(workspace.WorkspaceError, match="not a readable git bundle"):
        await prepare(tmp_path, user, base, head, bundle)


async def test_a_bundle_built_on_a_commit_the_source_lacks_fails_the_workspace(
    tmp_path: Path,
) -> None:
    _, _, head, bundle = integration(tmp_path)
    other = make_repo(tmp_path / "other", {"app.py": "unrelated\n"})
    with pytest.raises(workspace.WorkspaceError, match="integration bundle"):
        await prepare(tmp_path, other, run_git(other, "rev-parse", "HEAD"), head, bundle)
