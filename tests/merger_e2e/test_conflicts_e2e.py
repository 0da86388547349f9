"""Parallel stories whose changes conflict: re-dispatched once, then needs_attention.

The plan's write surfaces are disjoint (a.py, b.py, c.py), so the stories run side by
side; the agents also edit shared.py, outside their surfaces, which is what makes their
results conflict at integration. The runs use the ``warn`` surface policy: under
``strict`` (the parallel default) those edits would be left out before any merge
(tests/hostile covers that).
"""

from __future__ import annotations

from pathlib import Path

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo
from tests.e2e.conftest import replay, request_for, run_to_end

from .conftest import refs_of, show

FILES = {"a.py": "A = 0\n", "b.py": "B = 0\n", "c.py": "C = 0\n", "shared.py": "OWNER = None\n"}


def steps(unit: str, shared: str, sleep: float = 0.0) -> list[dict[str, object]]:
    return [
        {"sleep": sleep},
        {"write": f"{unit}.py", "content": f"{unit.upper()} = 1\n"},
        {"write": "shared.py", "content": shared},
    ]


async def test_a_conflicting_story_is_rerun_once_on_the_new_head(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    script = {
        "stories": [
            {"match": {"id": "S1"}, "steps": steps("a", "OWNER = 'S1'\n")},
            {"match": {"id": "S2"}, "attempts": [1], "steps": steps("b", "OWNER = 'S2'\n", 3)},
            {"match": {"id": "S2"}, "steps": steps("b", "OWNER = 'S1 and S2'\n")},
        ]
    }
    request = request_for(
        repo, "update a.py and b.py", script, mode_request="parallel", surface="warn"
    )
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    events = await replay(bus, request.run_id)
    conflicts = [e for e in events if isinstance(e, s.MergeConflict)]
    assert [(c.story_id, c.attempt, c.paths) for c in conflicts] == [("S2", 1, ["shared.py"])]
    rerun = [e for e in events if isinstance(e, s.StoryStarted) and e.story_id == "S2"]
    assert [e.attempt for e in rerun] == [1, 2]
    assert report.branch is not None
    assert show(repo, report.branch, "shared.py") == "OWNER = 'S1 and S2'\n"
    assert show(repo, report.branch, "a.py") == "A = 1\n"
    assert show(repo, report.branch, "b.py") == "B = 1\n"

    # both attempts of the re-run story are kept
    refs = refs_of(repo, f"refs/baro/{request.run_id}/S2/")
    assert sorted(refs) == [f"refs/baro/{request.run_id}/S2/1", f"refs/baro/{request.run_id}/S2/2"]
    assert show(repo, f"refs/baro/{request.run_id}/S2/1", "shared.py") == "OWNER = 'S2'\n"


async def test_a_second_conflict_needs_attention_and_keeps_every_attempt(
    bus: Bus, tmp_path: Path
) -> None:
    """S1 integrates first; S2 and S3 conflict and are re-run on S1's head. S2's re-run
    integrates first, so S3's re-run conflicts again: S3 is not run a third time."""
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    script = {
        "stories": [
            {"match": {"id": "S1"}, "steps": steps("a", "OWNER = 'S1'\n")},
            {"match": {"id": "S2"}, "attempts": [1], "steps": steps("b", "OWNER = 'S2'\n", 2)},
            {"match": {"id": "S2"}, "steps": steps("b", "OWNER = 'S2 again'\n", 4)},
            {"match": {"id": "S3"}, "attempts": [1], "steps": steps("c", "OWNER = 'S3'\n", 2)},
            {"match": {"id": "S3"}, "steps": steps("c", "OWNER = 'S3 again'\n", 10)},
        ]
    }
    request = request_for(
        repo,
        "update a.py, b.py and c.py",
        script,
        mode_request="parallel",
        surface="warn",
        limits=s.Limits(parallelism=3, story_timeout_s=120, stall_timeout_s=60),
    )
    report = await run_to_end(bus, request, timeout=180)

    assert report.status == "needs_attention", report.reason
    got = await bus.get_record(request.run_id)
    assert got is not None
    stories = {st.story.id: st for st in got[0].stories}
    assert stories["S1"].status == "integrated"
    assert stories["S2"].status == "integrated" and stories["S2"].attempt == 2
    s3 = stories["S3"]
    assert s3.status == "conflict" and s3.attempt == 2 and s3.conflicts == 2
    assert s3.conflict_paths == ["shared.py"]
    where = f"refs/baro/{request.run_id}/S3/2"
    assert s3.reason == f"conflicts again in shared.py; its commits are at {where}"
    assert report.reason is not None and "S3 conflict" in report.reason

    # nothing lost: both attempts of both re-run stories, with their work, in the user's repo
    prefix = f"refs/baro/{request.run_id}/"
    refs = refs_of(repo, prefix)
    for story in ("S1/1", "S2/1", "S2/2", "S3/1", "S3/2"):
        assert prefix + story in refs, story
    assert show(repo, prefix + "S3/1", "shared.py") == "OWNER = 'S3'\n"
    assert show(repo, prefix + "S3/2", "shared.py") == "OWNER = 'S3 again'\n"
    assert show(repo, prefix + "S3/2", "c.py") == "C = 1\n"

    # what was integrated is delivered as a partial result
    assert report.branch is not None
    assert show(repo, report.branch, "shared.py") == "OWNER = 'S2 again'\n"
    assert show(repo, report.branch, "c.py") == "C = 0\n"
