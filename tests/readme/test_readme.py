"""Every command in README.md's examples runs: each line of its ```sh blocks is listed
here with where it is run, and the lists must match the README exactly, so the README cannot
change without this file.

The `baro` lines run here in README order, as a user types them, in a repository like the
demo's. The default backend is Claude Code: its command line is served by the scripted
test/demo agent standing in for the `claude` binary (`BARO_CLAUDE_BIN`), with a placeholder
key. `--backend codex` runs the real Codex against the contract tier's model server
(`tests/cli_contract/test_readme_codex.py`). The `make` lines run in CI (`.ci/run`) and in
the fresh-clone test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from baro_cli.demo import make_sample_repo
from baro_shared.embedded import free_port
from tests.conftest import make_repo, run_git
from tests.install.test_fresh_clone import FRESH_CLONE_TARGETS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO_BRANCH = "baro/fix-the-off-by-one-in-countdown"

# where each README command runs
CI = ".ci/run"
FRESH_CLONE = "tests/install/test_fresh_clone.py"
HERE = "tests/readme/test_readme.py::test_the_readme_commands_run_in_order"
CLUSTER = "tests/readme/test_readme.py::test_the_cluster_commands_run"
CLI_TIER = "tests/cli_contract/test_readme_codex.py"

FIRST_RUN = [
    "export ANTHROPIC_API_KEY=sk-ant-...",
    "baro doctor",
    'baro run "fix the off-by-one in countdown()"',
]
USING_IT = [
    'baro run "also cover the empty list" --continue baro/fix-the-off-by-one-in-countdown',
    'baro run "add tests for a.py, b.py and c.py" --yes --json',
    "baro run GOAL --repo ~/src/app --backend codex --parallelism 3",
    "baro run GOAL --publish pr",
]
WHEN_IT_FAILS = [
    "baro runs",
    "baro status RUN",
    "baro logs RUN",
    "baro logs RUN S1 --attempt 1 --raw",
    "baro resume RUN",
    "baro cancel RUN",
    "baro clean",
]
ON_A_CLUSTER = [
    "baro up",
    "baro service agent-runner",
    "baro submit GOAL --nats-url nats://cluster:4222",
    "baro watch RUN",
    "baro fetch RUN",
]
WHERE: dict[str, str] = {  # in README order
    "make demo": FRESH_CLONE,
    "make test": CI,
    "make install-cli": FRESH_CLONE,
    **{line: HERE for line in FIRST_RUN + USING_IT + WHEN_IT_FAILS},
    USING_IT[2]: CLI_TIER,
    **{line: CLUSTER for line in ON_A_CLUSTER},
    "make test-faults": CI,
    "make test-cluster": CI,
    "make test-cli": CI,
    "make test-install": CI,
}


def readme_commands() -> list[str]:
    """Each command of README's ```sh blocks, in order, comments cut off."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            code = re.split(r"\s+#\s", " " + line, maxsplit=1)[0].strip()
            commands += [part.strip() for part in code.split("; ") if part.strip()]
    return commands


def test_every_readme_command_is_listed_with_where_it_runs() -> None:
    assert readme_commands() == list(WHERE), (
        "README's example commands changed: update WHERE (and run them) in this file"
    )


def test_the_make_lines_are_run_by_ci_and_the_fresh_clone_test() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for line, where in WHERE.items():
        if where == CI:
            assert line in ci, f"{line} is not run by .ci/run"
        elif where == FRESH_CLONE:
            assert line.removeprefix("make ") in FRESH_CLONE_TARGETS
    assert "make test-install" in ci  # which runs the fresh-clone test


# ------------------------------------------------------------------ running them


