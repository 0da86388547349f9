"""A run whose repository is a git URL: the merger and the runners clone it, the result
goes to the object store (or is pushed), and `baro fetch` brings it into a local clone
without touching that clone's checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_cli.commands.submit import upload_head
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.runids import new_run_id
from baro_shared.settings import Settings
from baro_shared.sources import source_bundle_name
from tests.conftest import make_repo, run_git, snapshot
from tests.e2e.conftest import replay, run_to_end
from tests.remote.conftest import FILES, baro, branches, clone_of, remote_repo, url_request

pytestmark = pytest.mark.slow


async def test_file_url_run_is_fetched_into_a_clone(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, head = remote_repo(tmp_path)
    server_refs = run_git(bare, "for-each-ref")
    request = url_request(f"file://{bare}")
    report = await run_to_end(bus, request)
    assert report.status == "delivered", report.reason
    rec = (await bus.get_record(request.run_id))[0]  # type: ignore[index]
    delivered = rec.delivered
    assert delivered is not None and delivered.published == "object_store"
    assert delivered.result_bundle == f"runs/{request.run_id}/result.bundle"
    assert delivered.base == head and delivered.files_changed == ["app.py"]
    assert run_git(bare, "for-each-ref") == server_refs, "publish local leaves the server alone"

    mine = clone_of(bare, tmp_path / "mine")
    (mine / "README.md").write_text("# my unsaved edit\n")
    before = snapshot(mine)
    got = await baro(stack, "fetch", request.run_id, "--repo", str(mine), "--json")
    assert got.code == 0, got.err
    assert snapshot(mine) == before, "fetch touched the checkout, index or stash"
    branch = delivered.branch
    assert branch and branch in branches(mine)
    assert run_git(mine, "show", f"{branch}:app.py") == "def greet():\n    return 'hello'"
    assert run_git(mine, "rev-parse", branch) == delivered.head
    assert f"refs/baro/{request.run_id}/S1/1" in run_git(
        mine, "for-each-ref", "--format=%(refname)"
    )

    again = await baro(stack, "fetch", request.run_id, "--repo", str(mine))
    assert again.code == 0, again.err
    assert "already fetched" in again.out and branch in again.out
    assert branches(mine).count(branch) == 1


async def test_bare_repository_path_as_url_and_a_taken_branch_name(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, _ = remote_repo(tmp_path)
    request = url_request(str(bare))  # a path, as git takes it
    report = await run_to_end(bus, request)
    assert report.status == "delivered", report.reason
    mine = clone_of(bare, tmp_path / "mine")
    branch = report.branch
    assert branch
    run_git(mine, "branch", branch)  # the user already has a branch of that name
    got = await baro(stack, "fetch", request.run_id, "--repo", str(mine))
    assert got.code == 0, got.err
    assert f"{branch}-2" in got.out
    assert run_git(mine, "rev-parse", f"{branch}-2") == report.head
    assert run_git(mine, "rev-parse", branch) == run_git(mine, "rev-parse", "main"), (
        "the user's own branch is not moved"
    )


async def test_push_policy_pushes_the_result_to_the_url(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, _ = remote_repo(tmp_path)
    request = url_request(f"file://{bare}", publish="push")
    report = await run_to_end(bus, request)
    assert report.status == "delivered", report.reason
    rec = (await bus.get_record(request.run_id))[0]  # type: ignore[index]
    d = rec.delivered
    assert d is not None and d.published == "pushed", d.publish_note
    assert d.branch and d.branch.startswith("baro/fix-the-typo")
    assert d.branch.endswith(request.run_id[-6:]), "a pushed name is unique per run"
    assert run_git(bare, "rev-parse", f"refs/heads/{d.branch}") == d.head
    assert d.result_bundle, "the result is in the object store as well"
    assert "main" in branches(bare) and run_git(bare, "rev-parse", "main") == d.base


async def test_failed_run_keeps_its_attempts_for_fetch(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    bare, _ = remote_repo(tmp_path)
    script = {"default": {"steps": [{"write": "app.py", "content": "broken\n"}, {"fail": "no"}]}}
    request = url_request(f"file://{bare}", script, limits=s.Limits(retries=0))
    report = await run_to_end(bus, request)
    assert report.status == "failed"
    mine = clone_of(bare, tmp_path / "mine")
    before = branches(mine)
    got = await baro(stack, "fetch", request.run_id, "--repo", str(mine))
    assert got.code == 0, got.err
    assert "delivered no branch" in got.out
    assert branches(mine) == before
    kept = run_git(mine, "for-each-ref", "--format=%(refname)", f"refs/baro/{request.run_id}/")
    assert f"refs/baro/{request.run_id}/S1/1" in kept.split()
    assert run_git(mine, "show", f"refs/baro/{request.run_id}/S1/1:app.py") == "broken"


async def test_unreachable_url_fails_the_run_with_the_reason(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    request = url_request(f"file://{tmp_path}/no-such.git")
    report = await run_to_end(bus, request)
    assert report.status == "failed"
    assert "no-such.git" in (report.reason or "")
    kinds = [type(e).__name__ for e in await replay(bus, request.run_id)]
    assert "RunPrepareFailed" in kinds


async def test_uploaded_bundle_with_push_policy_says_nothing_was_pushed(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    head = run_git(repo, "rev-parse", "HEAD")
    run_id = new_run_id()
    source = s.RepoSource(kind="bundle", location=source_bundle_name(run_id), commit=head)
    await upload_head(bus, repo, source)
    request = url_request("unused", run_id=run_id, repo=source, publish="push")
    report = await run_to_end(bus, request)
    assert report.status == "delivered", report.reason
    rec = (await bus.get_record(run_id))[0]  # type: ignore[index]
    d = rec.delivered
    assert d is not None and d.published == "object_store" and d.result_bundle
    assert "nothing was pushed" in (d.publish_note or "")
    assert d.base == head
