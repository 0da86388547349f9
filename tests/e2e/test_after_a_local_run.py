"""After `baro run` has ended nothing serves its history; `baro runs`, `baro status` (and
`baro logs`) read this machine's store themselves, as the user would type them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")
FIX = {
    "default": {
        "steps": [
            {"text": "Fixing the greeting."},
            {"write": "hello.py", "content": "print('hello, world')\n"},
            {"usage": {"input": 1000, "output": 100}},
        ]
    }
}


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BARO_", "NATS_"))}
    env.update({"BARO_STATE_DIR": str(home / "state"), "BARO_CACHE_DIR": str(home / "cache")})
    return env


def baro(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BARO, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def finished_run(tmp_path: Path) -> tuple[dict[str, str], str]:
    """A local run that has ended; its server is gone with it."""
    env = env_for(tmp_path)
    repo = make_repo(tmp_path / "repo", {"hello.py": "print('helo')\n"})
    script = tmp_path / "script.json"
    script.write_text(json.dumps(FIX))
    ran = baro(
        env, "run", "fix the typo in hello.py", "--backend", "scripted", "--script", str(script),
        "--yes", "--json", cwd=repo,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    assert not list((tmp_path / "state" / "nats" / "ports").glob("*.ports")), "no server left"
    return env, run_id


def test_runs_and_status_work_with_no_server_running(
    finished_run: tuple[dict[str, str], str],
) -> None:
    env, run_id = finished_run
    listed = baro(env, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["run_id"] for r in json.loads(listed.stdout)["runs"]] == [run_id]
    table = baro(env, "runs")
    assert run_id in table.stdout and "delivered" in table.stdout

    status = baro(env, "status", run_id)
    assert status.returncode == 0, status.stderr
    assert f"run {run_id}: delivered" in status.stdout
    assert "branch: baro/fix-the-typo-in-hello-py" in status.stdout
    view = json.loads(baro(env, "status", run_id, "--json").stdout)
    assert view["state"] == "delivered"
    assert view["stories"][0]["status"] == "integrated"

    unknown = baro(env, "status", "20200101-000000-abcdef")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "baro: no run '20200101-000000-abcdef' on this machine: list the runs there with baro runs"
    )
    # reading served the store only while it read
    assert not list((Path(env["BARO_STATE_DIR"]) / "nats" / "ports").glob("*.ports")), (
        "the reader stopped its server"
    )


def test_a_machine_without_runs_says_so(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert baro(env, "runs").stdout.strip() == "no runs on this machine"
    missing = baro(env, "status", "20200101-000000-abcdef")
    assert missing.returncode == 2
    assert "no run '20200101-000000-abcdef' on this machine" in missing.stderr
    assert not (tmp_path / "state" / "nats").exists(), "nothing was created to say it"
