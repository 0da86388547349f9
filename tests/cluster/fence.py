"""Run a command as if on a machine of its own: ``python fence.py HIDE KEEP -- CMD...``.

The command runs in a private mount namespace in which the directory HIDE is an empty
tmpfs, except for KEEP (a directory under HIDE), which is bind-mounted back at its own
path. HIDE is the test's world (the user's repository, the merger's disk, the NATS stores,
the other runners' disks); KEEP is the runner's own cache. Whatever the command or its
children (git, the agent) try to open under HIDE outside KEEP does not exist for them, and
``/proc/<pid>/root`` shows the test what the process sees.

As root this needs only a mount namespace; otherwise a user namespace maps the caller to
itself first (the kernel must allow unprivileged user namespaces). Standard library only:
it runs before the command's own environment exists.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fence: {what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    enc = lambda v: v.encode() if v is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def enter_namespace() -> None:
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        return
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny")
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"{gid} {gid} 1")


def fence(hide: str, keep: str) -> None:
    hide, keep = os.path.realpath(hide), os.path.realpath(keep)
    if os.path.commonpath([hide, keep]) != hide or hide == keep:
        raise SystemExit(f"fence: {keep} is not inside {hide}")
    os.makedirs(keep, exist_ok=True)
    enter_namespace()
    _mount(None, "/", None, MS_REC | MS_PRIVATE, "")  # nothing leaks back to the host
    kept = os.open(keep, os.O_PATH | os.O_DIRECTORY)
    _mount("tmpfs", hide, "tmpfs", 0, f"mode=0755,uid={os.geteuid()},gid={os.getegid()}")
    os.makedirs(keep, exist_ok=True)
    _mount(f"/proc/self/fd/{kept}", keep, None, MS_BIND | MS_REC, "")
    os.close(kept)
    os.chdir(keep)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        raise SystemExit("usage: fence.py HIDE KEEP -- COMMAND [ARG...]")
    hide, keep, command = argv[0], argv[1], argv[3:]
    fence(hide, keep)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
