from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from baro_merger import naming
from baro_merger.delivery import cleanup_run, deliver, preserve_refs
from baro_merger.errors import DeliveryError, NotFastForward
from baro_merger.integration import (
    Conflict,
    Integrated,
    import_story_bundle,
    integrate_story,
    integration_repo_path,
    prepare_run,
)
from baro_shared.schemas import Checkpoint, RepoSource, Story

BASE_FILES = {
    "README.md": "hello\n",
    "src/a.py": "A = 1\n",
    "src/b.py": "B = 1\n",
    "notes/plan.txt": "x\n",
}
GOAL = "Raise A and B"


def story(story_id: str) -> Story:
    return Story(id=story_id, title=f"Story {story_id}")


async def integrate(bench: Any, repo: Path, run: str, story_id: str, start: str,
                    files: dict[str, str | None], attempt: int = 1) -> Integrated | Conflict:  # fmt: skip
    result = bench.story(repo, start, files)
    await import_story_bundle(repo, run, story_id, attempt, result.bundle, head=result.head)
    return await integrate_story(repo, run, story(story_id), attempt, story_base=start, goal=GOAL)


def make_dirty_user_repo(bench: Any) -> Path:
    """The user's repository mid-work: a feature branch checked out, a stash entry, a
    staged change, an unstaged change to a file the run also changes, an untracked file."""
    user = bench.make_repo("user", BASE_FILES)
    bench.git(user, "checkout", "--quiet", "-b", "feature")
    bench.commit(user, {"feature.txt": "feature\n"}, "feature work")
    (user / "README.md").write_text("stashed edit\n")
    bench.git(user, "stash", "push", "--quiet", "-m", "user stash")
    (user / "src/b.py").write_text("B = 'staged by the user'\n")
    bench.git(user, "add", "src/b.py")
    (user / "src/a.py").write_text("A = 'unsaved user edit'\n")
    (user / "scratch.txt").write_text("untracked\n")
    return user


def install_hooks(user: Path) -> Path:
    """Hooks that would leave a mark if any git command of the delivery ran them."""
    marker = user.parent / "hook-ran"
    hooks = user / ".git" / "hooks"
    for name in (
        "reference-transaction",
        "post-checkout",
        "post-merge",
        "pre-push",
        "post-index-change",
    ):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    return marker


async def run_two_stories(bench: Any, user: Path, run: str = "run1") -> tuple[Path, str, str]:
    prepared = await bench.prepare(run, user)
    one = await integrate(bench, prepared.repo, run, "S1", prepared.base, {"src/a.py": "A = 2\n"})
    two = await integrate(
        bench,
        prepared.repo,
        run,
        "S2",
        prepared.base,
        {"src/b.py": "B = 2\n", "new/c.py": "C = 1\n"},
    )
    assert isinstance(one, Integrated) and isinstance(two, Integrated)
    return prepared.repo, prepared.base, two.commit


async def test_delivery_leaves_a_dirty_checkout_byte_for_byte_as_it_was(bench: Any) -> None:
    user = make_dirty_user_repo(bench)
    marker = install_hooks(user)
    before = bench.snapshot(user)

    repo, base, head = await run_two_stories(bench, user)
    delivery = await deliver(repo, "run1", user, slug="Raise A and B")

    assert bench.snapshot(user) == before
    assert not marker.exists(), marker.read_text()
    assert delivery.branch == "baro/raise-a-and-b"
    assert delivery.commits == 2 and delivery.base == base and delivery.head == head
    assert delivery.files_changed == ["new/c.py", "src/a.py", "src/b.py"]
    assert "3 files changed" in delivery.diffstat
    assert bench.git(user, "rev-parse", "refs/heads/baro/raise-a-and-b") == head
    # the branch holds exactly the stories' change on top of the base
    assert (
        bench.git(user, "diff", "--name-only", base, "baro/raise-a-and-b").splitlines()
        == delivery.files_changed
    )
    assert bench.git(user, "log", "--format=%s", f"{base}..baro/raise-a-and-b").splitlines() == [
        "Story S2",
        "Story S1",
    ]
    assert bench.git(user, "rev-parse", "--abbrev-ref", "HEAD") == "feature"


