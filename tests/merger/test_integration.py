from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from baro_merger import naming
from baro_merger.errors import BundleError, MergerError, NotPrepared, SourceError
from baro_merger.integration import (
    Conflict,
    Integrated,
    Rejected,
    create_bundle,
    import_story_bundle,
    integrate_story,
    integration_head,
    open_run,
    prepare_run,
    read_bundle_header,
    record_attempt,
)
from baro_merger.plumbing import MergeCommits, ObjectLookup, commit_tree
from baro_shared.gitutil import GitError
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
    header = read_bundle_header(rewritten)
    assert header.heads == [tuple(line.split(" ", 1)) for line in listed.splitlines()]
    assert header.prerequisites == [prepared.base]


async def test_import_refuses_a_bundle_built_on_a_foreign_base(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    stranger = bench.make_repo("stranger", {"x": "1\n"})
    foreign = bench.git(stranger, "rev-parse", "HEAD")
    result = bench.story(stranger, foreign, {"x": "2\n"})
    with pytest.raises(BundleError, match="does not have"):
        await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle)


def _bundle_of(bench: Any, workspace: Path, start: str, head: str, objects: list[str]) -> Path:
    """A bundle of ``head`` on ``start`` carrying only ``objects``: what an agent that
    tampered with the runner's bundle could hand over."""
    pack = subprocess.run(
        ["git", "pack-objects", "--stdout"],
        cwd=workspace,
        input="".join(f"{oid}\n" for oid in objects).encode(),
        capture_output=True,
        check=True,
    ).stdout
    bundle = bench.root / "bundles" / f"crafted-{len(objects)}.bundle"
    header = f"# v2 git bundle\n-{start} base\n{head} refs/heads/baro-story\n\n".encode()
    bundle.write_bytes(header + pack)
    return bundle


@pytest.mark.parametrize("left_out", ["tree and blob", "blob"])
async def test_import_refuses_a_bundle_missing_an_object_its_commit_names(
    bench: Any, left_out: str
) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    result = bench.story(prepared.repo, prepared.base, {"src/new.py": "NEW = 1\n"})
    workspace = bench.root / "crafted"
    workspace.mkdir()
    bench.git(workspace, "init", "--quiet")
    bench.git(workspace, "fetch", "--quiet", str(prepared.repo), prepared.base)
    bench.git(workspace, "fetch", "--quiet", str(result.bundle), "baro-story")
    tree = bench.git(workspace, "rev-parse", f"{result.head}^{{tree}}")
    objects = [result.head] if left_out == "tree and blob" else [result.head, tree]
    bundle = _bundle_of(bench, workspace, prepared.base, result.head, objects)
    with pytest.raises(BundleError, match="cannot import"):
        await import_story_bundle(prepared.repo, "r", "S1", 1, bundle)
    assert bench.git(prepared.repo, "for-each-ref", naming.attempt_ref("r", "S1", 1)) == ""
    # the runner's own bundle of the same attempt still imports
    imported = await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle)
    assert imported.head == result.head and not imported.already_imported


async def test_import_refuses_a_partial_bundle(bench: Any) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    result = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 2\n"})
    partial = bench.root / "partial.bundle"
    data = result.bundle.read_bytes().replace(
        b"# v2 git bundle\n", b"# v3 git bundle\n@filter=blob:none\n", 1
    )
    partial.write_bytes(data)
    with pytest.raises(BundleError, match="not a full git bundle"):
        await import_story_bundle(prepared.repo, "r", "S1", 1, partial)


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


# --------------------------------------------------------------------------- a series


async def test_a_series_sees_every_ref_its_steps_moved_before_it_writes_them(
    bench: Any,
) -> None:
    """A batch reads the run's refs once and writes its ref changes at its end: each story
    must still see what the ones before it moved (the head, an integrated or a conflicted
    marker), or it would merge onto a stale head or go in twice."""
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    first = await integrate(bench, prepared, "r", story("S1"), {"src/a.py": "A = 2\n"})
    assert isinstance(first, Integrated)
    clash = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 3\n"})
    undo = bench.story(prepared.repo, first.commit, {"src/a.py": "A = 1\n"})  # lets S2 fit
    other = bench.story(prepared.repo, prepared.base, {"src/b.py": "B = 2\n"})

    def written() -> list[str]:  # every ref of the run but the attempts
        listed = bench.git(prepared.repo, "for-each-ref", "--format=%(refname)", "refs/baro/r/")
        return [ref for ref in listed.splitlines() if not ref.startswith("refs/baro/r/S")]

    on_disk = written(), bench.git(prepared.repo, "rev-parse", "refs/baro/r/integration")
    async with open_run(prepared.repo, "r") as run:
        for story_id, result in (("S2", clash), ("S3", undo), ("S4", other)):
            await run.import_bundle(story_id, 1, result.bundle, head=result.head)

        async def step(story_id: str, start: str) -> Integrated | Conflict:
            done = await run.integrate(story(story_id), 1, story_base=start, goal=GOAL)
            assert not isinstance(done, Rejected)
            return done

        conflict = await step("S2", prepared.base)
        undone = await step("S3", first.commit)
        again = await step("S2", prepared.base)
        added = await step("S4", prepared.base)
        twice = await step("S4", prepared.base)
        moved = written(), bench.git(prepared.repo, "rev-parse", "refs/baro/r/integration")
        assert moved == on_disk, "nothing but the imported attempts is written before the end"

    assert isinstance(conflict, Conflict) and conflict.integration_head == first.commit
    assert isinstance(undone, Integrated) and undone.changed
    assert bench.git(prepared.repo, "rev-parse", f"{undone.commit}^") == first.commit
    assert isinstance(again, Conflict), "the marker staged by the first try is seen"
    assert again.integration_head == first.commit
    assert isinstance(added, Integrated) and not added.already_integrated
    assert bench.git(prepared.repo, "rev-parse", f"{added.commit}^") == undone.commit
    assert isinstance(twice, Integrated) and twice.already_integrated
    assert twice.commit == added.commit
    refs = dict(
        reversed(line.split(" "))
        for line in bench.git(
            prepared.repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/baro/r/"
        ).splitlines()
    )
    assert refs[naming.integration_ref("r")] == added.commit
    assert refs[naming.conflicted_marker("r", "S2", 1)] == first.commit
    assert refs[naming.integrated_marker("r", "S3", 1)] == undone.commit
    assert refs[naming.integrated_marker("r", "S4", 1)] == added.commit
    assert naming.integrated_marker("r", "S2", 1) not in refs


