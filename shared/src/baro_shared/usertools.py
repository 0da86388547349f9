"""The user's tools and global git config as baro found them before any agent started.

Outside the fence baro runs programs and reads git config on the user's behalf: git
itself, ``gh`` and ``ssh`` to publish, a signing program for the delivered commits, and
git reading the user's global config for their identity, credential helpers and URL
rewrites. An agent's fence keeps the home directory writable (its tools keep their state
there) and the folders of ``PATH`` in it with it, so a ``gh`` an agent puts in
``~/.local/bin``, or a ``~/.gitconfig`` it writes where the user has none, would be what
baro runs next, as the user. Hence:

- each tool is looked up on ``PATH`` once (``tool``), at the process's start
  (``settle``, before it starts any agent), and one the user could replace is read-only
  in the fence (``replaceable_tools``);
- git reading the user's config reads only the global config files that were there at
  the start (``user_config_env``).

Both are remembered per ``PATH`` and per home directory: a process's own never change,
and tests that set them anew get a first sight of their own.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

TOOLS = ("git", "gh", "ssh", "gpg", "gpgsm", "ssh-keygen")

_FOUND: dict[str, dict[str, str]] = {}
_CONFIG_AT_START: dict[tuple[Path, ...], tuple[Path, ...]] = {}
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


def global_config_files() -> tuple[Path, ...]:
    """The files git reads as the user's global config, there or not."""
    named = os.environ.get("GIT_CONFIG_GLOBAL")
    if named is not None:
        return () if named in ("", os.devnull) else (Path(named),)
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return (xdg / "git" / "config", home / ".gitconfig")


def global_config_at_start() -> tuple[Path, ...]:
    """Those of ``global_config_files`` that were there when first looked at."""
    candidates = global_config_files()
    known = _CONFIG_AT_START.get(candidates)
    if known is None:
        known = _CONFIG_AT_START[candidates] = tuple(p for p in candidates if os.path.lexists(p))
    return known


def user_config_env() -> dict[str, str]:
    """What to add to the environment of a git that reads the user's config: nothing,
    unless a global config file appeared since the start (an agent may have written it);
    then git reads only those that were there."""
    known = global_config_at_start()
    appeared = [p for p in global_config_files() if p not in known and os.path.lexists(p)]
    if not appeared:
        return {}
    for path in appeared:
        if path not in _WARNED:
            _WARNED.add(path)
            log.warning(
                "%s appeared after baro started: baro does not read it (agents can write the "
                "home directory); restart baro to use it",
                path,
            )
    # two known files leave nothing to appear: here at most one is known
    return {"GIT_CONFIG_GLOBAL": str(known[0]) if known else os.devnull}


def settle() -> None:
    """Find the tools and note the global config files now, before any agent starts."""
    found_tools()
    global_config_at_start()