async def test_every_attempt_ref_is_preserved_in_the_user_repository(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    first = await integrate(bench, prepared.repo, "r", "S1", prepared.base, {"src/a.py": "A = 2\n"})
    clash = await integrate(bench, prepared.repo, "r", "S2", prepared.base, {"src/a.py": "A = 3\n"})
    assert isinstance(first, Integrated) and isinstance(clash, Conflict)
    # a run that ends needs_attention keeps its attempts too
    refs = await preserve_refs(prepared.repo, "r", user)
    assert refs == [
        "refs/baro/r/S1/1",
        "refs/baro/r/S2/1",
        "refs/baro/r/base",
        "refs/baro/r/integration",
    ]
    assert bench.show(user, "refs/baro/r/S2/1", "src/a.py") == "A = 3\n"
    delivery = await deliver(prepared.repo, "r", user, slug="x")
    assert delivery.preserved_refs == refs


async def test_branch_names_are_unique_and_delivery_is_idempotent(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    bench.git(user, "branch", "baro/raise-a")
    repo, _, head = await run_two_stories(bench, user, "run1")
    first = await deliver(repo, "run1", user, slug="raise-a")
    assert first.branch == "baro/raise-a-2" and not first.already_delivered
    again = await deliver(repo, "run1", user, slug="raise-a")
    assert again.branch == "baro/raise-a-2" and again.already_delivered
    other_repo, _, other_head = await run_two_stories(bench, user, "run2")
    second = await deliver(other_repo, "run2", user, slug="raise-a")
    assert second.branch == "baro/raise-a-3"
    assert bench.git(user, "rev-parse", "baro/raise-a-2") == head
    assert bench.git(user, "rev-parse", "baro/raise-a-3") == other_head
    assert bench.git(user, "rev-parse", "baro/raise-a") == bench.git(user, "rev-parse", "main")


async def test_two_runs_with_identical_results_get_two_branches(
    bench: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fixed dates make both runs' integration commits identical, object for object
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
    user = bench.make_repo("user", BASE_FILES)
    repo1, _, head1 = await run_two_stories(bench, user, "run1")
    repo2, _, head2 = await run_two_stories(bench, user, "run2")
    assert head1 == head2
    first = await deliver(repo1, "run1", user, slug="same")
    second = await deliver(repo2, "run2", user, slug="same")
    assert (first.branch, second.branch) == ("baro/same", "baro/same-2")
    assert not second.already_delivered
    assert (await deliver(repo2, "run2", user, slug="same")).branch == "baro/same-2"


async def test_a_run_that_changed_nothing_makes_no_branch(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    delivery = await deliver(prepared.repo, "r", user, slug="nothing")
    assert delivery.branch is None and delivery.commits == 0 and delivery.files_changed == []
    assert bench.git(user, "branch", "--list", "baro/*") == ""


async def test_continue_fast_forwards_an_existing_baro_branch(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    repo, _, head = await run_two_stories(bench, user, "run1")
    delivered = await deliver(repo, "run1", user, slug="feature")
    assert delivered.branch == "baro/feature"

    source_before = bench.snapshot(user)
    follow = await prepare_run(
        bench.cache, "run2", _path_source(user), continue_branch="baro/feature"
    )
    assert follow.base == head
    more = await integrate(bench, follow.repo, "run2", "S1", follow.base, {"src/a.py": "A = 10\n"})
    assert isinstance(more, Integrated)
    result = await deliver(
        follow.repo, "run2", user, slug="ignored", continue_branch="baro/feature"
    )
    assert result.branch == "baro/feature" and result.updated_existing and result.commits == 1
    assert bench.git(user, "rev-parse", "baro/feature") == more.commit
    assert bench.git(user, "rev-parse", f"{more.commit}^") == head
    again = await deliver(follow.repo, "run2", user, slug="ignored", continue_branch="baro/feature")
    assert again.already_delivered
    assert bench.snapshot(user) == source_before


async def test_a_checkpoint_is_marked_once_and_never_moves_a_continued_branch(
    bench: Any,
) -> None:
    user = bench.make_repo("user", BASE_FILES)
    repo, _, head = await run_two_stories(bench, user, "run1")
    await deliver(repo, "run1", user, slug="feature")
    follow = await prepare_run(
        bench.cache, "run2", _path_source(user), continue_branch="baro/feature"
    )
    more = await integrate(bench, follow.repo, "run2", "S1", follow.base, {"src/a.py": "A = 10\n"})
    assert isinstance(more, Integrated)
    partial = Checkpoint(missing=["S2 failed: no build"], integrated=["S1"])

    first = await deliver(
        follow.repo, "run2", user, slug="x", continue_branch="baro/feature", checkpoint=partial
    )
    assert first.branch == "baro/feature-checkpoint"
    assert bench.git(user, "rev-parse", "baro/feature") == head, "the continued branch stays"
    marker = bench.git(user, "rev-parse", first.branch)
    assert bench.git(user, "rev-parse", f"{marker}^") == more.commit
    assert bench.git(user, "rev-parse", f"{marker}^{{tree}}") == bench.git(
        user, "rev-parse", f"{more.commit}^{{tree}}"
    )
    assert "Baro-Result: partial" in bench.git(user, "log", "-1", "--format=%B", marker)
    again = await deliver(
        follow.repo, "run2", user, slug="x", continue_branch="baro/feature", checkpoint=partial
    )
    assert again.already_delivered and again.head == marker, "the same marker, once"
    assert bench.git(user, "rev-parse", naming.checkpoint_ref("run2")) == marker

    none = await deliver(
        repo, "run1", user, slug="other", checkpoint=Checkpoint(missing=["x"], deliver=False)
    )
    assert none.branch is None and none.head == head
    assert bench.git(user, "branch", "--list", "baro/other*") == ""


async def test_continue_refuses_what_is_not_a_fast_forward(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    repo, _, _ = await run_two_stories(bench, user, "run1")
    await deliver(repo, "run1", user, slug="feature")
    follow = await prepare_run(
        bench.cache, "run2", _path_source(user), continue_branch="baro/feature"
    )
    await integrate(bench, follow.repo, "run2", "S1", follow.base, {"src/a.py": "A = 10\n"})
    # the user adds a commit to the baro branch meanwhile
    bench.git(user, "checkout", "--quiet", "baro/feature")
    moved = bench.commit(user, {"mine.txt": "mine\n"}, "my own commit")
    bench.git(user, "checkout", "--quiet", "main")
    with pytest.raises(NotFastForward, match="not a fast-forward"):
        await deliver(follow.repo, "run2", user, slug="x", continue_branch="baro/feature")
    assert bench.git(user, "rev-parse", "baro/feature") == moved
    with pytest.raises(DeliveryError, match="not a baro branch"):
        await deliver(follow.repo, "run2", user, slug="x", continue_branch="main")
    with pytest.raises(DeliveryError, match="does not exist"):
        await deliver(follow.repo, "run2", user, slug="x", continue_branch="baro/missing")


async def test_continue_refuses_to_move_a_checked_out_branch(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    repo, _, _ = await run_two_stories(bench, user, "run1")
    await deliver(repo, "run1", user, slug="feature")
    follow = await prepare_run(
        bench.cache, "run2", _path_source(user), continue_branch="baro/feature"
    )
    await integrate(bench, follow.repo, "run2", "S1", follow.base, {"src/a.py": "A = 10\n"})
    bench.git(user, "checkout", "--quiet", "baro/feature")
    before = bench.snapshot(user)
    with pytest.raises(DeliveryError, match="checked out"):
        await deliver(follow.repo, "run2", user, slug="x", continue_branch="baro/feature")
    assert bench.snapshot(user) == before


async def test_cleanup_removes_run_refs_and_the_integration_repository(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    repo, _, head = await run_two_stories(bench, user, "run1")
    delivery = await deliver(repo, "run1", user, slug="done")
    assert bench.git(user, "for-each-ref", "refs/baro/run1/") != ""
    cleaned = await cleanup_run(repo, "run1", user)
    assert cleaned.removed_repository and "refs/baro/run1/S1/1" in cleaned.removed_refs
    assert bench.git(user, "for-each-ref", "refs/baro/") == ""
    assert not repo.exists() and repo == integration_repo_path(bench.cache, "run1")
    assert bench.git(user, "rev-parse", delivery.branch) == head
    again = await cleanup_run(repo, "run1", user)
    assert again.removed_refs == [] and not again.removed_repository


async def test_delivery_into_something_that_is_not_a_repository(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    repo, _, _ = await run_two_stories(bench, user, "run1")
    plain = bench.root / "plain"
    plain.mkdir()
    with pytest.raises(DeliveryError, match="not a git repository"):
        await deliver(repo, "run1", plain, slug="x")
    assert list(plain.iterdir()) == []
    with pytest.raises(DeliveryError, match="not a git repository"):
        await deliver(repo, "run1", bench.root / "missing", slug="x")
    assert naming.integration_ref("run1") in bench.git(repo, "for-each-ref")


def _path_source(user: Path) -> Any:
    from baro_shared.schemas import RepoSource

    return RepoSource(kind="path", location=str(user))


async def test_continue_starts_from_the_branch_even_when_a_commit_is_pinned(bench: Any) -> None:
    """A submitter pins its own HEAD (main); with --continue the base is the branch."""
    user = bench.make_repo("user", BASE_FILES)
    repo, _, head = await run_two_stories(bench, user, "run1")
    await deliver(repo, "run1", user, slug="feature")
    main = bench.git(user, "rev-parse", "main")
    assert main != head
    pinned = RepoSource(kind="path", location=str(user), commit=main)
    follow = await prepare_run(bench.cache, "run2", pinned, continue_branch="baro/feature")
    assert follow.base == head
