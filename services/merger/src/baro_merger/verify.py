"""The verification gate: the repository's ``[verify] command`` run on the integrated result.

The command runs in a throwaway checkout of the head, made from the integration
repository (``git clone --shared``: no object is copied), never in the user's checkout.
It gets its own process group, so a timeout stops everything it started, and the
environment of ``baro_shared.backends.check_env``: what agents get (no ``BARO_*`` or
``NATS_*``), minus every credential-named variable (provider keys, ``GH_TOKEN``...): the
command runs code the agents wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from baro_merger.errors import MergerError
from baro_shared.backends import check_env
from baro_shared.gitutil import git

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
    env = check_env(workdir=cwd)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return 127, f"cannot start {argv[0]}: {exc}"
    tail = _Tail(excerpt_chars)
    code: int | None
    try:
        code = await asyncio.wait_for(_drain_and_wait(proc, tail), timeout=timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        code = None
        tail.add(f"\n[baro: verify command timed out after {timeout:g}s]\n".encode())
    return code, tail.text()


async def _drain_and_wait(proc: asyncio.subprocess.Process, tail: _Tail) -> int:
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(65536):
        tail.add(chunk)
    return await proc.wait()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _Tail:
    """Keeps the last ``limit`` characters of a stream (decoded at the end)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit * 4  # bytes; a character is at most four of them
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > 2 * self._limit:
            del self._data[: -self._limit]

    def text(self) -> str:
        text = self._data.decode("utf-8", "replace")
        return text[-self._limit // 4 :]
