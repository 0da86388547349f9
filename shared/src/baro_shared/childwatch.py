"""Learning that a child process ended without a thread per child.

On Python 3.11 asyncio learns that a subprocess ended from a thread it starts for each
child (``ThreadedChildWatcher``), and the event loop waits for that thread to start:
about half a millisecond per git command on an idle machine, more under load, and a
story runs dozens of them on the loop every service of a local run shares. Linux (5.3 and
later) gives a file descriptor that becomes readable when a process ends (``pidfd``);
Python 3.12 watches children that way by itself. ``watch_children_by_pidfd`` makes 3.11
do the same, for whichever loop starts the child (tests start several loops, one after
another and in threads).
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

_installed = False


class PidfdWatcher(asyncio.AbstractChildWatcher):
    """Each child's end is read from its pidfd on the loop that started it."""

    def __init__(self) -> None:
        self._children: dict[int, tuple[asyncio.AbstractEventLoop, int]] = {}

    def add_child_handler(self, pid: int, callback: Callable[..., Any], *args: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # reaped elsewhere already: its exit code is lost
            loop.call_soon(callback, pid, 255, *args)
            return
        self._children[pid] = (loop, pidfd)
        loop.add_reader(pidfd, self._reap, pid, callback, args)

    def _reap(self, pid: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        loop, pidfd = self._children.pop(pid)
        loop.remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            returncode = 255
        finally:
            os.close(pidfd)
        callback(pid, returncode, *args)

    def remove_child_handler(self, pid: int) -> bool:
        found = self._children.pop(pid, None)
        if found is None:
            return False
        loop, pidfd = found
        loop.remove_reader(pidfd)
        os.close(pidfd)
        return True

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass  # every child is watched on the loop that started it

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __enter__(self) -> PidfdWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def watch_children_by_pidfd() -> bool:
    """Watch this process's asyncio children by pidfd where Python does not already
    (3.11 on Linux); a kernel or sandbox without pidfds keeps Python's thread per child.
    Returns whether the pidfd watcher is in place."""
    global _installed
    if _installed or sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return _installed
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.get_event_loop_policy().set_child_watcher(PidfdWatcher())
    _installed = True
    return True
