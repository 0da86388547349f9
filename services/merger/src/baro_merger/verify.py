"""The run gate: the run's checks on the integrated result.

Each check runs in a throwaway checkout of the head, made from the integration
repository (``git clone --shared``: no object is copied), never in the user's checkout,
the way ``baro_shared.checks`` runs every check: a process group of its own
(``baro_shared.processes.run_in_group``: its end, a timeout, a cancel or the merger's
death stops everything it started), the tail of its output, and the environment of
``baro_shared.backends.check_env``: what agents get (no ``BARO_*`` or ``NATS_*``), minus
every credential-named variable (provider keys, ``GH_TOKEN``...): the checks run code
the agents wrote. For the same reason each runs inside the agents' fence
(``baro_shared.backends.agent_fence``, given by the caller per checkout): baro's state
and cache, the user's repository and the hidden paths out of sight, the checkout kept,
the objects it borrows readable. A detected check that fails runs once more on the run's
base.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from baro_merger.errors import MergerError
from baro_shared.backends import check_env
from baro_shared.checks import Check, Wrap, run_checks
from baro_shared.gitutil import own_git
from baro_shared.schemas import CheckResult


async def run_gate(
    repo: Path,
    head: str,
    base: str,
    found: Sequence[Check],
    work_root: Path | None = None,
    fence_for: Callable[[Path], Wrap | None] | None = None,
) -> list[CheckResult]:
    """Run ``found`` on ``head`` of ``repo`` (a detected check that fails, on ``base``
    too), each checkout's commands wrapped by ``fence_for(checkout)``. Raises MergerError
    when a checkout cannot be made."""

    def wrap(tree: Path) -> Wrap | None:
        return fence_for(tree) if fence_for is not None else None

    async def at_base(suspect: list[Check]) -> list[CheckResult]:
        async with checkout(repo, base, work_root) as tree:
            return await run_checks(suspect, tree, check_env(workdir=tree), wrap=wrap(tree))

    async with checkout(repo, head, work_root) as tree:
        return await run_checks(found, tree, check_env(workdir=tree), at_base, wrap(tree))


@asynccontextmanager
async def checkout(repo: Path, commit: str, work_root: Path | None) -> AsyncIterator[Path]:
    """A throwaway checkout of ``commit`` (``git clone --shared``: no object is copied),
    removed afterwards. Raises MergerError when it cannot be made."""
    if work_root is not None:
        await asyncio.to_thread(work_root.mkdir, parents=True, exist_ok=True)
    scratch = await asyncio.to_thread(tempfile.mkdtemp, prefix="baro-verify-", dir=work_root)
    tree = Path(scratch) / "checkout"
    try:
        await _checkout(repo, commit, tree)
        yield tree
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


async def _checkout(repo: Path, head: str, checkout: Path) -> None:
    source = await asyncio.to_thread(repo.resolve)
    cloned = await own_git(
        "clone", "--quiet", "--shared", "--no-checkout", str(source), str(checkout), check=False
    )
    if cloned.returncode != 0:
        raise MergerError(f"cannot make a checkout to verify: {cloned.stderr.strip()}")
    switched = await own_git(
        "-c", "core.hooksPath=/dev/null", "checkout", "--quiet", "--detach", head,
        cwd=checkout,
        check=False,
    )  # fmt: skip
    if switched.returncode != 0:
        raise MergerError(f"cannot check out {head} to verify: {switched.stderr.strip()}")
