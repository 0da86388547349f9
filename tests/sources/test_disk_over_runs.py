"""Disk over many runs of one repository: what each run leaves is bounded, not added up.

Runs one after another on one machine (the whole stack in process, like ``baro run``),
the user committing between them as they would. After each run, what baro keeps is
counted: integration repositories, workspace directories, refs in the source cache and
in the user's repository, the run's objects in the object store, and the bytes under
``BARO_CACHE_DIR``. With ``BARO_KEEP_RUNS=1`` none of it may grow past the newest finished
run plus the one at hand.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from baro_shared import objectcache
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import bus, request_for, run_to_end, stack  # noqa: F401
from tests.sources.conftest import commit_file, only_cache

pytestmark = pytest.mark.slow

RUNS = 5
FILES = {"app.py": "def greet():\n    return 'helo'\n", "README.md": "# app\n"}
# every run's first attempt fails, so a failed workspace is kept, as a user would see it
SCRIPT = {
    "stories": [
        {"attempts": [1], "steps": [{"fail": "first try"}]},
        {"steps": [{"write": "app.py", "content": "def greet():\n    return 'hello'\n"}]},
    ],
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"keep_runs": 1})


def run_dirs(settings: Settings) -> list[str]:
    root = settings.workspaces_dir
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def integration_repos(settings: Settings) -> list[str]:
    return sorted(p.name.removesuffix(".git") for p in settings.integration_dir.glob("*.git"))


def user_runs(repo: Path) -> set[str]:
    refs = run_git(repo, "for-each-ref", "--format=%(refname)", "refs/baro/").splitlines()
    return {ref.split("/")[2] for ref in refs}


def bytes_under(path: Path) -> int:
    return objectcache.disk_usage(path)[0]


async def object_runs(store: Bus) -> set[str]:
    names = [info.name for info in await store.objects.list(ignore_deletes=True)]
    return {name.split("/")[1] for name in names if name.startswith("runs/")}


async def test_what_runs_leave_is_bounded_by_keep_runs(
    bus: Bus,  # noqa: F811
    stack: Settings,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(objectcache, "KEPT_FETCHED", 2)
    repo = make_repo(tmp_path / "user", FILES)
    finished: list[str] = []
    sizes: list[int] = []
    for n in range(RUNS):
        commit_file(repo, f"notes/{n}.md", f"note {n}\n", message=f"note {n}")
        report = await run_to_end(
            bus, request_for(repo, f"fix the typo in greet() ({n})", SCRIPT), timeout=120
        )
        assert report.status == "delivered", report.reason
        finished.append(report.run_id)
        kept = set(finished[-2:])  # the newest finished run and the one at hand

        assert set(integration_repos(stack)) <= kept
        assert report.run_id in run_dirs(stack), "its failed first attempt's workspace is kept"
        assert set(run_dirs(stack)) <= kept, "failed workspaces of older runs are gone"
        assert user_runs(repo) <= kept, "refs/baro/<run>/ of older delivered runs are gone"
        assert await object_runs(bus) <= kept, "older local runs' objects are deleted"
        cache = only_cache(stack.sources_dir)
        fetched = run_git(cache.path, "for-each-ref", objectcache.FETCHED_PREFIX).splitlines()
        assert len(fetched) <= 2
        assert not list((cache.path / "refs" / "baro" / "fetched").glob("*")), "packed"
        sizes.append(bytes_under(stack.cache_dir))

    # every result is still the user's
    assert len(run_git(repo, "branch", "--list", "baro/*").splitlines()) == RUNS
    # from the third run on, a run adds only its own few objects: nothing piles up
    per_run = [later - earlier for earlier, later in itertools.pairwise(sizes[2:])]
    assert all(grown <= 256 << 10 for grown in per_run), per_run
