"""Whole local runs on the per-source caches: the agent's own git reads the history it
borrows, a second run of the same repository adds to the cache only what changed, and the
user's repository is only read until the result is delivered."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_shared import objectcache
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import bus, request_for, run_to_end, stack  # noqa: F401
from tests.sources.conftest import commit_file, git_dir_state, object_count, only_cache

pytestmark = pytest.mark.slow

FILES = {"app.py": "def greet():\n    return 'helo'\n", "README.md": "# app\n"}
# the agent looks at the history through git (as real agents do) and fixes the typo
SCRIPT = {
    "default": {
        "steps": [
            {"run": "git log --format=%s > history.txt && git status --porcelain >> history.txt"},
            {"write": "app.py", "content": "def greet():\n    return 'hello'\n"},
        ]
    }
}


async def test_agents_read_borrowed_history_and_a_second_run_adds_only_its_changes(
    bus: Bus,  # noqa: F811
    stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    for i in range(3):
        commit_file(repo, f"docs/{i}.md", f"doc {i}\n", message=f"docs {i}")
    objects_before = {k: v for k, v in git_dir_state(repo).items() if k.startswith(".git/objects/")}

    first = await run_to_end(bus, request_for(repo, "fix the typo in greet()", SCRIPT))
    assert first.status == "delivered", first.reason
    assert first.branch is not None
    history = run_git(repo, "show", f"{first.branch}:history.txt").splitlines()
    assert history == ["docs 2", "docs 1", "docs 0", "initial", "?? history.txt"], (
        "the agent's git reads the whole history, and the checkout is clean"
    )
    cache = only_cache(stack.sources_dir)
    integration = stack.integration_dir / f"{first.run_id}.git"
    assert object_count(integration) <= 8, "the run's own objects only, no copy of history"
    kept = {k: v for k, v in git_dir_state(repo).items() if k.startswith(".git/objects/")}
    assert set(objects_before.items()) <= set(kept.items()), "no object of the user's changed"

    commit_file(repo, "docs/3.md", "doc 3\n", message="docs 3")
    cached = object_count(cache.path)
    second = await run_to_end(bus, request_for(repo, "fix the typo in greet() again", SCRIPT))
    assert second.status == "delivered", second.reason
    assert object_count(cache.path) == cached + 4, "the new commit, two trees and a blob"
    assert [c.cache for c in objectcache.inventory(stack.sources_dir)] == [cache]
    runs = sorted(stack.integration_dir / f"{r.run_id}.git" for r in (first, second))
    assert sorted(objectcache.borrowers(cache)) == runs, "finished workspaces no longer borrow"
