"""What the line-based progress says about events that carry notes for the user."""

from __future__ import annotations

import io

from baro_cli import runflow
from baro_shared import schemas as s

RUN = "20260501-101500-abcdef"


async def test_what_preparing_the_run_noted_is_shown_and_in_the_summary() -> None:
    request = s.RunSubmitted(
        run_id=RUN, goal="fix a.py", repo=s.RepoSource(kind="url", location="u")
    )
    report = runflow.RunReport(run_id=RUN)
    out = io.StringIO()
    progress = runflow.Progress(out)
    note = "commits are not signed: the signing key is not on this machine"
    prepared = s.RunPrepared(run_id=RUN, base_commit="base", notes=[note])
    over = await runflow._on_event(None, request, prepared, report, progress, None)  # type: ignore[arg-type]
    assert not over
    assert f"note: {note}" in out.getvalue()
    assert report.as_json()["notes"] == [note]
