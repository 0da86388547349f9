"""The fence's launcher: ``python -I -S launcher.py --hide D ... --keep D ... -- ARGV``.

It runs between the runner and every agent (and every ``[setup]`` command and one-shot
question), so it is started once per story: standard library only, and only the cheapest
of it: ``_signal`` rather than ``signal`` (whose enums import ``enum`` and ``functools``),
no ``typing``, ``dataclasses`` or ``contextlib``. Python compiles a main script afresh on
every start, so it stays small. What the fence does and why: ``baro_shared.sandbox``.

A launcher may also be started before its agent is known (``serve``: on standby, see
``baro_runner.standby``): it then reads what to start from its standard input, so the
interpreter's start is off the story's path.
"""

from __future__ import annotations

import _signal
import ctypes
import errno
import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# The launcher's own exit code when the fence cannot be put up (as `env` and container
# runtimes use 125); the agent never started.
SETUP_FAILED = 125
ERROR_PREFIX = "baro sandbox: "
FORWARDED_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT)

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

libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class SandboxError(OSError):
    pass


def _call(name: str, *args: object) -> None:
    assert libc is not None
    if getattr(libc, name)(*args) != 0:
        code = ctypes.get_errno()
        raise SandboxError(code, f"{name}: {os.strerror(code)}")


def prctl(option: int, value: int) -> None:
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
        (path, os.open(path, os.O_PATH | (0 if path in read_only else os.O_DIRECTORY)),
         path in read_only)
        for path in [*kept, *read_only]
    ]  # fmt: skip
    covered: list[str] = []
    for path in sorted(hidden, key=len):
        if any(_under(path, done) for done in covered):
            continue  # already empty: an ancestor is hidden
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=64k")
        covered.append(path)

    def hidden_at(path: str) -> bool:
        return any(path == done or _under(path, done) for done in covered)

    # a read-only folder is moved aside with any folder above it, and another put in its
    # place: each folder above one (up to the root) is made a mount point of its own,
    # writable as it was, which cannot be renamed or removed
    for folder in sorted({a for p in read_only for a in _ancestors(p)} - {"/"}, key=len):
        if not hidden_at(folder):
            _mount(folder, folder, None, MS_BIND | MS_REC, None)
    for path, fd, read_only_path in kept_fds:
        hidden_here = hidden_at(path)
        if hidden_here:
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, exist_ok=True)
            else:  # a file: mounted on an empty one
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        elif not read_only_path and any(_under(path, ro) for ro in read_only):
            # writable inside a read-only folder: a mount of its own, made before the
            # folder's own (kept come first), which takes it along and leaves it writable
            _mount(path, path, None, MS_BIND | MS_REC, None)
        if read_only_path:
            # a bind of its own, so the remount touches only it; but the root is this
            # namespace's own copy already (and a mount over it would not be entered)
            if not hidden_here and path != "/":
                # from the path, not the descriptor: the mounts made inside it above
                # (a writable folder) come along
                _mount(path, path, None, MS_BIND | MS_REC, None)
            # the flags the kernel locked on the original mount must be kept
            locked = os.statvfs(path).f_flag & MOUNT_FLAGS_KEPT
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked, None)
        os.close(fd)


def _under(path: str, folder: str) -> bool:
    return path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


