"""The run gate end to end: the run's checks on the integrated result, a repair story when
they fail, and a gate whose checks could not run reported as unknown."""

from __future__ import annotations

import io
from pathlib import Path

from baro_cli.runflow import render_summary
from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay, request_for, run_to_end

CHECK = "import app\nassert app.VALUE == 2, app.VALUE\n"


async def test_a_failing_run_gate_gets_a_repair_story_and_delivers(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(
        tmp_path / "user",
        {
            "app.py": "VALUE = 1\n",
            "check.py": CHECK,
            ".baro.toml": '[verify]\nrun = ["python3 check.py"]\n',
        },
    )
    script = {
        "stories": [
            {  # the repair story is told what failed on the integrated result
                "match": {"id": "R1", "prompt": "AssertionError: 3"},
                "steps": [{"write": "app.py", "content": "VALUE = 2\n"}],
            },
            {"match": {"id": "S1"}, "steps": [{"write": "app.py", "content": "VALUE = 3\n"}]},
        ]
    }
    request = request_for(repo, "set VALUE to 2 in app.py", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert run_git(repo, "show", f"{report.branch}:app.py") == "VALUE = 2"
    gates = [e for e in await replay(bus, request.run_id) if isinstance(e, s.RunGateChecked)]
    assert [[c.result for c in g.checks] for g in gates] == [["failed"], ["passed"]]
    assert "AssertionError: 3" in gates[0].checks[0].output
    assert [d["action"] for d in report.decisions] == ["run_repair"]
    assert report.verify == "passed"
    assert [(c["command"], c["result"], c["exit_code"]) for c in report.run_checks] == [
        ("python3 check.py", "passed", 0)
    ]


async def test_a_run_gate_no_check_could_run_is_unknown(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "user",
        {"app.py": "VALUE = 1\n", ".baro.toml": '[verify]\nrun = [["baro-no-such-tool", "x"]]\n'},
    )
    script = {"default": {"steps": [{"write": "app.py", "content": "VALUE = 2\n"}]}}
    request = request_for(repo, "set VALUE to 2 in app.py", script, mode_request="focused")
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    assert report.verify == "skipped"
    (check,) = report.run_checks
    assert check["result"] == "skipped" and "cannot start baro-no-such-tool" in check["note"]
    out = io.StringIO()
    render_summary(report, out)
    assert "run checks: unknown (no check could judge the result; skipped is not a pass)" in (
        out.getvalue()
    )
