"""Fixtures shared by the whole suite: a real nats-server, settings, git repositories."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from baro_shared import usertools
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings

os.environ.setdefault("BARO_LOG_LEVEL", "WARNING")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream on free ports, its store in the test's temp dir."""
    server = EmbeddedNats(store_dir=tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A local port something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    return Settings(
        nats_url=nats_server.url,
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        runner_ack_wait_s=5.0,
        http_port=0,
    )


def run_baro(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The installed ``baro`` command as a user runs it: its own process, no stdin."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "baro"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)
    return out.stdout.decode().strip()


def make_repo(path: Path, files: dict[str, str], *, dirty: bool = False) -> Path:
    """A repository with one commit of ``files``; ``dirty`` adds the user's own uncommitted work."""
    path.mkdir(parents=True, exist_ok=True)
    run_git(path, "init", "--quiet", "--initial-branch=main")
    for name, content in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
    run_git(path, "add", "-A")
    run_git(path, "commit", "--quiet", "-m", "initial")
    if dirty:
        first = next(iter(files))
        (path / first).write_text(files[first] + "\nuser's unsaved edit\n")
        (path / "staged.txt").write_text("staged by the user\n")
        run_git(path, "add", "staged.txt")
        (path / "scratch.txt").write_text("untracked user notes\n")
        (path / "stashme.txt").write_text("to stash\n")
        run_git(path, "add", "stashme.txt")
        run_git(path, "stash", "push", "--quiet", "-m", "user stash", "--", "stashme.txt")
    return path


@dataclass(frozen=True)
class RepoSnapshot:
    head: str
    branch: str
    status: str
    stash: str
    index_sha: str
    files: tuple[tuple[str, str], ...]


def snapshot(repo: Path) -> RepoSnapshot:
    """Everything of the user's that baro must not touch."""
    files = []
    for p in sorted(repo.rglob("*")):
        if ".git" in p.relative_to(repo).parts or not p.is_file():
            continue
        files.append((str(p.relative_to(repo)), hashlib.sha256(p.read_bytes()).hexdigest()))
    index = repo / ".git" / "index"
    return RepoSnapshot(
        head=run_git(repo, "rev-parse", "HEAD"),
        branch=run_git(repo, "symbolic-ref", "--short", "HEAD"),
        status=run_git(repo, "status", "--porcelain=v2", "--untracked-files=all"),
        stash=run_git(repo, "stash", "list"),
        index_sha=hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else "",
        files=tuple(files),
    )


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has ended, whoever reaps it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def launcher_of_a_killed_runner(launch: str) -> int:
    """Run ``launch`` (Python that starts a fence launcher as ``proc``, naming
    ``os.getpid()`` as the process it dies with) in a stand-in runner, kill that runner
    outright once the launcher is up, and return the launcher's pid."""
    starter = (
        "import os, subprocess, sys, time\nfrom baro_shared import sandbox\n"
        f"{launch}\nprint(proc.pid, flush=True)\ntime.sleep(60)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    assert runner.stdout is not None
    launcher = int(runner.stdout.readline())
    time.sleep(0.5)  # the launcher is up
    assert running(launcher)
    runner.kill()
    runner.wait()
    return launcher


def ends_within(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def baro_starts_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a baro process notes when it starts (the user's tools and global git config,
    ``baro_shared.usertools``) is noted afresh from here: for a test that writes the
    user's config after this process has already run git with the same home."""
    monkeypatch.setattr(usertools, "_FOUND", {})
    monkeypatch.setattr(usertools, "_CONFIG_AT_START", {})
    usertools.settle()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 60.0, what: str = "the condition"
) -> None:
    """Until ``check()`` (awaited when it returns an awaitable) is true, asked every 0.1 s;
    the test fails when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.1)
