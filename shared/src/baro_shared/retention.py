"""What a machine keeps of finished runs: the newest ``BARO_KEEP_RUNS``, not every one.

Every run leaves something behind on the machines that ran it: the merger's integration
repository, the workspaces of failed attempts on a runner, ``refs/baro/<run>/`` in a local
user's repository, its objects in the object store. Kept forever, that is disk that grows
with every run. So each service, when a new run reaches it, forgets the finished runs it
holds beyond the newest ``keep`` (by when they finished), as ``baro clean RUN`` would; a
run that has not finished, or whose record cannot be read, is never touched.

``beyond`` is the pure choice; the services do the removing (docs/configuration.md,
"What a machine keeps").
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from baro_shared import objectcache
from baro_shared import schemas as s


class Records(Protocol):
    """The run records, as far as retention needs them (``Bus`` is one)."""

    async def get_record(self, run_id: str) -> tuple[s.RunRecord, int] | None: ...


def beyond(finished: dict[str, float], keep: int) -> list[str]:
    """The runs to forget: all of ``finished`` (run id -> when it finished) but the
    newest ``keep``, oldest first (ties broken by run id, so the choice is stable)."""
    order = sorted(finished, key=lambda run_id: (finished[run_id], run_id))
    return order[: max(0, len(order) - keep)]


async def finished_records(
    records: Records, run_ids: Iterable[str], *, current: str | None = None
) -> dict[str, s.RunRecord]:
    """The records of those of ``run_ids`` that reached a final state (``current``, the
    run at hand, never)."""
    found = {}
    for run_id in run_ids:
        if run_id == current:
            continue
        got = await records.get_record(run_id)
        if got is not None and got[0].state in s.TERMINAL_RUN_STATES:
            found[run_id] = got[0]
    return found


async def to_forget(
    records: Records, run_ids: Iterable[str], keep: int, *, current: str | None = None
) -> list[s.RunRecord]:
    """The finished runs among ``run_ids`` beyond the newest ``keep``, oldest first."""
    ids = [r for r in dict.fromkeys(run_ids) if r != current]
    if len(ids) <= keep:  # nothing to forget whatever their state: no record is read
        return []
    finished = await finished_records(records, ids)
    when = {r: rec.finished_at or rec.updated_at for r, rec in finished.items()}
    return [finished[r] for r in beyond(when, keep)]


def remove_workspaces(workspaces_dir: Path, run_id: str) -> bool:
    """Remove what a run left under ``workspaces_dir/<run>`` (each workspace released
    from the source cache it borrows from first); True when there was something."""
    run_dir = workspaces_dir / run_id
    if not run_dir.is_dir():
        return False
    for ws in run_dir.iterdir():
        objectcache.release(ws / "repo" / ".git")
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def drop_if_empty(run_dir: Path) -> None:
    """A run's workspace directory goes with its last workspace."""
    with contextlib.suppress(OSError):
        run_dir.rmdir()
