"""Partial results end to end: two parallel stories, one fails for good. The integrated
story's change is delivered as a checkpoint branch marked partial and never pushed; with
--no-checkpoint nothing is delivered as a branch and the work stays at the run's refs."""

from __future__ import annotations

import io
from pathlib import Path

from baro_cli.commands.cluster import render_detail
from baro_cli.runflow import render_summary
from baro_intake import api_views
from baro_merger.delivery import PARTIAL_TRAILER
from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import request_for, run_to_end

PLAN = [
    s.Story(id="S1", title="set A", write_surface=["a.py"]),
    s.Story(id="S2", title="set B", write_surface=["b.py"]),
]
SCRIPT = {
    "stories": [
        {"match": {"id": "S1"}, "steps": [{"write": "a.py", "content": "A = 2\n"}]},
        {
            "match": {"id": "S2"},
            "steps": [{"write": "b.py", "content": "B = 2\n"}, {"fail": "cannot build b"}],
        },
    ]
}


def partial_request(repo: Path, **kw: object) -> s.RunSubmitted:
    return request_for(
        repo, "set A and B to 2", SCRIPT, mode_request="parallel", plan=PLAN, replan=False, **kw
    )


async def test_a_partial_result_is_a_checkpoint_branch_or_no_branch(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", {"a.py": "A = 1\n", "b.py": "B = 1\n"})
    remote = tmp_path / "remote.git"
    run_git(tmp_path, "init", "--quiet", "--bare", str(remote))
    run_git(repo, "remote", "add", "origin", str(remote))

    report = await run_to_end(bus, partial_request(repo, publish="push"))
    assert report.status == "needs_attention", report.reason
    assert [(st["id"], st["status"]) for st in report.stories] == [
        ("S1", "integrated"), ("S2", "failed"),
    ]  # fmt: skip
    branch = report.branch
    assert branch == "baro/set-a-and-b-to-2-checkpoint"
    # exactly the integrated story's change, and the top commit says it is partial
    changed = run_git(repo, "diff", "--name-only", f"{report.base}..{branch}").split()
    assert changed == ["a.py"]
    marker = run_git(repo, "log", "-1", "--format=%B", branch)
    assert marker.startswith("baro checkpoint: a partial result, not the whole goal")
    assert "Integrated: S1. Not in it:\n- S2 failed: " in marker and "cannot build b" in marker
    assert marker.rstrip().endswith(PARTIAL_TRAILER)
    assert run_git(repo, "diff", "--name-only", f"{branch}^", branch) == ""
    # never published as if complete: nothing pushed, and every view says why
    assert run_git(remote, "for-each-ref") == ""
    assert report.publish_note == (
        f"{branch} is in your repository only: a partial result (a checkpoint) is never published"
    )
    assert report.checkpoint is not None and report.checkpoint["integrated"] == ["S1"]
    assert report.checkpoint["missing"][0].startswith("S2 failed: ")
    assert report.reason is not None and report.reason.startswith(
        f"a partial result, delivered as {branch} (a checkpoint, not published): S2 failed: "
    )
    assert [d["action"] for d in report.decisions][-1] == "checkpoint"
    summary = io.StringIO()
    render_summary(report, summary)
    assert f"branch: {branch}  (" in summary.getvalue()
    assert "a partial result (checkpoint), not published\npartial result, not in it:\n  - S2 " in (
        summary.getvalue()
    )
    got = await bus.get_record(report.run_id)
    assert got is not None
    view = api_views.detail(got[0])  # baro status and the API's run view
    assert view.checkpoint is not None and view.checkpoint.integrated == ["S1"]
    assert view.delivered is not None and view.delivered.partial
    status = io.StringIO()
    render_detail(view, status)
    assert "commit(s); a partial result (checkpoint), not published)" in status.getvalue()
    assert "partial result, not in it:\n  - S2 failed: " in status.getvalue()

    branches = run_git(repo, "branch", "--list", "baro/*")
    report = await run_to_end(bus, partial_request(repo, checkpoint=False))
    assert report.status == "needs_attention", report.reason
    assert report.branch is None
    assert run_git(repo, "branch", "--list", "baro/*") == branches, "no new branch"
    kept = f"refs/baro/{report.run_id}/integration"
    assert report.reason is not None and report.reason.startswith(
        f"a partial result, delivered as no branch (--no-checkpoint; kept at {kept}): S2 failed"
    )
    assert run_git(repo, "diff", "--name-only", f"{report.base}..{kept}").split() == ["a.py"]
    assert report.checkpoint is not None and report.checkpoint["delivered"] is False
