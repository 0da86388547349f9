"""Agent processes never outlive the runner that started them.

Two layers: each agent gets the parent-death signal (Linux), so it is killed if its runner
dies without cleaning up; and each agent's process group is recorded on disk while it
runs, so a runner starting on the same machine kills groups a crashed predecessor left
(an agent's own children are not covered by the parent-death signal).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from baro_shared.processes import process_alive, set_parent_death_signal

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Runs in the child between fork and exec."""
    set_parent_death_signal(signal.SIGKILL)


class GroupRegistry:
    """Files ``<dir>/<pgid>`` naming the agent process groups this machine's runners own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def add(self, pgid: int, owner: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / str(pgid)).write_text(owner)

    def remove(self, pgid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / str(pgid)).unlink()

    def reap_orphans(self, live_owners: set[str]) -> int:
        """Kill recorded groups whose owner is not a live runner process; return how many."""
        if not self.directory.is_dir():
            return 0
        killed = 0
        for entry in self.directory.iterdir():
            if not entry.name.isdigit():
                continue
            owner = entry.read_text().strip()
            if owner in live_owners or process_alive(_owner_pid(owner)):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(entry.name), signal.SIGKILL)
                killed += 1
            entry.unlink(missing_ok=True)
        if killed:
            log.warning("killed %d agent process group(s) left by a crashed runner", killed)
        return killed


def _owner_pid(owner: str) -> int | None:
    tail = owner.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None
