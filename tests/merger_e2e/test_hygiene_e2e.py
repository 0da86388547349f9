"""Artifacts nobody asked for never reach the delivered branch, and the run lists them."""

from __future__ import annotations

from pathlib import Path

from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo
from tests.e2e.conftest import request_for, run_to_end

from .conftest import refs_of, show, tree

FILES = {
    "a.py": "A = 0\n",
    "b.py": "B = 0\n",
    "package.json": '{"name": "app", "dependencies": {"left-pad": "1.3.0"}}\n',
    "package-lock.json": '{"lockfileVersion": 3, "packages": {}}\n',
    "README.md": "# app\n",
}


def story_steps(name: str, value: int) -> list[dict[str, object]]:
    """The asked-for change, plus what agents leave behind."""
    return [
        {"write": f"{name}.py", "content": f"{name.upper()} = {value}\n"},
        {"write": "prd.json", "content": f'{{"story": "{name}", "passes": true}}\n'},
        {"write": f"docs/adr/0001-{name}-decision.md", "content": "# ADR 1\n\nWe decided.\n"},
        {"write": "package-lock.json", "content": f'{{"lockfileVersion": 3, "by": "{name}"}}\n'},
        {"write": "progress.txt", "content": f"{name}: done\n"},
    ]


SCRIPT = {
    "stories": [
        {"match": {"id": "S1"}, "steps": story_steps("a", 1)},
        {"match": {"id": "S2"}, "steps": story_steps("b", 2)},
    ]
}
DROPPED = [
    "docs/adr/0001-a-decision.md",
    "docs/adr/0001-b-decision.md",
    "package-lock.json",
    "prd.json",
    "progress.txt",
]


async def test_parallel_stories_deliver_only_what_was_asked(
    bus: Bus, stack: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    request = request_for(repo, "update a.py and b.py", SCRIPT, mode_request="parallel")
    report = await run_to_end(bus, request)  # also checks the user's checkout is untouched

    assert report.status == "delivered", report.reason
    assert report.mode == "parallel" and len(report.stories) == 2
    assert report.branch is not None
    assert report.files_changed == ["a.py", "b.py"]
    assert tree(repo, report.branch) == sorted(FILES)
    assert show(repo, report.branch, "package-lock.json") == FILES["package-lock.json"]
    assert show(repo, report.branch, "a.py") == "A = 1\n"
    assert show(repo, report.branch, "b.py") == "B = 2\n"
    assert report.dropped_artifacts == DROPPED

    # nothing is lost: every dropped file stays reachable in its story's attempt ref
    refs = refs_of(repo, f"refs/baro/{request.run_id}/")
    for story, name in (("S1", "a"), ("S2", "b")):
        ref = f"refs/baro/{request.run_id}/{story}/1"
        assert ref in refs
        assert show(repo, ref, "prd.json") == f'{{"story": "{name}", "passes": true}}\n'
        assert show(repo, ref, f"docs/adr/0001-{name}-decision.md") is not None

    got = await bus.get_record(request.run_id)
    assert got is not None
    record = got[0]
    assert record.delivered is not None and record.delivered.dropped_artifacts == DROPPED
    by_story = {st.story.id: sorted(st.dropped_artifacts) for st in record.stories}
    assert by_story["S1"] == [p for p in DROPPED if "-b-" not in p]
    assert by_story["S2"] == [p for p in DROPPED if "-a-" not in p]

    # results are safely in the object store, so the workspaces are gone
    kept = stack.workspaces_dir / request.run_id
    assert not kept.exists() or list(kept.iterdir()) == []


async def test_a_story_that_names_the_file_keeps_it(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {
        "default": {
            "steps": [
                {"write": "docs/adr/0001-use-sqlite.md", "content": "# Use SQLite\n"},
                {"write": "prd.json", "content": "{}\n"},
            ]
        }
    }
    request = request_for(
        repo, "write an ADR for the storage choice in docs/adr", script, mode_request="focused"
    )
    report = await run_to_end(bus, request)
    assert report.status == "delivered", report.reason
    assert report.files_changed == ["docs/adr/0001-use-sqlite.md"]
    assert report.dropped_artifacts == ["prd.json"]
    assert isinstance(report.branch, str)
