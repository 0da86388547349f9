"""kill -9 of `baro run` at several moments: the embedded nats-server dies with it, no
other command drives the killed run, and `baro resume` delivers its goal exactly once.

Real processes throughout: `baro run`, `baro resume` and `baro cancel` as the user runs
them, on one machine's store (``BARO_STATE_DIR``). The scripted agent, the scripted planner
and the repository's verify command each wait at a gate file, so the kill lands exactly
at the moment under test; the gate is opened after the kill, so whatever the killed
process left behind finishes and the resumed run passes it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from baro_shared.processes import process_alive
from tests.conftest import make_repo, run_git

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BARO = str(Path(sys.executable).parent / "baro")
GOAL = "do the plan"
OTHER_GOAL = "add the other file"


@dataclass
class World:
    root: Path
    repo: Path
    marks: Path

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "BARO_STATE_DIR": str(self.root / "state"),
            "BARO_CACHE_DIR": str(self.root / "cache"),
            # the planner's question is held open by a script step (its gate)
            "BARO_SCRIPTED_QUESTION_TOOLS": "true",
        }
        env.pop("BARO_NATS_URL", None)
        return env

    def gate(self, name: str) -> str:
        """A shell command that marks ``name`` as reached, then waits for the gate."""
        reached, gate = self.marks / f"{name}.reached", self.marks / "gate"
        return f"echo x >> {reached}; while [ ! -e {gate} ]; do sleep 0.05; done"

    def reached(self, name: str) -> int:
        path = self.marks / f"{name}.reached"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def open_gate(self) -> None:
        (self.marks / "gate").touch()

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [BARO, *args],
            cwd=self.repo,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def baro(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BARO, *args],
            cwd=self.repo,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def store_holder(self) -> dict[str, object]:
        return json.loads((self.root / "state" / "nats" / "lock").read_text())

    def holder_command(self) -> object:
        try:
            return self.store_holder().get("command")
        except (OSError, ValueError):
            return None  # being written

    def branches(self) -> list[str]:
        return run_git(self.repo, "branch", "--list", "baro/*", "--format=%(refname:short)").split()

    def write_json(self, name: str, data: object) -> Path:
        path = self.root / name
        path.write_text(json.dumps(data))
        return path


@pytest.fixture
def world(tmp_path: Path) -> World:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n", "b.txt": "b\n"})
    return World(tmp_path, repo, marks)


def until(check, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"baro exited ({proc.returncode}) before {what}:\n{err}\n{out}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def kill_at(world: World, proc: subprocess.Popen[str], moment: str) -> str:
    """Wait for ``moment``, kill -9 the `baro run`, check its nats-server died with it;
    return the killed run's id."""
    until(lambda: world.reached(moment) > 0, 120, f"the run to reach {moment}", proc)
    server = world.store_holder()["server_pid"]
    assert isinstance(server, int) and process_alive(server)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    until(lambda: not process_alive(server), 30, "the embedded nats-server to die with baro run")
    world.open_gate()
    submitted = re.search(r"run (\S+) submitted: ", err)
    assert submitted, err
    return submitted.group(1)


