"""Launchers on standby: started before their agent, each starting one agent in its own
fence; the scripted agent runs in the launcher that preloaded it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from baro_runner import agent
from baro_runner.backends import AgentCommand, _scripted_start, fenced
from baro_runner.standby import StandbyLaunchers
from baro_shared import sandbox
from baro_shared import schemas as s
from baro_shared.backends import scripted_binary
from baro_shared.mappers import mapper_for
from baro_shared.settings import Settings
from tests.conftest import ends_within, launcher_of_a_killed_runner, running


@pytest.fixture
def place(tmp_path: Path) -> dict[str, Path]:
    hidden, workspace = tmp_path / "baro-state", tmp_path / "workspace"
    (workspace / "repo").mkdir(parents=True)
    hidden.mkdir()
    (hidden / "token").write_text("secret\n")
    (workspace / "prompt.md").write_text("the story's prompt\n")
    return {"hidden": hidden, "workspace": workspace, "repo": workspace / "repo"}


def shell(place: dict[str, Path], script: str, env: dict[str, str]) -> AgentCommand:
    command = AgentCommand(
        ["/bin/sh", "-c", script], env, place["repo"], place["workspace"] / "prompt.md"
    )
    return fenced(command, sandbox.fence([place["hidden"]], [place["workspace"]]))


async def standing_by(pool: StandbyLaunchers, count: int) -> list[int]:
    pool.fill()
    for _ in range(200):
        if len(pool.waiting) == count:
            return pool.waiting
        await asyncio.sleep(0.05)
    pytest.fail(f"{count} launchers did not stand by")


async def test_an_agent_handed_to_a_standby_launcher_runs_fenced_with_only_its_environment(
    place: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_ONLY", "not for agents")
    pool = StandbyLaunchers(1)
    try:
        [waiting] = await standing_by(pool, 1)
        env = {"PATH": os.environ["PATH"], "STORY": "S1"}
        script = f"env; echo --; pwd; cat; echo --; ls -A {place['hidden']}; echo mine > made.txt; exit 4"
        proc = await pool.start(shell(place, script, env))
        assert proc is not None and proc.pid == waiting
        out, err = await proc.communicate()
        assert proc.returncode == 4, err
        seen, where, hidden = out.decode().split("--\n")
        assert "STORY=S1" in seen.splitlines()
        assert "RUNNER_ONLY" not in seen
        assert where == f"{place['repo']}\nthe story's prompt\n"
        assert hidden == "", "the hidden directory is empty for the agent"
        assert (place["repo"] / "made.txt").read_text() == "mine\n"
        await standing_by(pool, 1)  # another took its place
    finally:
        await pool.close()


async def test_the_scripted_agent_runs_in_the_launcher_that_preloaded_it(
    place: dict[str, Path],
) -> None:
    binary = scripted_binary(Settings())
    assert binary
    script = {"default": {"steps": [
        {"run": "tr '\\0' ' ' < /proc/$PPID/cmdline > started-by.txt"},
        {"write": "a.txt", "content": "x"},
    ]}}  # fmt: skip
    env = {"PATH": os.environ["PATH"], "BARO_AGENT_SCRIPT": json.dumps(script)}
    args = ["-p", "--output-format", "stream-json", "--verbose"]
    command = AgentCommand([*_scripted_start(binary), *args], env, place["repo"],
                           place["workspace"] / "prompt.md", inline=args)  # fmt: skip
    fence = sandbox.fence([place["hidden"]], [place["workspace"]])
    pool = StandbyLaunchers(1, preload=True)
    try:
        await standing_by(pool, 1)
        outcome = await _run(fenced(command, fence), pool)
        assert outcome.status == "success", outcome.error
        assert (place["repo"] / "a.txt").read_text() == "x"
        started_by = (place["repo"] / "started-by.txt").read_text()
        assert "launcher.serve" in started_by, "no second interpreter was started"
        # a launcher that did not preload it starts the same agent as its own program
        cold = StandbyLaunchers(1, preload=False)
        try:
            await standing_by(cold, 1)
            cold.preload = True  # not what the one standing by has
            outcome = await _run(fenced(command, fence), cold)
            assert outcome.status == "success", outcome.error
            assert "scripted_agent" in (place["repo"] / "started-by.txt").read_text()
        finally:
            await cold.close()
    finally:
        await pool.close()


async def _run(command: AgentCommand, pool: StandbyLaunchers) -> agent.AgentOutcome:
    async def sink(_event: s.NormalizedEvent) -> None:
        return None

    async def no_stop() -> str | None:
        return None

    return await agent.run_agent(
        command, mapper_for("scripted"), agent.Limits(30, 60), sink, no_stop, standby=pool
    )


@pytest.mark.parametrize(
    ("body", "code", "said"),
    [
        ("return 5", 5, ""),
        ("raise RuntimeError('broken')", 1, "RuntimeError: broken"),
        ("raise SystemExit('usage: no')", 1, "usage: no"),
    ],
)
def test_a_preloaded_module_leaves_as_its_own_program_would(
    place: dict[str, Path], tmp_path: Path, body: str, code: int, said: str
) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "fake_agent.py").write_text(
        "import os, sys\n"
        "def main(argv):\n"
        "    print(argv, sys.argv[1:], os.getcwd(), os.environ.get('STORY'), sys.stdin.read().strip())\n"
        f"    {body}\n"
    )
    fence = sandbox.fence([place["hidden"]], [place["workspace"]])
    done = subprocess.run(
        sandbox.standby_command(dies_with=os.getpid(), preload=(str(tmp_path / "lib"), "fake_agent")),
        input=fence.request(["not-started"], {"STORY": "S2"}, place["repo"],
                            place["workspace"] / "prompt.md", inline=["-p", "x"]),
        capture_output=True, timeout=60, cwd="/", env={},
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    expected = f"['-p', 'x'] ['-p', 'x'] {place['repo']} S2 the story's prompt\n"
    assert done.stdout.decode() == expected
    assert said in done.stderr.decode()


async def test_a_launcher_that_died_on_standby_is_passed_over(place: dict[str, Path]) -> None:
    pool = StandbyLaunchers(1)
    try:
        [waiting] = await standing_by(pool, 1)
        os.kill(waiting, signal.SIGKILL)
        for _ in range(100):
            if not running(waiting):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # its exit is seen
        env = {"PATH": os.environ["PATH"]}
        assert await pool.start(shell(place, "true", env)) is None  # the caller starts it cold
        unfenced = replace(shell(place, "true", env), fence=None, agent_argv=None)
        [replacement] = await standing_by(pool, 1)
        assert replacement != waiting
        assert await pool.start(unfenced) is None, "only a fenced agent is handed over"
    finally:
        await pool.close()


async def test_standing_down_leaves_no_launcher_behind() -> None:
    pool = StandbyLaunchers(3)
    pids = await standing_by(pool, 3)
    await pool.close()
    assert not any(running(pid) for pid in pids)
    pool.fill()
    assert pool.waiting == [], "a closed pool starts no more"


def test_a_launcher_on_standby_dies_with_the_runner_that_started_it() -> None:
    launcher = launcher_of_a_killed_runner(
        "proc = subprocess.Popen(sandbox.standby_command(dies_with=os.getpid()),\n"
        "                        stdin=subprocess.PIPE, start_new_session=True, env={})"
    )
    assert ends_within(launcher), "the launcher on standby outlived the runner"