async def test_a_series_that_dies_moves_no_ref_and_is_done_again_whole(bench: Any) -> None:
    """The merger killed in the middle of a batch: what the batch integrated was not
    written (nor answered), so the redelivered batch integrates each story once."""
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    results = {
        "S1": bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 2\n"}),
        "S2": bench.story(prepared.repo, prepared.base, {"src/b.py": "B = 2\n"}),
    }

    async def batch(die: bool) -> list[Integrated | Conflict | Rejected]:
        async with open_run(prepared.repo, "r") as run:
            done = []
            for story_id, result in results.items():
                await run.import_bundle(story_id, 1, result.bundle, head=result.head)
                done.append(
                    await run.integrate(story(story_id), 1, story_base=prepared.base, goal=GOAL)
                )
                if die:
                    raise KeyboardInterrupt  # anything that ends the batch before its end
            return done

    with pytest.raises(KeyboardInterrupt):
        await batch(die=True)
    assert await integration_head(prepared.repo, "r") == prepared.base
    assert bench.git(prepared.repo, "for-each-ref", "refs/baro/r/integrated/") == ""
    assert bench.git(prepared.repo, "for-each-ref", naming.attempt_ref("r", "S1", 1)) == "", (
        "an import's ref is written with the batch's refs"
    )
    assert bench.git(prepared.repo, "cat-file", "-t", results["S1"].head) == "commit", (
        "the imported objects stay"
    )
    s1, s2 = await batch(die=False)
    assert isinstance(s1, Integrated) and isinstance(s2, Integrated)
    assert not s1.already_integrated and not s2.already_integrated
    log = bench.git(prepared.repo, "log", "--format=%s", f"{prepared.base}..{s2.commit}")
    assert log.splitlines() == ["Improve S2", "Improve S1"]


async def test_one_object_lookup_finds_objects_written_after_it_started(bench: Any) -> None:
    """A batch's one cat-file process must see the packs its imports fetch and the commits
    its stories make after the process started."""
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    result = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 2\n"})
    lookup = ObjectLookup(prepared.repo)
    try:
        assert await lookup.peel([result.head, f"{prepared.base}^{{tree}}"]) == [
            None,
            bench.git(prepared.repo, "rev-parse", f"{prepared.base}^{{tree}}"),
        ]
        await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle, head=result.head)
        tree = bench.git(prepared.repo, "rev-parse", f"{result.head}^{{tree}}")
        assert await lookup.peel([f"{result.head}^{{tree}}"]) == [tree]
        made = await commit_tree(prepared.repo, tree, prepared.base, "made now")
        assert await lookup.peel([f"{made}^{{commit}}", "bad", "nothing^{tree}"]) == [
            made,
            None,
            None,
        ]
        sizes = await lookup.sizes([f"{made}", "0" * 40])
        assert list(sizes) == [made] and sizes[made] > 0
    finally:
        await lookup.close()
    await lookup.close()  # closing twice is harmless


async def test_a_merge_s_throwaway_commits_are_real_commits_of_their_tree_on_their_parent(
    bench: Any,
) -> None:
    user = bench.make_repo("user", BASE_FILES)
    prepared = await bench.prepare("r", user)
    tree = bench.git(prepared.repo, "rev-parse", f"{prepared.base}^{{tree}}")
    commits = MergeCommits(prepared.repo)
    try:
        made = await commits.commit(tree, prepared.base, "ours")
        again = await commits.commit(tree, prepared.base, "ours")
        with pytest.raises(GitError):
            await commits.commit("HEAD", prepared.base, "ours")
    finally:
        await commits.close()
    assert made == again, "the same tree on the same parent is the same commit"
    assert bench.git(prepared.repo, "rev-parse", f"{made}^{{tree}}", f"{made}^") == (
        f"{tree}\n{prepared.base}"
    )
    bench.git(prepared.repo, "fsck", "--no-dangling", "--strict")


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
