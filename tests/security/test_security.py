"""Credentials stay baro's: authenticated NATS, clean agent environments, no shell for
goals, paths confined to the repository, secrets redacted from events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import msgspec
import nats.errors
import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus, BusRefused
from baro_shared.embedded import EmbeddedNats, free_port
from baro_shared.plan import PlanError, plan_from_json, validate_plan
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import request_for, run_to_end, stack  # noqa: F401  (fixture)

BARO = str(Path(sys.executable).parent / "baro")
SECRET_TOKEN = "nats-secret-token-0123456789"


async def _connect(settings: Settings) -> None:
    bus = await Bus.open(settings, "credentials-test")
    await bus.close()


def test_services_need_the_nats_credentials(tmp_path: Path) -> None:
    server = EmbeddedNats(store_dir=tmp_path / "nats", token=SECRET_TOKEN).start()
    try:
        # refused at once, not tried again until a timeout, and said as what it is
        with pytest.raises(BusRefused, match="refused baro's credentials"):
            asyncio.run(_connect(Settings(nats_url=server.url, connect_timeout_s=30)))
        wrong = Settings(nats_url=server.url, nats_token="wrong", connect_timeout_s=30)
        with pytest.raises(BusRefused, match="BARO_NATS_TOKEN"):
            asyncio.run(_connect(wrong))
        asyncio.run(_connect(Settings(nats_url=server.url, nats_token=SECRET_TOKEN)))
        http_port = free_port()
        readyz = f"http://127.0.0.1:{http_port}/readyz"
        env = {
            **os.environ,
            "BARO_NATS_URL": server.url,
            "BARO_NATS_TOKEN": SECRET_TOKEN,
            "BARO_HTTP_PORT": str(http_port),
            "BARO_CACHE_DIR": str(tmp_path / "c"),
            "BARO_STATE_DIR": str(tmp_path / "s"),
        }
        proc = subprocess.Popen(
            [BARO, "service", "planner"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 30
            ready = False
            while time.monotonic() < deadline and not ready and proc.poll() is None:
                try:
                    with urllib.request.urlopen(readyz, timeout=1) as resp:
                        ready = resp.status == 200
                except OSError:
                    time.sleep(0.2)
            assert ready, "a service with the token did not become ready"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        denied = subprocess.run(
            [BARO, "service", "planner"],
            env={**env, "BARO_NATS_TOKEN": "wrong"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert denied.returncode == 2
        assert (
            "Traceback" not in denied.stderr and SECRET_TOKEN not in denied.stderr + denied.stdout
        )
        complaint = denied.stderr.strip().splitlines()[-1]
        assert "refused baro's credentials (Authorization Violation)" in complaint
        assert "BARO_NATS_TOKEN" in complaint and "is NATS running" not in complaint
    finally:
        server.stop()


async def test_agents_get_no_baro_secrets_and_goals_never_reach_a_shell(
    stack: Settings,  # noqa: F811  (the fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BARO_NATS_PASSWORD", "super-secret-nats-password")
    monkeypatch.setenv("BARO_API_TOKEN", "super-secret-api-token")
    marker = tmp_path / "pwned"
    bus = await Bus.open(stack, "security-test", ensure=False)
    try:
        repo = make_repo(tmp_path / "user", {"app.py": "x = 1\n"})
        goal = f"fix app.py $(touch {marker}) `touch {marker}`; touch {marker}"
        script = {
            "default": {
                "steps": [
                    {"run": "env | sort > agent-env.txt"},
                    {"write": "app.py", "content": "x = 2\n"},
                ]
            }
        }
        report = await run_to_end(bus, request_for(repo, goal, script))
        assert report.status == "delivered", report.reason
        seen_env = run_git(repo, "show", f"{report.branch}:agent-env.txt")
        assert "super-secret" not in seen_env
        assert not any(line.startswith(("BARO_NATS", "BARO_API")) for line in seen_env.splitlines())
        assert "CI=1" in seen_env and "GIT_TERMINAL_PROMPT=0" in seen_env
        assert not marker.exists(), "the goal text reached a shell"
    finally:
        await bus.close()


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../outside.py", "src/../../x", ".git/config", ".git/hooks/post-commit"]
)
def test_write_surfaces_are_confined_to_the_repository(path: str) -> None:
    with pytest.raises(PlanError):
        validate_plan(
            plan_from_json(
                json.dumps({"stories": [{"id": "S1", "title": "t", "write_surface": [path]}]})
            )
        )


async def test_secrets_in_agent_output_are_redacted_from_events(
    stack: Settings,  # noqa: F811  (the fixture)
    tmp_path: Path,
) -> None:
    key = "sk-ant-api03-" + "Q" * 40
    bus = await Bus.open(stack, "security-test", ensure=False)
    try:
        repo = make_repo(tmp_path / "user", {"app.py": "x = 1\n"})
        script = {
            "default": {
                "steps": [
                    {"text": f"found ANTHROPIC_API_KEY={key} in the env"},
                    {"run": f"echo token: {key}"},
                    {"write": "app.py", "content": "x = 2\n"},
                ]
            }
        }
        request = request_for(repo, "fix app.py", script)
        report = await run_to_end(bus, request)
        assert report.status == "delivered", report.reason
        sub = await bus.js.subscribe(f"baro.agent.{request.run_id}.>", ordered_consumer=True)
        payloads = []
        try:
            while True:
                msg = await sub.next_msg(timeout=3)
                payloads.append(msg.data.decode())
        except nats.errors.TimeoutError:
            pass
        finally:
            await sub.unsubscribe()
        assert payloads, "no agent events were published"
        assert not any(key in p for p in payloads)
        assert any("[redacted]" in p for p in payloads)
        events = [msgspec.json.decode(p.encode(), type=s.AgentEventMsg) for p in payloads]
        assert any(isinstance(e.event, s.AssistantText) for e in events)
    finally:
        await bus.close()
