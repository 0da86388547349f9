"""The scripted agent's `probe` step finds what is there to find: a secret in a file it is
pointed at, a readable process environment, and a NATS server that takes a credential it
found. (The hostile suite relies on it seeing the open door when there is one.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from baro_shared.embedded import EmbeddedNats
from tests.scripted_agent.test_scripted_agent import run_agent

TOKEN = "probe-self-test-token-2f9a6c"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    return folder.resolve()


@pytest.fixture
def guarded_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = EmbeddedNats(store_dir=tmp_path / "nats", token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


def test_the_probe_reports_what_it_read_and_the_bus_it_got_into(
    workspace: Path, tmp_path: Path, guarded_server: EmbeddedNats
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "client.token").write_text(TOKEN + "\n")
    sleeper = subprocess.Popen(["sleep", "60"], env={"SLEEPER_PASSWORD": "readable-environment-77"})
    try:
        run = run_agent(
            workspace, {"default": {"steps": [{"probe": "report.json", "paths": [str(secrets)]}]}}
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run.returncode == 0, run.stderr
    report = json.loads((workspace / "report.json").read_text())

    assert report["paths"][str(secrets)]["files"] == {str(secrets / "client.token"): TOKEN + "\n"}
    seen = {p["pid"]: p for p in report["processes"]}
    assert seen[sleeper.pid]["environ"] == {"SLEEPER_PASSWORD": "readable-environment-77"}
    assert seen[sleeper.pid]["memory"] == "readable"  # root, or the same user: nothing stops it

    server = next(p for p in report["ports"] if p["port"] == guarded_server.port)
    assert server["kind"] == "nats" and server["auth_required"] is True
    outcomes = {a["with"]: a["accepted"] for a in server["attempts"]}
    assert outcomes["none"] is False
    assert True in outcomes.values(), server["attempts"]  # the token from the file got in
    monitor = next(p for p in report["ports"] if p["port"] == guarded_server.http_port)
    assert monitor["kind"] == "other"

    results = [e for e in run.events if e["type"] == "user"]
    assert "NATS server(s); report in" in results[0]["message"]["content"][0]["content"]


def test_a_probe_step_is_checked_like_every_step(workspace: Path) -> None:
    run = run_agent(workspace, {"default": {"steps": [{"probe": "r.json", "paths": "/etc"}]}})
    assert run.returncode == 2 and "paths must be a list" in run.stderr
    run = run_agent(workspace, {"default": {"steps": [{"probe": "r.json", "content": "x"}]}})
    assert run.returncode == 2 and "unknown keys" in run.stderr
