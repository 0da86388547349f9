from __future__ import annotations

from typing import Any

import pytest

from baro_merger import naming
from baro_merger.errors import BundleError, MergerError, NotPrepared, SourceError
from baro_merger.integration import (
    Conflict,
    Integrated,
    bundle_heads,
    create_bundle,
    import_story_bundle,
    integrate_story,
    integration_head,
    prepare_run,
    record_attempt,
)
from baro_shared.schemas import RepoSource, Story

BASE_FILES = {
    "README.md": "hello\n",
    "src/a.py": "A = 1\n",
    "src/b.py": "B = 1\n",
    "package.json": '{"name": "x"}\n',
    "package-lock.json": '{"lockfileVersion": 3}\n',
}
GOAL = "make a and b better"


def story(story_id: str, surface: list[str] | None = None, **kw: Any) -> Story:
    return Story(
        id=story_id, title=kw.pop("title", f"Improve {story_id}"), write_surface=surface or [], **kw
    )


async def integrate(bench: Any, prepared: Any, run: str, s: Story, files: dict[str, str | None], *,
                    start: str | None = None, attempt: int = 1) -> Integrated | Conflict:  # fmt: skip
    start = start or prepared.base
    result = bench.story(prepared.repo, start, files)
    await import_story_bundle(prepared.repo, run, s.id, attempt, result.bundle, head=result.head)
    return await integrate_story(prepared.repo, run, s, attempt, story_base=start, goal=GOAL)


# --------------------------------------------------------------------------- prepare


