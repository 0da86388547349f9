"""`baro run --plan-file`: a plan written by hand (or by another tool) runs as given, under
the same enforcement as a planner's, through the real CLI and its embedded NATS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_repo, run_git, snapshot

BARO = str(Path(sys.executable).parent / "baro")
FILES = {"a.py": "A = 1\n", "b.py": "B = 2\n"}


def baro(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BARO_STATE_DIR": str(cwd.parent / "state"),
        "BARO_CACHE_DIR": str(cwd.parent / "cache"),
    }
    env.pop("BARO_NATS_URL", None)
    return subprocess.run(
        [BARO, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def test_a_hand_written_plan_runs_with_enforcement(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "stories": [
                    {"id": "lib", "title": "Change a.py", "write_surface": ["a.py"]},
                    {"id": "use", "title": "Change b.py", "write_surface": ["b.py"]},
                    {"id": "both", "title": "Touch a.py again", "write_surface": ["a.py"]},
                ]
            }
        )
    )
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "stories": [
                    {"match": {"id": "lib"}, "steps": [{"append": "a.py", "content": "A2 = 2\n"}]},
                    {"match": {"id": "use"}, "steps": [{"append": "b.py", "content": "B2 = 3\n"}]},
                    {"match": {"id": "both"}, "steps": [{"append": "a.py", "content": "A3 = 3\n"}]},
                ]
            }
        )
    )
    before = snapshot(repo)
    out = baro(
        "run",
        "apply the hand-written plan",
        "--plan-file",
        str(plan),
        "--backend",
        "scripted",
        "--script",
        str(script),
        "--yes",
        "--json",
        cwd=repo,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "delivered", report["reason"]
    assert report["mode"] == "parallel"
    # no --mode was given: the plan's shape chose the mode, not a flag
    assert "mode: parallel (the plan's shape)" in out.stderr
    assert "(flag)" not in out.stderr
    assert report["mode_source"] == "the plan's shape"
    assert [st["id"] for st in report["stories"]] == ["lib", "use", "both"]
    assert {st["id"]: st["depends_on"] for st in report["stories"]}["both"] == ["lib"]
    assert report["enforcement"][0] == "the plan was given with the run (3 stories)"
    assert any(note.startswith("both now runs after lib") for note in report["enforcement"])
    assert run_git(repo, "show", f"{report['branch']}:a.py") == "A = 1\nA2 = 2\nA3 = 3"
    assert run_git(repo, "show", f"{report['branch']}:b.py") == "B = 2\nB2 = 3"
    assert snapshot(repo) == before


def test_a_bad_plan_file_stops_the_run_before_anything_starts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    plan = tmp_path / "plan.json"
    plan.write_text('{"stories": [{"id": "S1", "title": "x", "depends_on": ["S1"]}]}')
    out = baro("run", "do it", "--plan-file", str(plan), "--backend", "scripted", cwd=repo)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [f"baro: {plan}: story 'S1' depends on itself"]
    assert "refs/baro" not in run_git(repo, "for-each-ref")
    assert not (tmp_path / "state" / "nats").exists(), "no server was started"
