"""Every series in docs/metrics.md is exposed by the service that owns it, after a real run.

The five services run as separate `baro service NAME` processes (as in a cluster), on a
real nats-server, with the scripted agent; each one's /metrics is scraped after a goal
was delivered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats, free_port
from baro_shared.settings import Settings
from tests.conftest import make_repo
from tests.e2e.conftest import request_for, run_to_end
from tests.metrics.catalogue import SERVICES, Series, documented_series
from tests.metrics.exposition import Exposition, parse

pytestmark = [pytest.mark.slow, pytest.mark.nats]

BIN = Path(sys.executable).parent
ID_LABELS = {"run", "run_id", "story", "story_id", "branch", "repo", "runner", "runner_id"}
API_TOKEN = "metrics-test-token-0123456789abcdef"
FILES = {"app.py": "def greet():\n    return 'helo'\n", "README.md": "# app\n"}
SCRIPT = {
    "default": {
        "steps": [
            {"write": "app.py", "content": "def greet():\n    return 'hello'\n"},
            {"write": "progress.md", "content": "- fixed greet\n"},  # an artifact to drop
            {"usage": {"input": 500, "cached": 300, "output": 80, "cost_usd": 0.375}},
        ]
    }
}


@dataclass
class ServiceProcess:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    api_port: int | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def scrape(self) -> Exposition:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
            return parse(resp.read().decode())

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False


@pytest.fixture
def services(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    started: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            port = free_port()
            log = tmp_path / f"{name}.log"
            env = {
                **os.environ,
                "BARO_NATS_URL": nats_server.url,
                "BARO_HTTP_PORT": str(port),
                # each service has its own disk, as each pod has
                "BARO_CACHE_DIR": str(tmp_path / name / "cache"),
                "BARO_STATE_DIR": str(tmp_path / name / "state"),
                "PROMETHEUS_DISABLE_CREATED_SERIES": "True",
            }
            if name == "intake":  # as in the cluster: the intake serves the HTTP API
                env["BARO_API_PORT"] = str(free_port())
                env["BARO_API_TOKEN"] = API_TOKEN
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [str(BIN / "baro"), "service", name], env=env, stdout=out, stderr=out
                )
            api_port = int(env["BARO_API_PORT"]) if "BARO_API_PORT" in env else None
            started[name] = ServiceProcess(name, port, proc, log, api_port)
        deadline = time.monotonic() + 90
        waiting = set(started)
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                svc = started[name]
                assert svc.proc.poll() is None, f"{name} exited: {svc.log.read_text()[-2000:]}"
                if svc.is_ready():
                    waiting.discard(name)
            time.sleep(0.2)
        assert not waiting, f"never ready: {sorted(waiting)}"
        yield started
    finally:
        for svc in started.values():
            if svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        for svc in started.values():
            try:
                svc.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
                svc.proc.wait()


async def _deliver_one_goal(nats_url: str, tmp_path: Path) -> str:
    bus = await Bus.open(Settings(nats_url=nats_url), "metrics-test", ensure=False)
    try:
        repo = make_repo(tmp_path / "user", FILES)
        request = request_for(repo, "fix the typo in greet() in app.py", SCRIPT)
        report = await run_to_end(bus, request, timeout=180)
        assert report.status == "delivered", report.reason
        return request.run_id
    finally:
        await bus.close()


def _read_the_run_through_the_api(intake: ServiceProcess, run_id: str) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{intake.api_port}/v1/runs/{run_id}",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


async def _scrape_all(services: dict[str, ServiceProcess]) -> dict[str, Exposition]:
    scrapes = await asyncio.gather(*(asyncio.to_thread(s.scrape) for s in services.values()))
    return dict(zip(services, scrapes, strict=True))


def _settled(scrapes: dict[str, Exposition]) -> bool:
    """The run's last effects are visible (the merger and runner count after publishing)."""
    return (
        scrapes["conductor"].value("baro_runs_finished_total", status="delivered") >= 1
        and scrapes["merger"].value("baro_merger_deliveries_total") >= 1
        and scrapes["agent-runner"].value("baro_story_attempts_total") >= 1
    )