async def test_prepare_from_a_local_path_lists_files_and_is_idempotent(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    head = bench.git(user, "rev-parse", "HEAD")
    prepared = await bench.prepare("run1", user)
    assert prepared.base == head
    assert sorted(prepared.files) == sorted(BASE_FILES)
    assert not prepared.already_prepared
    assert bench.git(prepared.repo, "rev-parse", naming.base_ref("run1")) == head
    assert bench.git(prepared.repo, "for-each-ref", "refs/baro/run1/source-refs/") == ""
    again = await bench.prepare("run1", user)
    assert again.already_prepared and again.base == head and again.files == prepared.files
    assert await integration_head(prepared.repo, "run1") == head


async def test_prepare_pins_commit_or_ref(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    first = bench.git(user, "rev-parse", "HEAD")
    bench.commit(user, {"c.txt": "c\n"}, "second")
    bench.git(user, "tag", "v1", first)
    cache = bench.cache
    pinned = await prepare_run(
        cache, "r-commit", RepoSource(kind="path", location=str(user), commit=first[:10])
    )
    assert pinned.base == first
    by_ref = await prepare_run(
        cache, "r-ref", RepoSource(kind="path", location=str(user), ref="v1")
    )
    assert by_ref.base == first
    by_head = await prepare_run(cache, "r-head", RepoSource(kind="url", location=f"file://{user}"))
    assert by_head.base == bench.git(user, "rev-parse", "HEAD")


async def test_prepare_from_a_source_bundle(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    first = bench.git(user, "rev-parse", "HEAD")
    bench.commit(user, {"c.txt": "c\n"}, "second")
    bundle = bench.root / "source.bundle"
    bench.git(user, "bundle", "create", "--quiet", str(bundle), "main")
    source = RepoSource(kind="bundle", location=str(bundle))
    prepared = await prepare_run(bench.cache, "r-bundle", source)
    assert prepared.base == bench.git(user, "rev-parse", "main")
    # a commit that is not a tip of the bundle
    older = await prepare_run(
        bench.cache, "r-bundle-old", RepoSource(kind="bundle", location=str(bundle), commit=first)
    )
    assert older.base == first


async def test_prepare_errors_say_what_is_wrong(bench: Any) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        await prepare_run(
            bench.cache, "r", RepoSource(kind="path", location=str(bench.root / "nope"))
        )
    empty = bench.root / "empty"
    empty.mkdir()
    bench.git(empty, "init", "--quiet")
    with pytest.raises(SourceError, match="empty repository"):
        await prepare_run(bench.cache, "r2", RepoSource(kind="path", location=str(empty)))
    user = bench.make_repo("user", BASE_FILES)
    with pytest.raises(SourceError, match="not in"):
        await prepare_run(
            bench.cache, "r3", RepoSource(kind="path", location=str(user), commit="deadbeef" * 5)
        )
    with pytest.raises(NotPrepared):
        await integration_head(bench.cache / "missing.git", "missing")


# --------------------------------------------------------------------------- import


async def test_import_is_idempotent_and_refuses_a_different_head(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    result = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 2\n"})
    first = await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle, head=result.head)
    assert (
        first.ref == "refs/baro/r/S1/1" and first.head == result.head and not first.already_imported
    )
    again = await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle, head=result.head)
    assert again.already_imported and again.head == result.head
    other = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 3\n"})
    with pytest.raises(BundleError, match="already holds"):
        await import_story_bundle(prepared.repo, "r", "S1", 1, other.bundle, head=other.head)
    with pytest.raises(BundleError, match="does not contain head"):
        await import_story_bundle(prepared.repo, "r", "S1", 2, other.bundle, head=result.head)
    garbage = bench.root / "garbage.bundle"
    garbage.write_text("not a bundle")
    with pytest.raises(BundleError, match="not a readable git bundle"):
        await import_story_bundle(prepared.repo, "r", "S1", 3, garbage)


@pytest.mark.parametrize("version", ["2", "3"])
async def test_a_bundle_s_heads_are_read_from_its_header_as_git_lists_them(
    bench: Any, version: str
) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    for attempt, text in ((1, "A = 2\n"), (2, "A = 3\n")):
        result = bench.story(prepared.repo, prepared.base, {"src/a.py": text})
        await import_story_bundle(prepared.repo, "r", "S1", attempt, result.bundle)
    rewritten = bench.root / f"v{version}.bundle"
    bench.git(
        prepared.repo, "bundle", "create", "--quiet", f"--version={version}", str(rewritten),
        "refs/baro/r/S1/1", "refs/baro/r/S1/2", f"^{prepared.base}",
    )  # fmt: skip
    listed = bench.git(prepared.repo, "bundle", "list-heads", str(rewritten))
    assert await bundle_heads(rewritten) == [
        tuple(line.split(" ", 1)) for line in listed.splitlines()
    ]


async def test_import_refuses_a_bundle_built_on_a_foreign_base(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    stranger = bench.make_repo("stranger", {"x": "1\n"})
    foreign = bench.git(stranger, "rev-parse", "HEAD")
    result = bench.story(stranger, foreign, {"x": "2\n"})
    with pytest.raises(BundleError, match="does not have"):
        await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle)


# --------------------------------------------------------------------------- integrate


async def test_two_stories_on_different_files_make_a_linear_branch(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    s1 = story("S1", ["src/a.py"], description="Raise A.")
    s2 = story("S2", ["src/b.py"], title="Raise B\nand tidy it")
    first = await integrate(bench, prepared, "r", s1, {"src/a.py": "A = 2\n"})
    second = await integrate(bench, prepared, "r", s2, {"src/b.py": "B = 2\n"})
    assert isinstance(first, Integrated) and isinstance(second, Integrated)
    assert first.changed and second.changed
    head = await integration_head(prepared.repo, "r")
    assert head == second.commit
    log = bench.git(prepared.repo, "log", "--format=%H %P", f"{prepared.base}..{head}").splitlines()
    assert log == [f"{second.commit} {first.commit}", f"{first.commit} {prepared.base}"]
    assert bench.show(prepared.repo, head, "src/a.py") == "A = 2\n"
    assert bench.show(prepared.repo, head, "src/b.py") == "B = 2\n"
    assert bench.git(prepared.repo, "log", "-1", "--format=%B", first.commit) == (
        "Improve S1\n\nRaise A.\n\nBaro-Story: S1\nCo-Authored-By: baro <baro@localhost>"
    )
    assert (
        bench.git(prepared.repo, "log", "-1", "--format=%s", second.commit) == "Raise B and tidy it"
    )
    assert (
        bench.git(prepared.repo, "log", "-1", "--format=%an <%ae>", first.commit)
        == "baro <baro@localhost>"
    )
    trailers = bench.git(
        prepared.repo, "log", "-1", "--format=%(trailers:key=Baro-Story,valueonly)", head
    )
    assert trailers == "S2"


async def test_a_conflicting_story_returns_its_paths_and_moves_nothing(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    first = await integrate(
        bench, prepared, "r", story("S1"), {"src/a.py": "A = 2\n", "new.txt": "one\n"}
    )
    assert isinstance(first, Integrated)
    refs_before = bench.git(prepared.repo, "for-each-ref")
    clash = await integrate(
        bench,
        prepared,
        "r",
        story("S2"),
        {"src/a.py": "A = 3\n", "new.txt": "two\n", "src/b.py": "B = 9\n"},
    )
    assert isinstance(clash, Conflict)
    assert sorted(clash.paths) == ["new.txt", "src/a.py"]
    assert clash.integration_head == first.commit
    assert any("src/a.py" in m for m in clash.messages)
    assert await integration_head(prepared.repo, "r") == first.commit
    # only the attempt ref (the attempt stays reachable) and the marker of the head it
    # conflicted with were added
    refs_after = bench.git(prepared.repo, "for-each-ref")
    assert set(refs_after.splitlines()) - set(refs_before.splitlines()) == {
        f"{bench.git(prepared.repo, 'rev-parse', 'refs/baro/r/S2/1')} commit\trefs/baro/r/S2/1",
        f"{first.commit} commit\trefs/baro/r/conflicted/S2/1",
    }
    # the re-dispatched attempt, started from the new head, integrates
    retry = await integrate(
        bench, prepared, "r", story("S2"), {"src/a.py": "A = 3\n"}, start=first.commit, attempt=2
    )
    assert isinstance(retry, Integrated) and retry.changed
    assert bench.git(prepared.repo, "rev-parse", f"{retry.commit}^") == first.commit


async def test_a_conflicted_attempt_asked_again_conflicts_again_even_on_a_head_it_would_fit(
    bench: Any,
) -> None:
    """A batch redelivered after a later story of it went in: the conflict may already
    have been answered (and the story re-run), so the attempt must not go in now."""
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    first = await integrate(bench, prepared, "r", story("S1"), {"src/a.py": "A = 2\n"})
    clash = await integrate(bench, prepared, "r", story("S2"), {"src/a.py": "A = 3\n"})
    assert isinstance(first, Integrated) and isinstance(clash, Conflict)
    # a later story puts src/a.py back as S2's attempt started from it
    undo = await integrate(
        bench, prepared, "r", story("S3"), {"src/a.py": "A = 1\n"}, start=first.commit
    )
    assert isinstance(undo, Integrated) and undo.changed
    again = await integrate_story(
        prepared.repo, "r", story("S2"), 1, story_base=prepared.base, goal=GOAL
    )
    assert isinstance(again, Conflict) and again.paths == clash.paths
    assert again.integration_head == first.commit, "judged against the head it conflicted with"
    assert await integration_head(prepared.repo, "r") == undo.commit, "nothing moved"
    assert bench.git(prepared.repo, "for-each-ref", "refs/baro/r/integrated/S2/") == ""


async def test_integrate_is_idempotent(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    s1 = story("S1")
    result = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 2\n", "prd.json": "{}"})
    await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle)
    first = await integrate_story(prepared.repo, "r", s1, 1, story_base=prepared.base, goal=GOAL)
    again = await integrate_story(prepared.repo, "r", s1, 1, story_base=prepared.base, goal=GOAL)
    assert isinstance(first, Integrated) and isinstance(again, Integrated)
    assert (
        again.commit == first.commit and again.already_integrated and not first.already_integrated
    )
    assert again.changed and first.changed
    assert again.dropped_paths == first.dropped_paths == ["prd.json"]
    assert (
        bench.git(prepared.repo, "rev-list", "--count", f"{prepared.base}..refs/baro/r/integration")
        == "1"
    )
    # a late duplicate of another attempt gets the integrated one back
    late = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 5\n"})
    await import_story_bundle(prepared.repo, "r", "S1", 2, late.bundle)
    stale = await integrate_story(prepared.repo, "r", s1, 2, story_base=prepared.base, goal=GOAL)
    assert isinstance(stale, Integrated) and stale.already_integrated
    assert stale.attempt == 1 and stale.commit == first.commit


async def test_artifacts_are_dropped_listed_and_kept_in_the_story_ref(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    changes = {
        "src/a.py": "A = 2\n",
        "prd.json": '{"stories": []}\n',
        "docs/adr/0001-x.md": "# ADR\n",
        "package-lock.json": '{"lockfileVersion": 3, "regenerated": true}\n',
        "src/__pycache__/a.cpython-311.pyc": "bytes",
    }
    result = await integrate(bench, prepared, "r", story("S1", ["src/a.py"]), changes)
    assert isinstance(result, Integrated)
    assert result.dropped_paths == [
        "docs/adr/0001-x.md",
        "package-lock.json",
        "prd.json",
        "src/__pycache__/a.cpython-311.pyc",
    ]
    files = bench.files_at(prepared.repo, result.commit)
    assert "prd.json" not in files and "docs/adr/0001-x.md" not in files
    assert (
        bench.show(prepared.repo, result.commit, "package-lock.json")
        == BASE_FILES["package-lock.json"]
    )
    assert bench.show(prepared.repo, result.commit, "src/a.py") == "A = 2\n"
    # the originals stay reachable in the attempt ref
    assert bench.show(prepared.repo, result.story_ref, "prd.json") == '{"stories": []}\n'


async def test_artifacts_named_by_the_surface_are_kept(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    changes = {"prd.json": "{}\n", "docs/adr/0001-x.md": "# ADR\n", "package-lock.json": "{}\n"}
    surface = ["prd.json", "docs/adr/*.md", "package-lock.json"]
    result = await integrate(bench, prepared, "r", story("S1", surface), changes)
    assert isinstance(result, Integrated) and result.dropped == []
    assert bench.show(prepared.repo, result.commit, "docs/adr/0001-x.md") == "# ADR\n"
    assert bench.show(prepared.repo, result.commit, "package-lock.json") == "{}\n"


async def test_parallel_stories_writing_the_same_artifact_do_not_conflict(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    one = await integrate(
        bench, prepared, "r", story("S1"), {"src/a.py": "A = 2\n", "prd.json": "1"}
    )
    two = await integrate(
        bench, prepared, "r", story("S2"), {"src/b.py": "B = 2\n", "prd.json": "2"}
    )
    assert isinstance(one, Integrated) and isinstance(two, Integrated)
    assert "prd.json" not in bench.files_at(prepared.repo, two.commit)


async def test_baro_toml_at_the_base_configures_hygiene(bench: Any) -> None:
    files = {**BASE_FILES, ".baro.toml": '[artifacts]\nkeep = ["prd.json"]\ndrop = ["*.orig"]\n'}
    user = bench.make_repo("user", files)
    prepared = await bench.prepare("r", user)
    result = await integrate(
        bench, prepared, "r", story("S1"), {"prd.json": "{}", "src/a.py.orig": "old"}
    )
    assert isinstance(result, Integrated) and result.dropped_paths == ["src/a.py.orig"]
    assert "prd.json" in bench.files_at(prepared.repo, result.commit)


async def test_a_story_on_top_of_the_integration_head(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    first = await integrate(bench, prepared, "r", story("S1"), {"src/a.py": "A = 2\n"})
    assert isinstance(first, Integrated)
    second = await integrate(
        bench, prepared, "r", story("S2"), {"src/a.py": "A = 3\n"}, start=first.commit
    )
    assert isinstance(second, Integrated)
    assert bench.show(prepared.repo, second.commit, "src/a.py") == "A = 3\n"


async def test_a_story_that_changes_nothing_adds_no_commit(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    await record_attempt(prepared.repo, "r", "S1", 1, prepared.base)
    empty = await integrate_story(
        prepared.repo, "r", story("S1"), 1, story_base=prepared.base, goal=GOAL
    )
    only_artifacts = await integrate(bench, prepared, "r", story("S2"), {"progress.txt": "50%"})
    for result in (empty, only_artifacts):
        assert isinstance(result, Integrated) and not result.changed
        assert result.commit == prepared.base
    assert await integration_head(prepared.repo, "r") == prepared.base
    repeated = await integrate_story(
        prepared.repo, "r", story("S1"), 1, story_base=prepared.base, goal=GOAL
    )
    assert isinstance(repeated, Integrated) and repeated.already_integrated
    assert not repeated.changed
    with pytest.raises(BundleError):
        await record_attempt(prepared.repo, "r", "S3", 1, "0123456789" * 4)


async def test_integrating_an_attempt_that_was_not_imported_fails_clearly(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    with pytest.raises(MergerError, match="not imported"):
        await integrate_story(
            prepared.repo, "r", story("S9"), 1, story_base=prepared.base, goal=GOAL
        )


# --------------------------------------------------------------------------- bundles


async def test_bundle_of_the_integration_head_carries_a_dependent_story(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    out = bench.root / "objects" / "integration.bundle"
    assert await create_bundle(prepared.repo, "r", prepared.base, prepared.base, out) is None
    assert not out.exists()
    first = await integrate(bench, prepared, "r", story("S1"), {"src/a.py": "A = 2\n"})
    assert isinstance(first, Integrated)
    assert await create_bundle(prepared.repo, "r", prepared.base, first.commit, out) == out
    heads = bench.git(prepared.repo, "bundle", "list-heads", str(out))
    assert heads == f"{first.commit} refs/baro/r/published"
    # a workspace cloned from the user's repository (which has the base) can use it
    workspace = bench.root / "ws"
    bench.git(bench.root, "clone", "--quiet", str(user), str(workspace))
    bench.git(workspace, "fetch", "--quiet", str(out), "+refs/*:refs/baro-base/*")
    assert bench.git(workspace, "cat-file", "-t", first.commit) == "commit"
    with pytest.raises(MergerError, match="unknown commit"):
        await create_bundle(prepared.repo, "r", prepared.base, "f" * 40, out)


async def test_an_unreadable_bundle_is_named_as_the_user_knows_it(bench: Any) -> None:
    """Not "cannot read 'HEAD' from <temp dir>/source.bundle: and the repository exists.":
    the source as submitted, and git's reason rather than its closing advice."""
    garbage = bench.root / "tmp-download" / "source.bundle"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a bundle\n")
    with pytest.raises(SourceError) as caught:
        await prepare_run(
            bench.cache,
            "r-garbage",
            RepoSource(kind="bundle", location=str(garbage)),
            shown_as="the uploaded bundle runs/r-garbage/source.bundle",
        )
    message = str(caught.value)
    assert message.startswith(
        "cannot read 'HEAD' from the uploaded bundle runs/r-garbage/source.bundle: "
    )
    assert str(garbage.parent) not in message
    assert "repository exists" not in message
    assert "bundle" in message.split(": ", 1)[1]
