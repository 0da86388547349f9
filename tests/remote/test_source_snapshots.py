"""`baro submit --repo` uploads: the first is the whole history, later ones only what came
since; a merger or runner (each with its own disk) downloads only what its cache lacks, on
a real nats-server object store and real git."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from baro_cli.commands.submit import repository_key, upload_head
from baro_merger.errors import SourceError
from baro_merger.integration import prepare_run
from baro_runner import workspace
from baro_shared import objectcache
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from baro_shared.sources import snapshot_name
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import run_to_end
from tests.remote.conftest import FILES, url_request
from tests.sources.conftest import commit_file, fsck

pytestmark = pytest.mark.nats


class Recording:
    """The object store as a merger or runner sees it, noting what it downloads."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.downloaded: list[str] = []

    async def get_file(self, name: str, path: Path) -> None:
        self.downloaded.append(name)
        await self.bus.get_file(name, path)

    async def object_description(self, name: str) -> str | None:
        return await self.bus.object_description(name)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Bus]:
    bus = await Bus.open(settings, "test-store")
    try:
        yield bus
    finally:
        await bus.close()


async def submit(bus: Bus, repo: Path, uploads: Path) -> s.RepoSource:
    """What `baro submit --repo` uploads for the repository's HEAD."""
    head = run_git(repo, "rev-parse", "HEAD")
    source = s.RepoSource(
        kind="bundle", location=snapshot_name(repository_key(repo), head), commit=head
    )
    await upload_head(bus, repo, source, uploads=uploads)
    return source


async def object_size(bus: Bus, name: str) -> int:
    return (await bus.objects.get_info(name)).size


async def story_workspace(
    machine: Path, source: s.RepoSource, store: Recording, tmp: Path
) -> workspace.Workspace:
    assert source.commit is not None
    return await workspace.prepare(
        machine / "workspaces" / "run" / f"S{len(store.downloaded)}-1",
        source,
        source.commit,
        sources=machine / "sources",
        store=store,
        downloads=tmp,
    )


async def test_later_uploads_carry_only_new_commits_and_caches_fetch_only_what_they_lack(
    store: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", {**FILES, "big.txt": "history\n" * 50_000})
    for i in range(3):
        commit_file(repo, "big.txt", f"version {i}\n" * 50_000)
    uploads = tmp_path / "state" / "uploads"
    first = await submit(store, repo, uploads)
    assert await store.object_description(first.location) == "baro source snapshot; full"
    commit_file(repo, "app.py", "def greet():\n    return 'hi'\n")
    second = await submit(store, repo, uploads)
    assert await store.object_description(second.location) == (
        f"baro source snapshot; against {first.commit}"
    )
    assert await object_size(store, second.location) < await object_size(store, first.location) / 10
    again = await submit(store, repo, uploads)  # the same HEAD: nothing is uploaded
    assert again.location == second.location

    # runner A saw the first run; runner B never saw the repository
    seen, fresh = Recording(store), Recording(store)
    await story_workspace(tmp_path / "runner-a", first, seen, tmp_path / "dl-a")
    seen.downloaded.clear()
    ws_a = await story_workspace(tmp_path / "runner-a", second, seen, tmp_path / "dl-a")
    assert seen.downloaded == [second.location], "a warm cache takes only the increment"
    ws_b = await story_workspace(tmp_path / "runner-b", second, fresh, tmp_path / "dl-b")
    assert fresh.downloaded == [first.location, second.location], "a new runner pays once"
    for ws in (ws_a, ws_b):
        fsck(ws.repo)
        assert run_git(ws.repo, "show", "HEAD:app.py") == "def greet():\n    return 'hi'"
    fresh.downloaded.clear()
    await story_workspace(tmp_path / "runner-b", second, fresh, tmp_path / "dl-b")
    assert fresh.downloaded == [], "the cache has the commit: nothing is downloaded"

    # the merger, on a disk of its own, builds its cache the same way
    merger = Recording(store)
    prepared = await prepare_run(
        tmp_path / "merger" / "integration", "r1", second, store=merger, scratch=tmp_path / "m"
    )
    assert prepared.base == second.commit and merger.downloaded == [
        first.location,
        second.location,
    ]
    assert len(objectcache.caches(tmp_path / "merger" / "sources")) == 1


async def test_an_expired_upload_makes_the_next_one_complete(store: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    uploads = tmp_path / "state" / "uploads"
    first = await submit(store, repo, uploads)
    commit_file(repo, "app.py", "v2\n")
    second = await submit(store, repo, uploads)
    await store.objects.delete(first.location)  # what BARO_OBJECTS_MAX_AGE_S does

    runner = Recording(store)
    with pytest.raises(workspace.WorkspaceError, match="no longer in the object store"):
        await story_workspace(tmp_path / "runner", second, runner, tmp_path / "dl")
    with pytest.raises(SourceError, match="no longer in the object store"):
        await prepare_run(tmp_path / "merger" / "integration", "r1", second, store=runner)

    commit_file(repo, "app.py", "v3\n")
    third = await submit(store, repo, uploads)
    assert await store.object_description(third.location) == "baro source snapshot; full"
    runner.downloaded.clear()
    ws = await story_workspace(tmp_path / "runner", third, runner, tmp_path / "dl")
    assert runner.downloaded == [third.location]
    fsck(ws.repo)


@pytest.mark.slow
async def test_two_runs_from_uploads_of_one_repository_are_delivered(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    uploads = tmp_path / "state" / "uploads"
    for n in range(2):
        source = await submit(bus, repo, uploads)
        report = await run_to_end(bus, url_request("unused", repo=source))
        assert report.status == "delivered", report.reason
        assert report.base == source.commit
        commit_file(repo, "README.md", f"# app {n}\n")
    caches = objectcache.inventory(stack.sources_dir)
    assert [c.source for c in caches] == [f"bundle sources/{repository_key(repo)}"]