async def test_every_documented_series_is_exposed_by_its_owner(
    services: dict[str, ServiceProcess], nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    documented = documented_series()
    run_id = await _deliver_one_goal(nats_server.url, tmp_path)
    await asyncio.to_thread(_read_the_run_through_the_api, services["intake"], run_id)
    deadline = time.monotonic() + 30
    scrapes = await _scrape_all(services)
    while not _settled(scrapes) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        scrapes = await _scrape_all(services)

    problems = _ownership_problems(documented, scrapes)
    problems += _label_problems(documented, scrapes)
    assert not problems, "\n".join(problems)

    _assert_the_run_was_counted(scrapes)


def _ownership_problems(documented: dict[str, Series], scrapes: dict[str, Exposition]) -> list[str]:
    problems = []
    for series in documented.values():
        for service, scrape in scrapes.items():
            declared = scrape.types.get(series.name)
            if service in series.owners:
                if declared is None:
                    problems.append(f"{series.name}: not exposed by its owner {service}")
                elif declared != series.type:
                    problems.append(
                        f"{series.name}: documented as {series.type}, {service} says {declared}"
                    )
            elif declared is not None:
                problems.append(f"{series.name}: owned by {series.owner} but {service} exposes it")
    for service, scrape in scrapes.items():
        for name in scrape.types:
            if (
                name.startswith("baro_")
                and not name.endswith("_created")
                and name not in documented
            ):
                problems.append(f"{name}: exposed by {service} but missing from docs/metrics.md")
    return problems


def _label_problems(documented: dict[str, Series], scrapes: dict[str, Exposition]) -> list[str]:
    by_sample_name = {n: s for s in documented.values() for n in s.sample_names()}
    problems = set()
    for service, scrape in scrapes.items():
        for sample in scrape.samples:
            series = by_sample_name.get(sample.name)
            if series is None:
                continue
            names = set(sample.labels) - {"le", "quantile"}
            if names & ID_LABELS:
                problems.add(f"{sample.name} on {service}: id label {sorted(names & ID_LABELS)}")
            if names != series.labels:
                problems.add(
                    f"{sample.name} on {service}: labels {sorted(names)}, "
                    f"documented {sorted(series.labels)}"
                )
    return sorted(problems)


def _assert_the_run_was_counted(scrapes: dict[str, Exposition]) -> None:
    conductor, runner = scrapes["conductor"], scrapes["agent-runner"]
    merger, intake, planner = scrapes["merger"], scrapes["intake"], scrapes["planner"]

    assert conductor.value("baro_runs_submitted_total", mode_request="auto") == 1
    assert conductor.value("baro_runs_finished_total", mode="focused", status="delivered") == 1
    assert conductor.value("baro_runs_active") == 0
    for histogram in ("baro_run_wall_seconds", "baro_run_agent_seconds", "baro_run_speedup_ratio"):
        assert conductor.value(f"{histogram}_count", mode="focused") == 1, histogram
    assert conductor.value("baro_stories_finished_total", status="integrated", backend="scripted")
    assert conductor.value("baro_story_duration_seconds_count", backend="scripted") == 1
    # the script reports input 500 + cached 300 (normalized input 800, cached 300), output 80
    assert conductor.value("baro_run_tokens_total", mode="focused", kind="input") == 800
    assert (
        runner.value("baro_tokens_total", backend="scripted", kind="input", mode="focused") == 800
    )
    assert runner.value("baro_tokens_total", kind="cached_input", mode="focused") == 300
    assert runner.value("baro_tokens_total", kind="output", mode="focused") == 80
    assert runner.value("baro_cost_usd_total", backend="scripted", mode="focused") == 0.375
    assert conductor.value("baro_run_cost_usd_total", mode="focused") == 0.375

    assert runner.value("baro_story_attempts_total", status="success", reason="completed") == 1
    assert runner.value("baro_runner_agent_runs_total", backend="scripted", status="success") == 1
    assert runner.value("baro_runner_running_agents") == 0
    assert runner.find("baro_runner_backlog_messages"), "backlog gauge has no sample"
    assert runner.value("baro_runner_backlog_messages") == 0

    assert merger.value("baro_merger_integrations_total", outcome="integrated") == 1
    assert merger.value("baro_dropped_artifacts_total") == 1, "progress.md was not dropped"
    assert merger.value("baro_merger_deliveries_total", published="local") == 1
    assert intake.value("baro_intake_decisions_total", source="offline") == 1
    assert planner.value("baro_planner_plans_total", outcome="proposed") == 1
    # the route template, never the run id
    (api,) = intake.find("baro_api_requests_total", method="GET", status="200")
    assert api.labels["route"] == "/v1/runs/{run_id}", api.labels

    for service, scrape in scrapes.items():
        assert scrape.value("baro_service_up", service=service) == 1
        assert scrape.value("baro_bus_handled_messages_total", service=service) >= 1, service

    # minutes-long work needs buckets well past the defaults' 10 s
    for histogram in ("baro_run_wall_seconds", "baro_story_duration_seconds"):
        bounds = {float(s.labels["le"]) for s in conductor.find(f"{histogram}_bucket")}
        assert max(b for b in bounds if b != float("inf")) >= 3600, histogram
