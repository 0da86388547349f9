"""A bundle written as its header and one ``git pack-objects`` is a git bundle like
``git bundle create``'s: git verifies it, lists its ref, fetches from it into a repository
that has its base (also when the story's history merged an older commit than its base), and
it carries the same objects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from baro_shared import bundles
from tests.conftest import make_repo, run_git


def _story(tmp_path: Path) -> tuple[Path, str, str]:
    repo = make_repo(tmp_path / "repo", {"app.py": "x = 1\n" * 100, "README.md": "hi\n"})
    old = run_git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("hi again\n")
    run_git(repo, "commit", "--quiet", "-am", "the base")
    base = run_git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text("x = 1\n" * 100 + "y = 2\n")
    run_git(repo, "commit", "--quiet", "-am", "the story")
    # the agent merges an older commit than the base: a boundary git lists, and base reaches
    run_git(repo, "merge", "--quiet", "--no-ff", "-s", "ours", "-m", "merge old", old)
    (repo / "new.py").write_text("z = 3\n")
    run_git(repo, "add", "new.py")
    run_git(repo, "commit", "--quiet", "-m", "more")
    return repo, base, run_git(repo, "rev-parse", "HEAD")


async def test_a_written_bundle_is_one_git_reads_as_its_own(tmp_path: Path) -> None:
    repo, base, head = _story(tmp_path)
    ours, theirs = tmp_path / "ours.bundle", tmp_path / "theirs.bundle"
    await bundles.write_bundle(repo, "refs/heads/story", head, base, ours)
    run_git(repo, "branch", "story", head)
    run_git(repo, "bundle", "create", "--quiet", str(theirs), "refs/heads/story", f"^{base}")

    run_git(repo, "bundle", "verify", str(ours))
    assert run_git(repo, "bundle", "list-heads", str(ours)) == f"{head} refs/heads/story"
    header = bundles.read_bundle_header(ours)
    assert header.heads == [(head, "refs/heads/story")] and header.prerequisites == [base]

    at_base = {
        line.split()[0] for line in run_git(repo, "rev-list", "--objects", base).splitlines()
    }

    def packed(bundle: Path) -> set[str]:
        """The ids of the objects in a bundle's pack that the base does not reach (indexing
        a thin pack adds the bases of its deltas, which the base reaches)."""
        into = tmp_path / f"indexed-{bundle.stem}"
        run_git(tmp_path, "init", "--quiet", "--bare", str(into))
        (into / "objects" / "info" / "alternates").write_text(f"{repo / '.git' / 'objects'}\n")
        pack = bundle.read_bytes()[bundles.read_bundle_header(bundle).pack_offset :]
        subprocess.run(
            ["git", "-C", str(into), "index-pack", "--stdin", "--fix-thin"], input=pack,
            check=True, capture_output=True,
        )  # fmt: skip
        (index,) = (into / "objects" / "pack").glob("*.idx")
        listed = subprocess.run(
            ["git", "show-index"], stdin=index.open("rb"), check=True, capture_output=True
        ).stdout.decode()
        return {line.split()[1] for line in listed.splitlines()} - at_base

    ours_objects = packed(ours)
    assert len(ours_objects) >= 6 and ours_objects == packed(theirs)

    # a repository that has the base, and nothing of the story, takes it
    run_git(repo, "tag", "the-base", base)
    clone = tmp_path / "clone"
    run_git(
        tmp_path, "clone", "--quiet", "--no-local", "--single-branch", "--branch", "the-base",
        str(repo), str(clone),
    )  # fmt: skip
    assert head not in run_git(clone, "rev-list", "--all")
    run_git(clone, "fetch", "--quiet", str(ours), "refs/heads/story:refs/heads/taken")
    assert run_git(clone, "rev-parse", "taken") == head
    run_git(clone, "fsck", "--strict", "--no-dangling")


async def test_a_bundle_needs_two_different_commit_ids(tmp_path: Path) -> None:
    repo, base, _ = _story(tmp_path)
    with pytest.raises(ValueError):
        await bundles.write_bundle(repo, "refs/heads/story", base, base, tmp_path / "x.bundle")
    with pytest.raises(ValueError):
        await bundles.write_bundle(repo, "refs/heads/story", "HEAD", base, tmp_path / "x.bundle")
