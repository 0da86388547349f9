"""After `baro run` has ended nothing serves its history; `baro runs`, `baro status` and
`baro logs` read this machine's store themselves, as the user would type them. And
`baro logs --follow` during a run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_baro
from tests.e2e.test_interrupted_listing import gone_owner, record

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")
FIX = {
    "default": {
        "steps": [
            {"text": "Fixing the greeting."},
            {"stderr": "warning: this model is deprecated"},
            {"write": "hello.py", "content": "print('hello, world')\n"},
            {"usage": {"input": 1000, "output": 100}},
        ]
    }
}


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BARO_", "NATS_"))}
    env.update({"BARO_STATE_DIR": str(home / "state"), "BARO_CACHE_DIR": str(home / "cache")})
    return env


def baro(env: dict[str, str], *args: str, cwd: Path | None = None) -> CompletedProcess[str]:
    return run_baro(*args, env=env, cwd=cwd)


def start_run(
    env: dict[str, str], repo: Path, goal: str, steps: list[dict[str, object]], *extra: str
) -> tuple[subprocess.Popen[str], str]:
    """``baro run`` in the background with a scripted agent doing ``steps``; its run id."""
    script = repo.parent / "script.json"
    script.write_text(json.dumps({"default": {"steps": steps}}))
    run = subprocess.Popen(
        [BARO, "run", goal, "--backend", "scripted", "--script", str(script), "--yes", *extra],
        cwd=repo, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert run.stderr is not None
    first = run.stderr.readline()
    if " submitted: " not in first:
        run.kill()
        run.wait()
        raise AssertionError(first)
    return run, first.split("run ", 1)[1].split(" ", 1)[0]


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


def test_logs_after_the_run_with_no_server_running(
    finished_run: tuple[dict[str, str], str],
) -> None:
    env, run_id = finished_run
    shown = baro(env, "logs", run_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert all(line.startswith(("S1#1 ", "  | ")) for line in lines), shown.stdout
    text = shown.stdout
    assert "session " in text and "text: Fixing the greeting." in text
    assert "tool Write started" in text and "file " in text and "hello.py" in text
    assert "tokens in 1000 (cached 0) out 100" in text and "finished: ok" in text
    # the attempt's stderr, which is not in the stream, comes at the end
    assert f"S1#1 stderr; all of it: baro logs {run_id} S1 --attempt 1 --stderr" in text
    assert lines[-1] == "  | warning: this model is deprecated"

    as_json = baro(env, "logs", run_id, "S1", "--json")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert {e["event"]["kind"] for e in events} >= {"session", "text", "file_changed", "finished"}

    raw = baro(env, "logs", run_id, "--raw")
    assert raw.returncode == 0, raw.stderr
    wire = [json.loads(line) for line in raw.stdout.splitlines()]
    assert wire[0]["type"] == "system" and wire[-1]["type"] == "result"
    mapped = subprocess.run(
        [BARO, "map", "-", "--backend", "claude"],
        input=raw.stdout, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert len(mapped.stdout.splitlines()) == len(events), "the raw stream maps to the events"

    err = baro(env, "logs", run_id, "S1", "--stderr", "--attempt", "1")
    assert err.returncode == 0 and err.stdout == "warning: this model is deprecated\n"

    other = baro(env, "logs", run_id, "--attempt", "2")
    assert other.stdout.strip() == f"no agent events in attempt 2 in run {run_id}"
    unknown = baro(env, "logs", run_id, "S9")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == f"baro: run {run_id} has no story 'S9' (its stories: S1)"
    too_far = baro(env, "logs", run_id, "S1", "--raw", "--attempt", "3")
    assert too_far.returncode == 2 and "has had 1 attempt(s), not 3" in too_far.stderr


def test_logs_follow_a_run_while_it_works(tmp_path: Path) -> None:
    """The agent waits for a file the test creates only after `baro logs --follow` has shown
    its first events: they came while the run was going on, not from a replay at the end."""
    env = env_for(tmp_path)
    repo = make_repo(tmp_path / "repo", {"hello.py": "print('helo')\n"})
    release = tmp_path / "release"
    steps: list[dict[str, object]] = [
        {"text": "Waiting to be released."},
        {"run": f"while [ ! -e {release} ]; do sleep 0.1; done"},
        {"write": "hello.py", "content": "print('hello, world')\n"},
        {"stderr": "note: released"},
        {"text": "Released and done."},
    ]
    run, run_id = start_run(env, repo, "fix the typo in hello.py", steps)
    follow = raw = None
    try:
        follow = subprocess.Popen(
            [BARO, "logs", run_id, "--follow"], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert follow.stdout is not None
        for line in follow.stdout:
            if "text: Waiting to be released." in line:
                break
        raw = subprocess.Popen(
            [BARO, "logs", run_id, "S1", "--raw", "--follow"], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert raw.stderr is not None
        assert raw.stderr.readline().startswith("waiting for S1 attempt 1 to end")
        assert run.poll() is None, "the run is still going on"
        release.touch()
        rest, errors = follow.communicate(timeout=120)
        assert follow.returncode == 0, errors
        assert "text: Released and done." in rest and "finished: ok" in rest
        assert rest.splitlines()[-1] == "  | note: released", "its stderr, read while it ran"
        raw_out, raw_err = raw.communicate(timeout=120)
        assert raw.returncode == 0, raw_err
        assert json.loads(raw_out.splitlines()[-1])["type"] == "result"
        run.communicate(timeout=120)
        assert run.returncode == 0
    finally:
        release.touch()
        for proc in (run, follow, raw):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_failed_attempt_keeps_its_agent_log_in_the_workspace(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    repo = make_repo(tmp_path / "repo", {"hello.py": "print('helo')\n"})
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "default": {
                    "steps": [
                        {"stderr": "error: the provider refused the key"},
                        {"fail": "cannot reach the model"},
                    ]
                }
            }
        )
    )
    ran = baro(
        env, "run", "fix the typo in hello.py", "--backend", "scripted", "--script", str(script),
        "--yes", "--json", cwd=repo,
    )  # fmt: skip
    assert ran.returncode == 1, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    kept = Path(env["BARO_CACHE_DIR"]) / "workspaces" / run_id / "S1-1"
    stdout = (kept / "logs" / "stdout.0").read_text().splitlines()
    assert json.loads(stdout[-1])["type"] == "result" and json.loads(stdout[-1])["is_error"]
    assert (kept / "logs" / "stderr.0").read_text() == "error: the provider refused the key\n"
    assert not (kept / "repo" / "logs").exists(), "the log is beside the clone, never in it"
    shown = baro(env, "logs", run_id, "S1", "--attempt", "1")
    assert "finished: failed: cannot reach the model" in shown.stdout
    assert shown.stdout.splitlines()[-1] == "  | error: the provider refused the key"


def test_watch_after_the_run_with_no_server_running(
    finished_run: tuple[dict[str, str], str],
) -> None:
    env, run_id = finished_run
    watched = baro(env, "watch", run_id)
    assert watched.returncode == 0, watched.stderr
    assert f"run {run_id}: delivered" in watched.stdout
    assert "branch: baro/fix-the-typo-in-hello-py" in watched.stdout
    assert "S1 integrated" in watched.stderr, "the run's progress, replayed from its events"
    as_json = json.loads(baro(env, "watch", run_id, "--json", "--quiet").stdout)
    assert as_json["status"] == "delivered" and as_json["stories"][0]["status"] == "integrated"
    assert as_json["tokens"]["input"] == 1000
    unknown = baro(env, "watch", "20200101-000000-abcdef")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "baro: no run '20200101-000000-abcdef' on this machine: list the runs there with baro runs"
    )
    assert not list((Path(env["BARO_STATE_DIR"]) / "nats" / "ports").glob("*.ports"))


def test_watch_of_an_interrupted_run_with_no_server_running(tmp_path: Path) -> None:
    """Nothing moves a run no baro serves: watch shows what happened and how to go on."""
    env = env_for(tmp_path)
    dead = record("killed goal", gone_owner())

    async def store() -> None:
        server = EmbeddedNats(store_dir=tmp_path / "state" / "nats").start()
        try:
            bus = await Bus.open(Settings(nats_url=server.url), "test")
            try:
                assert await bus.create_record(dead)
                await bus.publish(dead.request, f"{dead.run_id}.submitted")
            finally:
                await bus.close()
        finally:
            server.stop()

    asyncio.run(store())
    watched = baro(env, "watch", dead.run_id)
    assert watched.returncode == 1, watched.stderr
    assert watched.stdout.splitlines()[1].startswith(f"run {dead.run_id}: interrupted — baro run")
    assert (
        f"baro resume {dead.run_id} continues it, baro cancel {dead.run_id} ends it"
        in watched.stdout
    )
    assert "Traceback" not in watched.stderr


def test_watch_reads_the_rest_from_the_store_when_the_run_is_killed(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    repo = make_repo(tmp_path / "repo", {"hello.py": "print('helo')\n"})
    reached = tmp_path / "reached"
    steps = [{"run": f"touch {reached}"}, {"hang": None}]
    run, run_id = start_run(env, repo, "fix the typo in hello.py", steps)
    watch = None
    try:
        watch = subprocess.Popen(
            [BARO, "watch", run_id], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watch.stderr is not None
        for line in watch.stderr:
            if "S1 started (attempt 1)" in line:
                break
        while not reached.exists():
            assert run.poll() is None, "the agent started"
            time.sleep(0.05)
        run.kill()
        run.wait(timeout=60)
        out, err = watch.communicate(timeout=120)
        assert watch.returncode == 1, err
        assert f"run {run_id}: interrupted — baro run (pid {run.pid}" in out
        assert f"baro resume {run_id} continues it" in out
        assert "S1 started" not in err, "what the server showed is not shown again"
    finally:
        for proc in (run, watch):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
