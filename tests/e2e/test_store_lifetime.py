"""The embedded nats-server lives exactly as long as the process that started it, and this
machine's run store is never served by two servers at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from baro_cli.stack import EmbeddedStore, StoreHolder
from baro_shared.processes import process_alive
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "BARO_STATE_DIR": str(tmp_path / "state"),
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("BARO_NATS_URL", None)
    return env


def python(code: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def kill_9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_server_started_by_a_test_process_dies_with_it(tmp_path: Path) -> None:
    proc = python(
        f"""
        import time
        from pathlib import Path
        from baro_shared.embedded import EmbeddedNats
        server = EmbeddedNats(store_dir=Path({str(tmp_path / "nats")!r})).start()
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    assert proc.stdout is not None
    server = int(proc.stdout.readline())
    assert process_alive(server)
    kill_9(proc)
    until(lambda: not process_alive(server), 30, "the nats-server to die with its parent")


def test_baro_up_killed_takes_its_server_along_and_frees_the_store(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    store = EmbeddedStore(settings)
    up = subprocess.Popen(
        [BARO, "up"],
        env=env_for(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until(
            lambda: (h := store.holder()) is not None and h.server_pid is not None,
            60,
            "baro up to hold the store",
        )
        holder = store.holder()
        assert holder is not None and holder.command == "baro up" and holder.pid == up.pid
        server = holder.server_pid
        assert holder.baro_alive and holder.server_alive
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=30)
    until(lambda: not process_alive(server), 30, "baro up's nats-server to die with it")
    until(lambda: store.holder() is None, 10, "the store to be free")


def test_a_store_held_by_a_left_over_server_is_named_and_not_shared(tmp_path: Path) -> None:
    """A nats-server that outlived its baro (started without the parent-death signal, as
    an older baro did) keeps the store's lock: nobody starts a second server on its store,
    `baro clean --all` refuses, and `baro run` says in one line that it runs elsewhere."""
    env = env_for(tmp_path)
    holder_proc = python(
        """
        import time
        from baro_cli.stack import EmbeddedStore
        from baro_shared.embedded import EmbeddedNats
        from baro_shared.settings import Settings
        store = EmbeddedStore(Settings())
        root = store.acquire("baro run")
        server = EmbeddedNats(
            store_dir=root, inherit_fds=store.inherited_fds(), die_with_parent=False
        )
        server.start()
        store.record_server(server.pid)
        print(server.pid, flush=True)
        time.sleep(600)
        """,
        env,
    )
    assert holder_proc.stdout is not None
    server = int(holder_proc.stdout.readline())
    kill_9(holder_proc)
    try:
        assert process_alive(server), "this server was started without the parent-death signal"
        ports = list((tmp_path / "state" / "nats" / "ports").glob("*.ports"))
        assert len(ports) == 1
        left_over = (
            f"a nats-server (pid {server}) left running by baro run (pid {holder_proc.pid}, "
            "no longer running) holds this machine's run store"
        )
        repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
        clean = subprocess.run(
            [BARO, "clean", "--all"], cwd=repo, env=env, capture_output=True, text=True
        )
        assert clean.returncode == 2
        assert clean.stderr.strip().splitlines() == [
            f"baro: {left_over} and its runs may still use what is kept: name the run to "
            "clean, or stop that process first"
        ]
        script = tmp_path / "script.json"
        script.write_text(json.dumps({"default": {"steps": [{"write": "b.txt", "content": "b"}]}}))
        run = subprocess.run(
            [BARO, "run", "add b", "--mode", "focused", "--yes", "--backend", "scripted",
             "--script", str(script)],
            cwd=repo, env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        notes = [line for line in run.stderr.splitlines() if line.startswith("baro: ")]
        assert notes == [
            f"baro: {left_over}: this run uses a temporary store of its own, so it cannot be "
            "resumed if this process is killed"
        ]
        assert run_git(repo, "branch", "--list", "baro/*").split() == ["baro/add-b"]
        assert ports[0].exists(), "the live server's ports file was deleted from under it"
        assert process_alive(server)
    finally:
        os.kill(server, signal.SIGTERM)
        until(lambda: not process_alive(server), 30, "the left-over server to stop")


def test_a_run_waits_for_a_reader_of_the_store(tmp_path: Path) -> None:
    """`baro status` (or runs/logs/watch) holds the store for a moment when no baro serves
    it; a `baro run` started then waits for it and runs on the machine's store."""
    env = env_for(tmp_path)
    reader = python(
        """
        import asyncio, time
        from baro_cli import localstore
        from baro_shared.settings import Settings

        async def read() -> None:
            async with localstore.served(Settings()):
                print("reading", flush=True)
                time.sleep(5.0)  # a slow read: the store stays held

        asyncio.run(read())
        """,
        env,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "reading"
    repo = make_repo(tmp_path / "user", {"a.txt": "a\n"})
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": {"steps": [{"write": "b.txt", "content": "b"}]}}))
    run = subprocess.run(
        [BARO, "run", "add b", "--mode", "focused", "--yes", "--backend", "scripted",
         "--script", str(script), "--json"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert reader.wait(timeout=30) == 0, reader.stderr.read() if reader.stderr else ""
    assert run.returncode == 0, run.stderr
    assert not [line for line in run.stderr.splitlines() if line.startswith("baro: ")]
    run_id = json.loads(run.stdout)["run_id"]
    listed = subprocess.run(
        [BARO, "runs", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert [r["run_id"] for r in json.loads(listed.stdout)["runs"]] == [run_id], (
        "the run is in this machine's store, not a temporary one"
    )


async def test_only_a_reader_is_waited_for(tmp_path: Path) -> None:
    from baro_cli.stack import READER

    settings = Settings(state_dir=tmp_path / "state")
    held, starting = EmbeddedStore(settings), EmbeddedStore(settings)
    assert held.acquire("baro run") is not None
    began = time.monotonic()
    assert await starting.acquire_after_readers("baro up", wait_s=30) is None
    assert time.monotonic() - began < 5, "a baro run holding the store is not waited for"
    held.release()

    assert held.acquire(READER) is not None
    assert await starting.acquire_after_readers("baro up", wait_s=0.3) is None, "bounded"
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, held.release)
    assert await starting.acquire_after_readers("baro up", wait_s=30) is not None
    assert starting.holder() == StoreHolder(os.getpid(), "baro up", None)
    starting.release()