def another_run_leaves_it_alone(world: World, killed: str) -> None:
    """A new `baro run` in the same repository names the killed run, does not drive it."""
    script = world.write_json(
        "other.json", {"default": {"steps": [{"write": "c.txt", "content": "c\n"}]}}
    )
    out = world.baro(
        "run", OTHER_GOAL, "--mode", "focused", "--yes", "--backend", "scripted",
        "--script", str(script), "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    notes = [line for line in out.stderr.splitlines() if killed in line]
    assert notes == [
        f"baro: run {killed} of this repository was interrupted (its baro process stopped): "
        f"baro resume {killed} continues it, baro cancel {killed} ends it"
    ], out.stderr
    assert json.loads(out.stdout)["branch"] == "baro/add-the-other-file"


def resume(world: World, run_id: str) -> dict:  # type: ignore[type-arg]
    out = world.baro("resume", run_id, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "delivered", report
    return report


def two_stories(world: World) -> tuple[Path, Path]:
    plan = world.write_json(
        "plan.json",
        {
            "stories": [
                {"id": "S1", "title": "Change a", "write_surface": ["a.txt"]},
                {"id": "S2", "title": "Change b", "depends_on": ["S1"], "write_surface": ["b.txt"]},
            ]
        },
    )
    script = world.write_json(
        "script.json",
        {
            "stories": [
                {
                    "match": {"id": "S1"},
                    "steps": [
                        {"run": f"echo x >> {world.marks / 'S1.ran'}"},
                        {"append": "a.txt", "content": "a2\n"},
                    ],
                },
                {
                    "match": {"id": "S2"},
                    "steps": [{"run": world.gate("S2")}, {"append": "b.txt", "content": "b2\n"}],
                },
            ]
        },
    )
    return plan, script


def killed_while_the_second_story_runs(world: World) -> str:
    """S1 integrated, S2's agent at work: kill -9; returns the run's id."""
    plan, script = two_stories(world)
    proc = world.start(
        "run", GOAL, "--plan-file", str(plan), "--mode", "sequential", "--yes",
        "--backend", "scripted", "--script", str(script),
    )  # fmt: skip
    return kill_at(world, proc, "S2")


def test_killed_while_an_agent_runs_is_parked_then_resumed_once(world: World) -> None:
    killed = killed_while_the_second_story_runs(world)
    assert world.branches() == []
    another_run_leaves_it_alone(world, killed)
    assert world.reached("S2") == 1, "another command started the killed run's agent"
    assert world.branches() == ["baro/add-the-other-file"]
    report = resume(world, killed)
    assert world.branches() == ["baro/add-the-other-file", "baro/do-the-plan"]
    attempts = {st["id"]: (st["status"], st["attempt"]) for st in report["stories"]}
    assert attempts == {"S1": ("integrated", 1), "S2": ("integrated", 2)}
    assert len((world.marks / "S1.ran").read_text().splitlines()) == 1, "S1 ran again"
    assert run_git(world.repo, "show", "baro/do-the-plan:b.txt") == "b\nb2"
    assert world.baro("resume", killed).returncode == 1, "a delivered run is not resumed"


def test_killed_while_planning_is_resumed_once(world: World) -> None:
    plan = {"stories": [{"id": "S1", "title": "Change a", "write_surface": ["a.txt"]}]}
    script = world.write_json(
        "script.json",
        {
            "stories": [
                {
                    "match": {"id": "baro-planner"},
                    "steps": [{"run": world.gate("planner")}, {"text": json.dumps(plan)}],
                },
                {"match": {"id": "S1"}, "steps": [{"append": "a.txt", "content": "a2\n"}]},
            ]
        },
    )
    proc = world.start(
        "run", GOAL, "--mode", "parallel", "--planner", "llm", "--yes",
        "--backend", "scripted", "--script", str(script),
    )  # fmt: skip
    killed = kill_at(world, proc, "planner")
    another_run_leaves_it_alone(world, killed)
    assert world.reached("planner") == 1, "another command asked the killed run's planner"
    assert world.branches() == ["baro/add-the-other-file"]
    resume(world, killed)
    assert world.branches() == ["baro/add-the-other-file", "baro/do-the-plan"]


def test_killed_while_delivering_keeps_one_branch(world: World) -> None:
    """The run gate checks the integrated result before the merger makes the branch:
    killed during the gate, there is no branch yet, and resuming runs the gate again and
    delivers one branch."""
    (world.repo / ".baro.toml").write_text(
        f"[verify]\ncommand = {json.dumps(world.gate('verify'))}\n"
    )
    run_git(world.repo, "add", ".baro.toml")
    run_git(world.repo, "commit", "-qm", "verify")
    script = world.write_json(
        "script.json", {"default": {"steps": [{"append": "a.txt", "content": "a2\n"}]}}
    )
    proc = world.start(
        "run", GOAL, "--mode", "focused", "--yes", "--backend", "scripted", "--script", str(script)
    )  # fmt: skip
    killed = kill_at(world, proc, "verify")
    assert world.branches() == [], "no branch before the run gate decided"
    another_run_leaves_it_alone(world, killed)
    assert world.branches() == ["baro/add-the-other-file"]
    report = resume(world, killed)
    assert report["branch"] == "baro/do-the-plan" and report["verify"] == "passed"
    # the killed run's gate, the other run's, and the killed run's again on resume (the
    # killed command may be redelivered as well: its answer has the same message id)
    assert world.reached("verify") >= 3
    assert world.branches() == ["baro/add-the-other-file", "baro/do-the-plan"], "delivered twice"


def test_an_interrupted_run_is_cancelled_with_its_attempts_kept(world: World) -> None:
    killed = killed_while_the_second_story_runs(world)
    out = world.baro("cancel", killed, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["state"] == "cancelled" and result["agents_stopping"] == []
    assert {st["id"]: st["status"] for st in result["stories"]} == {
        "S1": "integrated",
        "S2": "cancelled",
    }
    refs = run_git(world.repo, "for-each-ref", "--format=%(refname)", f"refs/baro/{killed}/")
    assert f"refs/baro/{killed}/S1/1" in refs.split(), "the integrated attempt is kept"
    assert world.branches() == []
    again = world.baro("resume", killed)
    assert again.returncode == 1 and "already finished (cancelled)" in again.stderr
    assert world.reached("S2") == 1


def test_baro_up_parks_a_killed_run_and_takes_it_over_on_resume(world: World) -> None:
    """With baro up serving the machine's store, the killed run is parked there too;
    `baro resume` hands it to baro up (the cluster owns it from then on)."""
    killed = killed_while_the_second_story_runs(world)
    up = world.start("up")
    try:
        until(lambda: world.holder_command() == "baro up", 60, "baro up to hold the store", up)
        until(lambda: world.baro("runs").returncode == 0, 60, "baro up to serve", up)
        listed = world.baro("runs", "--state", "interrupted", "--json")
        assert [r["run_id"] for r in json.loads(listed.stdout)["runs"]] == [killed]
        assert world.reached("S2") == 1, "baro up drove the killed run"
        report = resume(world, killed)
        assert report["branch"] == "baro/do-the-plan"
        status = json.loads(world.baro("status", killed, "--json").stdout)
        assert status["state"] == "delivered" and status["interrupted"] is None
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=60)
    assert world.branches() == ["baro/do-the-plan"]
