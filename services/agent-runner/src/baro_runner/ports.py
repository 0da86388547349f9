"""A block of TCP ports for each running story, so parallel agents' servers do not collide.

The ports from ``BARO_PORT_RANGE_START`` on are cut into blocks of ``BARO_PORT_COUNT``;
a story holds one block from its workspace setup to the end of its agent, and its setup
command and agent see it as ``BARO_PORT_BASE``, ``BARO_PORT_COUNT`` and ``PORT`` (the
block's first port, the variable most dev servers read).

A block is held by an exclusive ``flock`` on ``<state dir>/ports/<block>.lock``: every
runner process of this machine and user (several ``baro run`` at once included) sees the
same locks, and a lock goes with the process that held it, so a killed runner frees its
blocks. The choice of a block is a plain function (``first_free``); the locks are the
edge.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_PORT = 65535


class NoFreePorts(RuntimeError):
    pass


@dataclass(frozen=True)
class PortRange:
    start: int  # the first port of block 0
    count: int  # ports per block
    blocks: int  # how many blocks there are

    def __post_init__(self) -> None:
        if self.start < 1 or self.count < 1 or self.blocks < 1:
            raise ValueError("a port range needs a start, a block size and blocks above 0")
        if self.start + self.count * self.blocks - 1 > MAX_PORT:
            raise ValueError(
                f"ports {self.start}..{self.start + self.count * self.blocks - 1} go past {MAX_PORT}"
            )

    def block(self, index: int) -> range:
        """The ports of block ``index``."""
        if not 0 <= index < self.blocks:
            raise IndexError(index)
        first = self.start + index * self.count
        return range(first, first + self.count)


def first_free(held: Collection[int], blocks: int) -> int | None:
    """The lowest block not in ``held`` (None when every block is held)."""
    return next((i for i in range(blocks) if i not in held), None)


def port_env(ports: range) -> dict[str, str]:
    """What a story's setup command and agent are told about their block."""
    return {
        "BARO_PORT_BASE": str(ports.start),
        "BARO_PORT_COUNT": str(len(ports)),
        "PORT": str(ports.start),
    }


@dataclass(frozen=True)
class PortLease:
    index: int
    ports: range

    @property
    def env(self) -> dict[str, str]:
        return port_env(self.ports)


class PortBlocks:
    """The machine's port blocks, taken through lock files under ``lock_dir``."""

    def __init__(self, lock_dir: Path, port_range: PortRange) -> None:
        self.lock_dir = lock_dir
        self.range = port_range
        self._held: dict[int, int] = {}  # block -> the fd holding its lock

    @contextlib.contextmanager
    def lease(self) -> Iterator[PortLease]:
        """Hold a free block while the ``with`` body runs."""
        lease = self.acquire()
        try:
            yield lease
        finally:
            self.release(lease)

    def acquire(self) -> PortLease:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        tried: set[int] = set(self._held)
        while (index := first_free(tried, self.range.blocks)) is not None:
            tried.add(index)
            fd = os.open(self.lock_dir / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._held[index] = fd
            return PortLease(index, self.range.block(index))
        last = self.range.block(self.range.blocks - 1).stop - 1
        raise NoFreePorts(
            f"every port block in {self.range.start}..{last} is held by a running story; "
            "raise BARO_PORT_BLOCKS or wait for stories to end"
        )

    def release(self, lease: PortLease) -> None:
        fd = self._held.pop(lease.index, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the lock
