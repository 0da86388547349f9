"""The user's tools and global git config as baro found them before any agent started.

Outside the fence baro runs programs and reads git config on the user's behalf: git
itself, ``gh`` and ``ssh`` to publish, a signing program for the delivered commits, a
desktop notification's program, the embedded nats-server, and git reading the user's
global config for their identity, credential helpers and URL rewrites. An agent's fence
keeps the home directory writable (its tools keep their state there) and the folders of
``PATH`` in it with it, so a ``gh`` an agent puts in ``~/.local/bin``, or a
``~/.gitconfig`` it writes where the user has none, would be what baro runs next, as the
user. Hence:

- each tool is looked up on ``PATH`` once (``tool``), at the process's start
  (``settle``, before it starts any agent), and one the user could replace is read-only
  in the fence (``replaceable_tools``);
- git reading the user's config reads only the global config files that were there at
  the start (``user_config_env``); where one of them, or a file they include, was
  added, removed or made to lead elsewhere since, it reads none. The files they include
  that were there are read-only in the fence with the global files themselves
  (``read_only_config``).

Both are remembered per ``PATH`` and per home directory: a process's own never change,
and tests that set them anew get a first sight of their own.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

TOOLS = (
    "git", "gh", "ssh", "gpg", "gpgsm", "ssh-keygen",  # git, publishing, signing
    "notify-send", "osascript",  # desktop notifications
    "nats-server",  # the embedded server, when it is not beside baro's interpreter
)  # fmt: skip

_FOUND: dict[str, dict[str, str]] = {}
# the global config files there or not -> each of them and of the files they include
# (any condition, followed from the files there) -> where it led at the start (None: not there)
_CONFIG_AT_START: dict[tuple[Path, ...], dict[Path, str | None]] = {}
MAX_INCLUDE_DEPTH = 10  # git's own limit
_WARNED: set[Path] = set()


def found_tools() -> dict[str, str]:
    """Each of ``TOOLS`` on this ``PATH`` (absolute), as first found with it."""
    path = os.environ.get("PATH", os.defpath)
    found = _FOUND.get(path)
    if found is None:
        located = {name: shutil.which(name, path=path) for name in TOOLS}
        found = _FOUND[path] = {name: where for name, where in located.items() if where}
    return found


def tool(name: str) -> str | None:
    """Where ``name`` (one of ``TOOLS``) was found on this ``PATH``, or None."""
    return found_tools().get(name)


def replaceable_tools() -> list[Path]:
    """The found tools this user could overwrite, rename or remove: read-only in the fence."""
    out = []
    for where in found_tools().values():
        path = Path(where)
        if os.access(path, os.W_OK) or os.access(path.parent, os.W_OK):
            out.append(path)
    return out


def _xdg_git_folder() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "git"


def global_config_files() -> tuple[Path, ...]:
    """The files git reads as the user's global config, there or not."""
    named = os.environ.get("GIT_CONFIG_GLOBAL")
    if named is not None:
        return () if named in ("", os.devnull) else (Path(named),)
    return (_xdg_git_folder() / "config", Path.home() / ".gitconfig")


def _config_files_at_start() -> dict[Path, str | None]:
    candidates = global_config_files()
    seen = _CONFIG_AT_START.get(candidates)
    if seen is None:
        seen = _CONFIG_AT_START[candidates] = {}
        for path in candidates:
            _note(path, seen, MAX_INCLUDE_DEPTH)
    return seen


def _leads_to(path: Path) -> str | None:
    return os.path.realpath(path) if os.path.lexists(path) else None


def _note(path: Path, seen: dict[Path, str | None], depth: int) -> None:
    if path in seen:
        return
    seen[path] = _leads_to(path)
    if seen[path] is None or depth == 0:
        return
    for included in _includes(path):
        _note(included, seen, depth - 1)


def _includes(config: Path) -> list[Path]:
    """The files ``config`` includes, under any condition (``include.path``,
    ``includeIf.*.path``), relative ones taken from ``config``'s folder."""
    git = tool("git")
    if git is None:
        return []
    try:
        listed = subprocess.run(
            [git, "config", "--file", str(config), "--no-includes", "--type=path",
             "--get-regexp", r"^include(if\..*)?\.path$"],
            capture_output=True, text=True, timeout=30, cwd="/", check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in listed.stdout.splitlines():
        _, _, value = line.partition(" ")
        if value:
            found.append(config.parent / value)  # an absolute value stays itself
    return found


def global_config_at_start() -> tuple[Path, ...]:
    """Those of ``global_config_files`` that were there when first looked at."""
    seen = _config_files_at_start()
    return tuple(p for p in global_config_files() if seen.get(p) is not None)


def read_only_config() -> list[Path]:
    """What of the user's git config is read-only in the fence (where it is there): what
    git runs from it (hooks, an fsmonitor, filters, a signing program, an ssh command,
    credential helpers) runs for the user and for baro's reads of it, outside the fence.
    ``~/.gitconfig``, the XDG ``git`` folder as a whole (nothing can be added to it), a
    ``GIT_CONFIG_GLOBAL`` file, and the files they include that were there at the start."""
    tops = {Path.home() / ".gitconfig", _xdg_git_folder(), *global_config_files()}
    included = [p for p, led in _config_files_at_start().items() if led and p not in tops]
    return sorted(tops) + included


def user_config_env() -> dict[str, str]:
    """What to add to the environment of a git that reads the user's config: nothing,
    unless what it would read changed since the start (an agent may have written it).
    A global config file that appeared beside the ones there: git reads only those. Any
    other change (a file they include added or removed, one of them now leading
    elsewhere): git reads no global config at all."""
    seen = _config_files_at_start()
    changed = [p for p, led in seen.items() if _leads_to(p) != led]
    if not changed:
        return {}
    for path in changed:
        if path not in _WARNED:
            _WARNED.add(path)
            log.warning(
                "your git config file %s changed since baro started: baro does not read "
                "your global git config now (agents can write the home directory); restart "
                "baro to use it",
                path,
            )
    tops = global_config_files()
    known = global_config_at_start()
    if all(p in tops and seen[p] is None for p in changed):
        # two files there leave none to appear: here at most one is known
        return {"GIT_CONFIG_GLOBAL": str(known[0]) if known else os.devnull}
    return {"GIT_CONFIG_GLOBAL": os.devnull}


def settle() -> None:
    """Find the tools and note the global config files now, before any agent starts."""
    found_tools()
    _config_files_at_start()
