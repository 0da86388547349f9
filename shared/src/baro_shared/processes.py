"""Process lifetimes: children that die with their parent, and who owns a local run.

Linux's parent-death signal ties a child to the thread that started it: when that thread
ends (the process dying included, by kill -9 too) the kernel sends the child a signal. An
agent gets SIGKILL; the embedded nats-server gets SIGTERM, so it closes its store cleanly.

A local run is owned by the ``baro run`` process that drives it on its embedded server.
Its owner is recorded as pid, host, the process's start time and the kernel's boot id, so
"is the owner still running?" is answered exactly on the same machine (a reused pid has
another start time) and never guessed from another one.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
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
