"""The verification gate: the repository's ``[verify] command`` run on the integrated result.

The command runs in a throwaway checkout of the head, made from the integration
repository (``git clone --shared``: no object is copied), never in the user's checkout.
It runs as a process group of its own (``baro_shared.processes.run_in_group``): its end,
a timeout, a cancel or the merger's death stops everything it started. It gets the
environment of ``baro_shared.backends.check_env``: what agents get (no ``BARO_*`` or
``NATS_*``), minus every credential-named variable (provider keys, ``GH_TOKEN``...): the
command runs code the agents wrote.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from baro_merger.errors import MergerError
from baro_shared.backends import check_env
from baro_shared.gitutil import git
from baro_shared.processes import run_in_group

EXCERPT_CHARS = 4000


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    exit_code: int | None  # None when it timed out
    timed_out: bool
    output: str  # the tail of stdout and stderr, interleaved
    seconds: float


async def verify(
    repo: Path,
    head: str,
    command: str | list[str] | tuple[str, ...],
    *,
    timeout: float,
    work_root: Path | None = None,
    excerpt_chars: int = EXCERPT_CHARS,
) -> VerifyResult:
    """Run ``command`` in a temporary checkout of ``head`` of ``repo``.

    A string goes through ``/bin/sh -c``; a list runs as is. ``ok`` is exit code 0
    within ``timeout`` seconds. Raises MergerError when the checkout cannot be made.
    """
    started = time.monotonic()
    if work_root is not None:
        await asyncio.to_thread(work_root.mkdir, parents=True, exist_ok=True)
    scratch = await asyncio.to_thread(tempfile.mkdtemp, prefix="baro-verify-", dir=work_root)
    checkout = Path(scratch) / "checkout"
    try:
        await _checkout(repo, head, checkout)
        code, output = await _run(command, checkout, timeout, excerpt_chars)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    return VerifyResult(
        ok=code == 0,
        exit_code=code,
        timed_out=code is None,
        output=output,
        seconds=time.monotonic() - started,
    )


async def _checkout(repo: Path, head: str, checkout: Path) -> None:
    source = await asyncio.to_thread(repo.resolve)
    cloned = await git(
        "clone", "--quiet", "--shared", "--no-checkout", str(source), str(checkout), check=False
    )
    if cloned.returncode != 0:
        raise MergerError(f"cannot make a checkout to verify: {cloned.stderr.strip()}")
    switched = await git(
        "-c", "core.hooksPath=/dev/null", "checkout", "--quiet", "--detach", head,
        cwd=checkout,
        check=False,
    )  # fmt: skip
    if switched.returncode != 0:
        raise MergerError(f"cannot check out {head} to verify: {switched.stderr.strip()}")


async def _run(
    command: str | list[str] | tuple[str, ...], cwd: Path, timeout: float, excerpt_chars: int
) -> tuple[int | None, str]:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    result = await run_in_group(
        argv,
        cwd=cwd,
        env=check_env(workdir=cwd),
        timeout=timeout,
        keep_chars=excerpt_chars,
        on_timeout=f"\n[baro: verify command timed out after {timeout:g}s]\n",
    )
    return result.exit_code, result.output
