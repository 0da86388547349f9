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

The launcher that puts the fence up, run as ``python -I -S -c 'import launcher ...' --hide
D ... -- ARGV`` between the runner and the agent, is ``baro_shared.launcher``: a module of
its own, so that what it imports at every agent start is only what it needs, and imported
rather than run as a script, so that it starts from its cached bytecode (Python compiles
a main script afresh at every start).
"""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from baro_shared import launcher
from baro_shared.launcher import ERROR_PREFIX, SETUP_FAILED

LAUNCHER = os.path.abspath(launcher.__file__)
# stdlib first: the launcher's directory only adds the launcher itself
_LAUNCH = (
    f"import sys; sys.path.append({os.path.dirname(LAUNCHER)!r}); "
    "import launcher; launcher.launch(sys.argv[1:])"
)
_STANDBY = _LAUNCH.replace("launcher.launch(", "launcher.serve(")
__all__ = [
    "ERROR_PREFIX",
    "LAUNCHER",
    "SETUP_FAILED",
    "Fence",
    "fence",
    "standby_command",
    "unavailable_reason",
]

# --------------------------------------------------------------------------- baro's side


def protect_this_process() -> None:
    """Make this process's ``/proc`` entries (``environ``, ``mem``, ``fd``, ...) and memory
    unreadable, and the process untraceable, for other processes of the same user that
    lack ``CAP_SYS_PTRACE``: agents running outside a sandbox. (Root is not stopped by it.)
    Every baro process calls it at start-up; a child is dumpable again once it execs."""
    if launcher.libc is not None:
        launcher.prctl(launcher.PR_SET_DUMPABLE, 0)


@dataclass(frozen=True)
class Fence:
    """What one agent may not see: ``hidden`` directories are empty for it, except the
    ``kept`` directories inside them (its workspace) and the ``read_only`` directories and
    files, which it can read and not change (what its clone borrows objects from, the
    user's git config)."""

    hidden: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()

    def command(self, argv: Sequence[str], *, dies_with: int | None = None) -> list[str]:
        """``argv`` started inside this fence. ``dies_with``: the pid of the process that
        starts the launcher itself (its parent, not a shell in between): the launcher, and
        with it everything inside the fence, is killed when that process ends."""
        launcher = [sys.executable, "-I", "-S", "-c", _LAUNCH]
        if dies_with is not None:
            launcher += ["--parent", str(dies_with)]
        for path in self.hidden:
            launcher += ["--hide", path]
        for path in self.kept:
            launcher += ["--keep", path]
        for path in self.read_only:
            launcher += ["--read-only", path]
        return [*launcher, "--", *argv]

    def request(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: os.PathLike[str] | str,
        stdin: os.PathLike[str] | str | None = None,
        inline: Sequence[str] | None = None,
    ) -> bytes:
        """What a launcher on standby (``standby_command``) reads to start ``argv`` inside
        this fence; ``inline``: the arguments of the module it preloaded, when ``argv``
        starts that module."""
        return marshal.dumps(
            {
                "argv": list(argv),
                "env": dict(env),
                "cwd": os.fspath(cwd),
                "stdin": None if stdin is None else os.fspath(stdin),
                "hide": list(self.hidden),
                "keep": list(self.kept),
                "read_only": list(self.read_only),
                "inline": None if inline is None else list(inline),
            }
        )


def standby_command(*, dies_with: int, preload: tuple[str, str] | None = None) -> list[str]:
    """A launcher started before its agent is known: it waits for a ``Fence.request`` on
    its standard input (``launcher.serve``). ``preload``: (folder, module) imported while
    it waits."""
    command = [sys.executable, "-I", "-S", "-c", _STANDBY, "--parent", str(dies_with)]
    if preload is not None:
        command += ["--preload", ":".join(preload)]
    return command


def fence(
    hidden: Sequence[os.PathLike[str] | str | None],
    kept: Sequence[os.PathLike[str] | str],
    read_only: Sequence[os.PathLike[str] | str] = (),
) -> Fence:
    """A fence over the existing ``hidden`` directories (``None`` entries skipped)."""
    paths = {os.path.realpath(os.path.expanduser(p)) for p in hidden if p is not None}
    kept_paths = {os.path.realpath(p) for p in kept}
    locked = {os.path.realpath(p) for p in read_only if os.path.exists(p)}
    return Fence(
        hidden=tuple(sorted(p for p in paths if os.path.isdir(p) and p != "/")),
        kept=tuple(sorted(kept_paths)),
        read_only=tuple(sorted(p for p in locked if not _read_only_already(p, locked, kept_paths))),
    )


def _read_only_already(path: str, read_only: set[str], kept: set[str]) -> bool:
    """Whether ``path`` lies in another read-only path with nothing kept writable between:
    mounted again, the folders above it would be pinned as mounts of their own, writable
    as they were before the outer one was made read-only."""
    return any(
        outer != path
        and _within(path, outer)
        and not any(_within(k, outer) and _within(path, k) for k in kept)
        for outer in read_only
    )


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


_probed: dict[Fence, str | None] = {}


def unavailable_reason(probe_fence: Fence) -> str | None:
    """Why agents cannot be fenced on this machine (None: they can). Tried once per fence
    and remembered: a real launch of ``true`` inside it."""
    if probe_fence in _probed:
        return _probed[probe_fence]
    reason: str | None
    if launcher.libc is None:
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
