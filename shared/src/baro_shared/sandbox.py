"""The fence around every agent process: it sees no other process and none of baro's files.

An agent runs as the user who runs baro, so without a fence it could read whatever that
user can: the runner's environment and memory through ``/proc`` (the bus credential,
``BARO_API_TOKEN``), baro's state directory (the embedded server's token), the other
workspaces in the cache, the user's own working tree. On Linux, where the kernel lets an
unprivileged process create namespaces, each agent gets:

- a **PID namespace** with its own ``/proc``: no other process of the machine is visible,
  so no ``environ``, ``cmdline`` or memory to read, and no process to signal or trace;
  everything the agent started dies with it, ``setsid`` or not;
- a **mount namespace** in which the hidden directories (baro's state and cache
  directories, the user's repository) are empty, private ``tmpfs`` mounts, except the
  directories kept (the agent's own workspace, mounted back at its own path) and the
  directories shown read-only (the source object cache its clone borrows from: its files
  may be hard links of the user's own objects, so the agent must not rewrite them);
- a **user namespace** mapping the user to itself, so nothing needs root; the agent keeps
  no capability in it (the bounding set is emptied, ``no_new_privs`` set), so it cannot
  undo the mounts.

The network is shared: agents talk to their model provider. The bus is protected by its
credential, which the fence keeps out of reach. What the fence does not cover, and what
holds where it is unavailable, is in docs/backends.md ("The agent sandbox").

This module is also the launcher, run as ``python -I -S sandbox.py --hide D ... -- ARGV``
between the runner and the agent: standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

LAUNCHER = os.path.abspath(__file__)
# The launcher's own exit code when the fence cannot be put up (as `env` and container
# runtimes use 125); the agent never started.
SETUP_FAILED = 125
ERROR_PREFIX = "baro sandbox: "

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
# SECBIT_NOROOT and SECBIT_NO_SETUID_FIXUP, each with its lock: uid 0 gains nothing on exec
SECUREBITS_NO_ROOT = 0b1111
NOBODY = 65534
# ST_NOSUID, ST_NODEV, ST_NOEXEC, ST_NOATIME, ST_NODIRATIME, ST_RELATIME (statvfs's values
# are the mount flags')
MOUNT_FLAGS_KEPT = 2 | 4 | 8 | 1024 | 2048 | 4096

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class SandboxError(OSError):
    pass


def _call(name: str, *args: object) -> None:
    assert _libc is not None
    if getattr(_libc, name)(*args) != 0:
        code = ctypes.get_errno()
        raise SandboxError(code, f"{name}: {os.strerror(code)}")


def _prctl(option: int, value: int) -> None:
    _call("prctl", ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0),
          ctypes.c_ulong(0), ctypes.c_ulong(0))  # fmt: skip


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    try:
        _call("mount", c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data))
    except SandboxError as exc:
        raise SandboxError(
            exc.errno, f"mount {fstype or source} on {target}: {exc.strerror}"
        ) from None


# --------------------------------------------------------------------------- baro's side


def protect_this_process() -> None:
    """Make this process's ``/proc`` entries (``environ``, ``mem``, ``fd``, ...) and memory
    unreadable, and the process untraceable, for other processes of the same user that
    lack ``CAP_SYS_PTRACE``: agents running outside a sandbox. (Root is not stopped by it.)
    Every baro process calls it at start-up; a child is dumpable again once it execs."""
    if _libc is not None:
        _prctl(PR_SET_DUMPABLE, 0)


@dataclass(frozen=True)
class Fence:
    """What one agent may not see: ``hidden`` directories are empty for it, except the
    ``kept`` directories inside them (its workspace) and the ``read_only`` ones (what its
    clone borrows objects from)."""

    hidden: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started inside this fence."""
        launcher = [sys.executable, "-I", "-S", LAUNCHER]
        for path in self.hidden:
            launcher += ["--hide", path]
        for path in self.kept:
            launcher += ["--keep", path]
        for path in self.read_only:
            launcher += ["--read-only", path]
        return [*launcher, "--", *argv]


def fence(
    hidden: Sequence[os.PathLike[str] | str | None],
    kept: Sequence[os.PathLike[str] | str],
    read_only: Sequence[os.PathLike[str] | str] = (),
) -> Fence:
    """A fence over the existing ``hidden`` directories (``None`` entries skipped)."""
    paths = {os.path.realpath(os.path.expanduser(p)) for p in hidden if p is not None}
    return Fence(
        hidden=tuple(sorted(p for p in paths if os.path.isdir(p) and p != "/")),
        kept=tuple(sorted({os.path.realpath(p) for p in kept})),
        read_only=tuple(sorted({os.path.realpath(p) for p in read_only if os.path.isdir(p)})),
    )


_probed: dict[Fence, str | None] = {}