def _ancestors(path: str) -> list[str]:
    above = []
    while (parent := os.path.dirname(path)) != path:
        above.append(parent)
        path = parent
    return above


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
            prctl(PR_CAPBSET_DROP, cap)
        except SandboxError as exc:
            if exc.errno == errno.EINVAL:
                break  # past the last capability this kernel knows
            raise
        cap += 1
    _call("prctl", ctypes.c_int(PR_CAP_AMBIENT), ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL),
          ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))  # fmt: skip
    prctl(PR_SET_SECUREBITS, SECUREBITS_NO_ROOT)
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def _forward_signals_to(pid: int) -> None:
    def forward(received: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is not imported here
            os.kill(pid, received)
        except ProcessLookupError:
            pass

    for sig in FORWARDED_SIGNALS:
        _signal.signal(sig, forward)


def _exit_like(status: int) -> NoReturn:
    """Leave the way the waited-for process left."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        _signal.signal(sig, _signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # pid 1 of a namespace cannot be killed by its own signal
    os._exit(os.waitstatus_to_exitcode(status))


def _init(
    command: list[str], cwd: str, report: int, inline: tuple[object, list[str]] | None
) -> NoReturn:
    """PID 1 of the agent's namespace: mounts its /proc, starts the agent, forwards
    signals to it, reaps orphans, and leaves when the agent does (the kernel then kills
    whatever the agent left running). The agent's wait status goes to ``report``: PID 1
    cannot die of a signal it sends itself, so the launcher outside reproduces it."""
    prctl(PR_SET_PDEATHSIG, _signal.SIGKILL)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    os.chdir(cwd)  # again, through the mounts: the kept workspace, not the hidden original
    agent = os.fork()
    if agent == 0:
        try:
            prctl(PR_SET_PDEATHSIG, _signal.SIGKILL)
            _drop_privileges()
            if inline is not None:
                _run_inline(*inline)
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


def _die_with(parent: int) -> None:
    """Be killed when ``parent`` (the process that started the launcher) ends; and now,
    when it has ended already. Asked here rather than between the parent's fork and exec:
    a ``preexec_fn`` makes Python fork the whole parent, its event loop stopped meanwhile
    (about 12 ms for a 150 MB process), where it could otherwise spawn in about 1 ms."""
    prctl(PR_SET_PDEATHSIG, _signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), _signal.SIGKILL)


def _parse(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    options: dict[str, list[str]] = {
        "--hide": [], "--keep": [], "--read-only": [], "--parent": [], "--preload": []
    }  # fmt: skip
    while args and args[0] != "--":
        flag, value, args = args[0], args[1], args[2:]
        options[flag].append(value)
    return options, args[1:]


def launch(args: list[str]) -> NoReturn:
    options, command = _parse(args)
    _fence_and_run(options, command, os.getcwd())


def serve(args: list[str]) -> NoReturn:
    """Wait on standby for the agent to start: ``--parent PID`` (killed with it meanwhile),
    ``--preload DIR:MODULE`` (imported now, so that an agent that is that module runs in
    this interpreter: its ``main(argv)`` is called instead of starting Python again).
    The agent comes on standard input, as a marshalled ``dict``: ``argv``, ``env``,
    ``cwd``, ``stdin`` (a file, or None), ``hide``, ``keep``, ``read_only`` and ``inline``
    (the module's arguments when the agent is the preloaded module, else None)."""
    options, _ = _parse(args)
    for parent in options["--parent"]:
        _die_with(int(parent))
    preloaded = None
    try:
        for entry in options["--preload"]:
            folder, _, module = entry.rpartition(":")
            sys.path.append(folder)
            preloaded = __import__(module, fromlist=["main"])
        chunks = []
        while chunk := os.read(0, 1 << 16):
            chunks.append(chunk)
        if not chunks:
            os._exit(0)  # stood down: the runner closed the pipe without an agent
        request = marshal.loads(b"".join(chunks))
        os.chdir(request["cwd"])
        prompt = os.open(request["stdin"] or os.devnull, os.O_RDONLY)
        os.dup2(prompt, 0)
        os.close(prompt)
        os.environ.clear()  # what the agent sees (and what exec passes on and searches)
        os.environ.update(request["env"])
    except (OSError, ValueError, EOFError, TypeError, KeyError, ImportError) as exc:
        sys.stderr.write(f"{ERROR_PREFIX}standby launcher: {exc}\n")
        sys.stderr.flush()
        os._exit(SETUP_FAILED)
    options.update(
        {"--hide": request["hide"], "--keep": request["keep"], "--read-only": request["read_only"]}
    )
    inline = (preloaded, request["inline"]) if preloaded and request["inline"] is not None else None
    _fence_and_run(options, request["argv"], os.getcwd(), inline)


def _fence_and_run(
    options: dict[str, list[str]],
    command: list[str],
    cwd: str,
    inline: tuple[object, list[str]] | None = None,
) -> NoReturn:
    try:
        _enter(options["--hide"], options["--keep"], options["--read-only"])
        for parent in options["--parent"]:  # after the namespaces: their new credentials
            _die_with(int(parent))  # must not clear the signal
        reported, report = os.pipe()  # not inherited by the agent (close-on-exec)
        child = os.fork()
        if child == 0:
            os.close(reported)
            try:
                _init(command, cwd, report, inline)
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


def _run_inline(module: object, argv: list[str]) -> NoReturn:
    """The preloaded module's ``main(argv)`` as its own program would run it, leaving
    with its exit code (without the interpreter's finalization)."""
    sys.argv = [sys.argv[0], *argv]
    try:
        code = module.main(argv)  # type: ignore[attr-defined]
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        code = 120  # what the interpreter's own exit gives when it cannot flush
    os._exit(code or 0)


if __name__ == "__main__":
    launch(sys.argv[1:])
