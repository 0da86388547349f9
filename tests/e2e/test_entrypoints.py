"""Every shipped entrypoint runs and does what it says (not just exits 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from baro_shared.embedded import EmbeddedNats, free_port

BIN = Path(sys.executable).parent
SERVICES = ("intake", "planner", "conductor", "agent-runner", "merger")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy()
    )


def test_console_scripts_are_installed_and_answer_help() -> None:
    baro = run(str(BIN / "baro"), "--help")
    assert baro.returncode == 0
    for command in ("run", "up", "service", "demo"):
        assert command in baro.stdout
    agent = run(str(BIN / "baro-scripted-agent"), "--help")
    assert agent.returncode == 0 and "test" in agent.stdout.lower()


def test_python_dash_m_entrypoint() -> None:
    out = run(sys.executable, "-m", "baro_cli", "--help")
    assert out.returncode == 0 and "service" in out.stdout


@pytest.mark.parametrize("name", SERVICES)
def test_service_help(name: str) -> None:
    out = run(str(BIN / "baro"), "service", name, "--help")
    assert out.returncode == 0 and "NATS" in out.stdout


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_reports_ready_and_stops_on_sigterm(
    name: str, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "BARO_NATS_URL": nats_server.url,
        "BARO_HTTP_PORT": str(port),
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
        "BARO_STATE_DIR": str(tmp_path / "state"),
    }
    proc = subprocess.Popen(
        [str(BIN / "baro"), "service", name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                    ready = resp.status == 200
            except OSError:
                pass
            if ready:
                break
            time.sleep(0.1)
        assert ready, (
            f"{name} never became ready: {proc.stderr.read() if proc.poll() is not None else ''}"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            body = resp.read().decode()
        assert f'baro_service_up{{service="{name}"}} 1.0' in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unknown_service_is_a_clear_error() -> None:
    out = run(str(BIN / "baro"), "service", "nope")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "baro: unknown service 'nope': choose one of intake, planner, conductor, agent-runner, merger"
    ]


def test_demo_delivers_a_branch(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
        "BARO_STATE_DIR": str(tmp_path / "state"),
        "TMPDIR": str(tmp_path),
    }
    out = run(str(BIN / "baro"), "demo", env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "delivered" in out.stdout
    assert "branch: baro/" in out.stdout
    assert "countdown.py | 2 +-" in out.stdout
    assert "?? NOTES.txt" in out.stdout