def unavailable_reason(probe_fence: Fence) -> str | None:
    """Why agents cannot be fenced on this machine (None: they can). Tried once per fence
    and remembered: a real launch of ``true`` inside it."""
    if probe_fence in _probed:
        return _probed[probe_fence]
    reason: str | None
    if _libc is None:
        reason = f"needs Linux namespaces (this is {sys.platform})"
    else:
        import subprocess  # not needed by the launcher

        try:
            done = subprocess.run(
                probe_fence.command(["true"]),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=30,
                cwd="/",
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"the launcher did not run: {exc}"
        else:
            error = done.stderr.strip().splitlines()
            reason = (
                None
                if done.returncode == 0
                else (
                    error[-1].removeprefix(ERROR_PREFIX)
                    if error
                    else f"exit code {done.returncode}"
                )
            )
    _probed[probe_fence] = reason
    return reason


# --------------------------------------------------------------------------- the launcher


def _enter(hidden: list[str], kept: list[str], read_only: list[str]) -> None:
    """Unshare the user, mount and PID namespaces and hide what must be hidden."""
    uid, gid = os.geteuid(), os.getegid()
    _call("unshare", CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{_inside(uid)} {uid} 1")
    _write("/proc/self/gid_map", f"{_inside(gid)} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)  # nothing propagates back out
    # opened in the new namespace before anything is hidden: the kept directories are
    # mounted back from these
    kept_fds = [
        (path, os.open(path, os.O_PATH | os.O_DIRECTORY), path in read_only)
        for path in [*kept, *read_only]
    ]
    covered: list[str] = []
    for path in sorted(hidden, key=len):
        if any(path.startswith(done + os.sep) for done in covered):
            continue  # already empty: an ancestor is hidden
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=64k")
        covered.append(path)
    for path, fd, read_only_path in kept_fds:
        hidden_here = any(path == done or path.startswith(done + os.sep) for done in covered)
        if hidden_here:
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        if read_only_path:
            if not hidden_here:  # a bind of its own, so the remount touches only it
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
            # the flags the kernel locked on the original mount must be kept
            locked = os.statvfs(path).f_flag & MOUNT_FLAGS_KEPT
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked, None)
        os.close(fd)


def _inside(outside: int) -> int:
    """The agent's id in its namespace: its own, except that root is not root in there
    (its files are still its own). A CLI that fences its tools in again (Codex runs
    bubblewrap) can then map itself in a namespace of its own, which the kernel refuses
    for a root without capabilities."""
    return outside if outside != 0 else NOBODY


def _write(path: str, text: str) -> None:
    with open(path, "w") as out:
        out.write(text)


def _drop_privileges() -> None:
    """No capability survives the agent's exec, and none can be gained later."""
    cap = 0
    while True:
        try:
            _prctl(PR_CAPBSET_DROP, cap)
        except SandboxError as exc:
            if exc.errno == errno.EINVAL:
                break  # past the last capability this kernel knows
            raise
        cap += 1
    _call("prctl", ctypes.c_int(PR_CAP_AMBIENT), ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL),
          ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))  # fmt: skip
    _prctl(PR_SET_SECUREBITS, SECUREBITS_NO_ROOT)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _forward_signals_to(pid: int) -> None:
    def forward(received: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, received)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)


def _exit_like(status: int) -> NoReturn:
    """Leave the way the waited-for process left."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # pid 1 of a namespace cannot be killed by its own signal
    os._exit(os.waitstatus_to_exitcode(status))


def _init(command: list[str], cwd: str, report: int) -> NoReturn:
    """PID 1 of the agent's namespace: mounts its /proc, starts the agent, forwards
    signals to it, reaps orphans, and leaves when the agent does (the kernel then kills
    whatever the agent left running). The agent's wait status goes to ``report``: PID 1
    cannot die of a signal it sends itself, so the launcher outside reproduces it."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    os.chdir(cwd)  # again, through the mounts: the kept workspace, not the hidden original
    agent = os.fork()
    if agent == 0:
        try:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            _drop_privileges()
            os.execvp(command[0], command)
        except OSError as exc:
            sys.stderr.write(f"{ERROR_PREFIX}cannot start {command[0]}: {exc.strerror or exc}\n")
            sys.stderr.flush()
        os._exit(127)
    _forward_signals_to(agent)
    while True:
        pid, status = os.wait()
        if pid == agent:
            os.write(report, str(status).encode())
            _exit_like(status)


def launch(args: list[str]) -> NoReturn:
    paths: dict[str, list[str]] = {"--hide": [], "--keep": [], "--read-only": []}
    while args and args[0] != "--":
        flag, value, args = args[0], args[1], args[2:]
        paths[flag].append(value)
    command = args[1:]
    cwd = os.getcwd()
    try:
        _enter(paths["--hide"], paths["--keep"], paths["--read-only"])
        reported, report = os.pipe()  # not inherited by the agent (close-on-exec)
        child = os.fork()
        if child == 0:
            os.close(reported)
            try:
                _init(command, cwd, report)
            except OSError as exc:
                sys.stderr.write(f"{ERROR_PREFIX}{exc.strerror or exc}\n")
                sys.stderr.flush()
                os._exit(SETUP_FAILED)
    except OSError as exc:
        sys.stderr.write(f"{ERROR_PREFIX}{exc.strerror or exc}\n")
        sys.exit(SETUP_FAILED)
    os.close(report)
    _forward_signals_to(child)  # a stop asked of the launcher reaches the agent
    _, status = os.waitpid(child, 0)
    agent_status = os.read(reported, 32)
    _exit_like(int(agent_status) if agent_status.isdigit() else status)


if __name__ == "__main__":
    launch(sys.argv[1:])