class Shell:
    """Runs README lines one after another: an environment, a working directory, a HOME."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BARO_", "NATS_"))
            and k not in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")
        }
        self.env.update(
            {
                "HOME": str(self.home),
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "BARO_STATE_DIR": str(tmp_path / "state"),
                "BARO_CACHE_DIR": str(tmp_path / "cache"),
                # the scripted test/demo agent has Claude Code's command line and stream
                "BARO_CLAUDE_BIN": str(BIN / "baro-scripted-agent"),
                "BARO_LOG_LEVEL": "WARNING",
                "GIT_AUTHOR_NAME": "you",
                "GIT_AUTHOR_EMAIL": "you@example.com",
                "GIT_COMMITTER_NAME": "you",
                "GIT_COMMITTER_EMAIL": "you@example.com",
            }
        )
        self.cwd = tmp_path
        self.placeholders: dict[str, str] = {}

    def argv(self, line: str) -> list[str]:
        words = shlex.split(line)
        out = []
        for word in words:
            word = self.placeholders.get(word, word)
            if word.startswith("~/"):
                word = str(self.home / word[2:])
            out.append(word)
        return out

    def run(self, line: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        if line.startswith("export "):
            name, value = line.removeprefix("export ").split("=", 1)
            self.env[name] = value
            return subprocess.CompletedProcess([line], 0, "", "")
        return subprocess.run(
            self.argv(line),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, line: str, **extra_env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(line),
            cwd=self.cwd,
            env={**self.env, **extra_env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def ok(out: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert out.returncode == 0, f"{out.args}: {out.stdout}\n{out.stderr}"
    return out


def branches(repo: Path) -> list[str]:
    return run_git(repo, "branch", "--list", "--format=%(refname:short)").split()


def test_the_readme_commands_run_in_order(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    repo = make_sample_repo(tmp_path)  # the demo's repository: countdown() has the bug
    shell.cwd = repo
    make_repo(shell.home / "src" / "app", {"app.py": "print('helo')\n"})
    shell.placeholders["GOAL"] = "fix the typo in app.py"

    # a first real run
    ok(shell.run(FIRST_RUN[0]))
    doctor = ok(shell.run(FIRST_RUN[1]))
    assert "ok    claude: ANTHROPIC_API_KEY set" in doctor.stdout
    assert "sk-ant-..." not in doctor.stdout
    ok(shell.run(FIRST_RUN[2]))
    assert DEMO_BRANCH in branches(repo)

    # using it
    followed = ok(shell.run(USING_IT[0]))
    assert "delivered" in followed.stdout
    assert run_git(repo, "rev-list", "--count", f"main..{DEMO_BRANCH}") == "2"
    as_json = json.loads(ok(shell.run(USING_IT[1])).stdout)
    assert as_json["status"] == "delivered" and as_json["branch"].startswith("baro/add-tests")
    # USING_IT[2] (--backend codex) runs in the contract tier with the real Codex
    published = ok(shell.run(USING_IT[3]))
    assert "nothing was published" in published.stdout + published.stderr
    assert not run_git(repo, "remote")

    # when it fails: no server is running any more
    runs = ok(shell.run(WHEN_IT_FAILS[0]))
    listed = [line.split()[0] for line in runs.stdout.splitlines()[1:]]
    assert len(listed) == 4
    shell.placeholders["RUN"] = listed[0]
    assert ": delivered" in ok(shell.run(WHEN_IT_FAILS[1])).stdout
    assert "finished: ok" in ok(shell.run(WHEN_IT_FAILS[2])).stdout
    raw = ok(shell.run(WHEN_IT_FAILS[3]))
    assert json.loads(raw.stdout.splitlines()[-1])["type"] == "result"

    # a run whose `baro run` was killed while its agent worked, then resumed
    killed = GatedRun(shell, tmp_path / "killed", "fix the typo in README.md")
    killed.process.kill()
    killed.process.wait(timeout=60)
    shell.placeholders["RUN"] = killed.run_id
    assert "\ninterrupted: baro run (pid " in ok(shell.run(WHEN_IT_FAILS[1])).stdout
    killed.open()
    resumed = ok(shell.run(WHEN_IT_FAILS[4]))
    assert f"run {killed.run_id}: delivered" in resumed.stdout

    # a run stopped while its agent works
    stopped = GatedRun(shell, tmp_path / "stopped", "add a line to README.md")
    try:
        shell.placeholders["RUN"] = stopped.run_id
        cancelled = ok(shell.run(WHEN_IT_FAILS[5]))
        assert f"run {stopped.run_id}: cancelled (was running)" in cancelled.stdout
        assert "agents stopped: S1" in cancelled.stdout
        assert stopped.process.wait(timeout=120) == 130, "baro run ends as cancelled"
    finally:
        stopped.open()
        if stopped.process.poll() is None:
            stopped.process.kill()

    kept = ok(shell.run(WHEN_IT_FAILS[6]))
    assert stopped.run_id in kept.stdout


class GatedRun:
    """`baro run` with the scripted agent waiting at a gate file: a run caught mid-story."""

    def __init__(self, shell: Shell, marks: Path, goal: str) -> None:
        marks.mkdir()
        self.gate = marks / "gate"
        reached = marks / "reached"
        script = marks / "script.json"
        wait = f"echo x >> {reached}; while [ ! -e {self.gate} ]; do sleep 0.05; done"
        script.write_text(
            json.dumps(
                {"default": {"steps": [{"run": wait}, {"append": "README.md", "content": "+\n"}]}}
            )
        )
        self.process = shell.start(
            f"baro run {shlex.quote(goal)} --backend scripted --script {script} --yes"
        )
        assert self.process.stderr is not None
        first = self.process.stderr.readline()
        assert " submitted: " in first, first
        self.run_id = first.split("run ", 1)[1].split(" ", 1)[0]
        deadline = time.monotonic() + 120
        while not reached.exists():
            assert time.monotonic() < deadline and self.process.poll() is None, "agent started"
            time.sleep(0.05)

    def open(self) -> None:
        self.gate.touch()


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("not ready in time")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def test_the_cluster_commands_run(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    repo = make_sample_repo(tmp_path)
    shell.cwd = repo
    shell.env["ANTHROPIC_API_KEY"] = "sk-ant-..."
    shell.placeholders["GOAL"] = "fix the off-by-one in countdown()"
    up = shell.start(ON_A_CLUSTER[0])
    runner = None
    try:
        assert up.stderr is not None
        first = up.stderr.readline()
        assert first.startswith("baro is up: NATS at "), first
        url = first.split("NATS at ", 1)[1].split()[0]
        shell.placeholders["nats://cluster:4222"] = url
        port = free_port()
        runner = shell.start(ON_A_CLUSTER[1], BARO_NATS_URL=url, BARO_HTTP_PORT=str(port))
        wait_ready(port, runner)

        submitted = ok(shell.run(ON_A_CLUSTER[2]))
        shell.placeholders["RUN"] = submitted.stdout.strip()
        watched = ok(shell.run(ON_A_CLUSTER[3]))
        assert ": delivered" in watched.stdout
        fetched = ok(shell.run(ON_A_CLUSTER[4]))
        assert DEMO_BRANCH in branches(repo), fetched.stdout + fetched.stderr
        assert stop(runner) == 0
    finally:
        if runner is not None:
            stop(runner, signal.SIGKILL)
        assert stop(up, signal.SIGINT) in (0, 130)
