"""The story gate's checks and the review loop's decisions, as every view shows them: the
summary, --json, the API and the pull request."""

from __future__ import annotations

import io

import msgspec

from baro_cli.runflow import RunReport, render_summary, report_from_record
from baro_intake import api_views
from baro_merger.prbody import pr_body
from baro_shared import schemas as s
from tests.merger.test_prbody import record

CHECKS = [
    s.CheckResult(command="pytest -q", origin="detected", result="passed", exit_code=0),
    s.CheckResult(command="cargo test", origin="detected", result="skipped",
                  note="cargo is not installed"),
]  # fmt: skip
DECISION = s.Decision(
    at=1005.0, action="repair", reason="attempt 1: its checks failed; a repair turn",
    story_id="S1", attempt=2,
)  # fmt: skip


def reviewed() -> s.RunRecord:
    rec = record()
    first = rec.stories[0]
    first.result = s.StoryResult(attempt=2, status="success", checks=CHECKS)
    rec.decisions = [DECISION]
    return rec


def test_the_api_shows_each_check_and_decision() -> None:
    detail = api_views.detail(reviewed())
    checks = detail.stories[0].checks
    assert [(c.command, c.origin, c.result, c.exit_code) for c in checks] == [
        ("pytest -q", "detected", "passed", 0),
        ("cargo test", "detected", "skipped", None),
    ]
    assert checks[1].note == "cargo is not installed" and detail.stories[1].checks == []
    (decision,) = detail.decisions
    assert (decision.action, decision.story_id, decision.attempt) == ("repair", "S1", 2)


def test_the_summary_and_json_show_each_check_and_decision() -> None:
    report = RunReport(run_id="r1", status="delivered")
    report_from_record(report, reviewed())
    out = io.StringIO()
    render_summary(report, out)
    text = out.getvalue()
    assert "S1 check `pytest -q`: passed, exit code 0" in text
    assert "S1 check `cargo test`: skipped — cargo is not installed" in text
    assert "review loop: S1 repair: attempt 1: its checks failed; a repair turn" in text
    assert (
        "review loop spent: 1 repair turn(s) (at most one per story and kind), 0 retry(ies), "
        "0 of 3 replanning question(s)" in text
    )
    as_json = msgspec.json.decode(msgspec.json.encode(report.stories))
    assert as_json[0]["checks"][1] == msgspec.structs.asdict(CHECKS[1])
    assert report.decisions == [msgspec.structs.asdict(DECISION)]


def test_the_pull_request_lists_the_story_checks_and_the_review_loop() -> None:
    body = pr_body(
        reviewed(), commits=2, files_changed=["a.py"], dropped=[], verify=None,
        verify_command=None, now=1100.0,
    )  # fmt: skip
    assert "## Story checks" in body
    assert "| S1 | `pytest -q` | passed | 0 |" in body
    assert "| S1 | `cargo test` | skipped (cargo is not installed) | - |" in body
    assert "- S1 **repair**: attempt 1: its checks failed; a repair turn" in body
