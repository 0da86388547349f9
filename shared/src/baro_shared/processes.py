"""Process lifetimes: children that die with their parent, and who owns a local run.

Linux's parent-death signal ties a child to the thread that started it: when that thread
ends (the process dying included, by kill -9 too) the kernel sends the child a signal. An
agent gets SIGKILL; the embedded nats-server gets SIGTERM, so it closes its store cleanly.

A local run is owned by the ``baro run`` process that drives it on its embedded server.
Its owner is recorded as pid, host, the process's start time and the kernel's boot id, so
"is the owner still running?" is answered exactly on the same machine (a reused pid has
another start time) and never guessed from another one.

The repository's own commands (merger verify, runner setup) run as a process group whose
leader is a small guard shell (``run_in_group``): it gets the parent-death signal and then
kills its whole group, so what the command started dies with the service too, not only the
command itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from baro_shared import schemas as s

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def set_parent_death_signal(sig: int) -> None:
    """In a child, between fork and exec: receive ``sig`` when the parent thread ends."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, sig)


def dies_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` giving the child ``sig`` when the thread that starts it ends.

    Made in the parent, so the child can tell when the parent died before the child
    asked for the signal (the kernel would then never send it) and signal itself.
    """
    parent = os.getpid()

    def preexec() -> None:
        set_parent_death_signal(sig)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def process_alive(pid: int | None) -> bool:
    """Does ``pid`` run (a zombie, dead but not yet reaped, does not)?"""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _stat(pid)
    return stat is None or stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc, if readable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain anything
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def current_owner(command: str) -> s.RunOwner:
    """This process, as the owner of the runs it drives."""
    pid = os.getpid()
    stat = _stat(pid)
    return s.RunOwner(
        pid=pid,
        host=socket.gethostname(),
        started=stat[1] if stat else None,
        boot=_boot_id(),
        command=command,
    )


def owner_gone(owner: s.RunOwner | None) -> bool:
    """True when ``owner`` is known to have stopped; False for the cluster (None), for a
    live owner, and for an owner on another host (there is no telling from here)."""
    if owner is None or owner.host != socket.gethostname():
        return False
    boot = _boot_id()
    if owner.boot and boot and owner.boot != boot:
        return True  # the machine restarted since
    if not process_alive(owner.pid):
        return True
    if owner.started is not None:
        stat = _stat(owner.pid)
        if stat is not None and stat[1] != owner.started:
            return True  # the pid now names another process
    return False


def describe_owner(owner: s.RunOwner | None) -> str:
    if owner is None:
        return "the cluster"
    return f"{owner.command} (pid {owner.pid} on {owner.host})"


def interruption(record: s.RunRecord, now: float | None = None) -> s.Interruption | None:
    """Why ``record`` is interrupted: as recorded, or because its owner is gone although
    no conductor has parked it yet; None for a run that is finished or still driven."""
    if record.state in s.TERMINAL_RUN_STATES:
        return None
    if record.interrupted is not None:
        return record.interrupted
    if owner_gone(record.owner):
        return s.Interruption(
            at=time.time() if now is None else now,
            reason=f"{describe_owner(record.owner)} stopped before the run finished",
            owner=record.owner,
        )
    return None


def with_interruption(record: s.RunRecord) -> s.RunRecord:
    """``record`` with ``interrupted`` filled in when its owner is gone (for showing it)."""
    found = interruption(record)
    if found is None or record.interrupted is not None:
        return record
    return msgspec.structs.replace(record, interrupted=found)


# ---- commands that take everything they started with them

# The group's leader: it runs the command in the background of its own group and waits for
# it; on SIGTERM (the parent-death signal) the trap kills the whole group, itself included.
_GROUP_GUARD = 'trap "kill -KILL 0" TERM; "$@" & wait $!'
READ_REST_S = 2.0  # after the command exits, how long output still open elsewhere is read


@dataclass(frozen=True)
class GroupResult:
    exit_code: int | None  # None: it ran past its timeout
    output: str  # the last characters of its stdout and stderr, interleaved


class OutputTail:
    """The last ``limit`` characters of a stream (decoded at the end)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit * 4  # bytes; a character is at most four of them
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > 2 * self._limit:
            del self._data[: -self._limit]

    def text(self) -> str:
        return self._data.decode("utf-8", "replace")[-self._limit // 4 :]


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def run_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    keep_chars: int,
    on_timeout: str = "",
) -> GroupResult:
    """Run ``argv`` in a process group of its own that nothing it starts outlives.

    The group is killed when the command exits (what it left in the background goes with
    it), when ``timeout`` passes, when the caller is cancelled, and, through the guard's
    parent-death signal, when the thread that started it dies (a kill -9 of the service
    included). A command that leaves the group on purpose (setsid) is not covered.
    A program that cannot be found is exit code 127 with a line saying so.
    """
    if not _findable(argv[0], cwd, env.get("PATH", os.defpath)):
        return GroupResult(127, f"cannot start {argv[0]}: no such program")
    tail = OutputTail(keep_chars)
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            "/bin/sh", "-c", _GROUP_GUARD, "baro", *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dies_with_parent(signal.SIGTERM),
        )
    )  # fmt: skip
    try:
        # the command runs before its pipes are connected: a cancel in between must still
        # take its group (asyncio would kill only the leader)
        proc = await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            started = await starting
            kill_group(started.pid)
            await started.wait()
        raise
    assert proc.stdout is not None
    reading = asyncio.ensure_future(_read_into(proc.stdout, tail))
    code: int | None = None
    try:
        code = await asyncio.wait_for(proc.wait(), timeout=timeout)
    except TimeoutError:
        pass
    finally:
        kill_group(proc.pid)
        await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), READ_REST_S)
        reading.cancel()
    if code is None:
        tail.add(on_timeout.encode())
    return GroupResult(code, tail.text())


def _findable(program: str, cwd: Path, path: str) -> bool:
    if "/" in program:  # a path: relative to where the command runs, not to this process
        target = cwd / program
        return target.is_file() and os.access(target, os.X_OK)
    return shutil.which(program, path=path) is not None


async def _read_into(stream: asyncio.StreamReader, tail: OutputTail) -> None:
    while chunk := await stream.read(65536):
        tail.add(chunk)
