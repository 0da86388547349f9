"""A repository's own settings for baro: ``.baro.toml`` at its root, one parser for all.

    [setup]                          # agent-runner: prepares each workspace before the agent
    command = "npm ci"               # a string runs through /bin/sh; a list runs as is
    copy = [".env", "config/*.local.json"]   # untracked files taken from your working tree
    timeout = 600                    # seconds

    [artifacts]                      # merger: what stays out of the delivered branch
    drop = ["*.orig", "tmp/"]        # more artifact patterns
    keep = ["docs/adr/*.md"]         # never dropped
    replace_defaults = false         # true: ``drop`` replaces the default patterns
    lockfiles = true                 # false: keep lockfiles changed without their manifest

    [verify]                         # merger: run on the integrated result before delivery
    command = "make test"
    timeout = 900

The runner reads the file from its workspace (the story's base), the merger from the
run's base commit; neither reads it from anyone's working tree, and baro never writes it.
Tables baro does not know are ignored (room for newer versions); an unknown key inside a
known table is an error, so a typo never silently switches something off.

Artifact patterns come back normalized: a pattern without a ``/`` matches the file name
at any depth (as in .gitignore, ``**/name``), and a pattern ending in ``/`` is a directory
(``dir/**``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baro_shared.surfaces import UnsafePath, normalize

CONFIG_FILE = ".baro.toml"
DEFAULT_VERIFY_TIMEOUT_S = 900.0
DEFAULT_SETUP_TIMEOUT_S = 600.0

Command = str | tuple[str, ...]


class RepoConfigError(ValueError):
    """The file exists but cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class ArtifactsConfig:
    drop: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    replace_defaults: bool = False
    lockfiles: bool = True


@dataclass(frozen=True)
class VerifyConfig:
    command: Command
    timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S


@dataclass(frozen=True)
class SetupConfig:
    command: Command | None = None
    copy: tuple[str, ...] = ()  # repo-relative paths or globs, normalized
    timeout_s: float = DEFAULT_SETUP_TIMEOUT_S


@dataclass(frozen=True)
class RepoConfig:
    artifacts: ArtifactsConfig | None = None  # None: no [artifacts] table
    verify: VerifyConfig | None = None
    setup: SetupConfig | None = None


DEFAULT_REPO_CONFIG = RepoConfig()

_KEYS = {
    "artifacts": ("drop", "keep", "replace_defaults", "lockfiles"),
    "verify": ("command", "timeout", "timeout_s"),
    "setup": ("command", "copy", "timeout", "timeout_s"),
}


def parse_repo_config(text: str, origin: str = CONFIG_FILE) -> RepoConfig:
    """Parse the text of a .baro.toml; raises RepoConfigError naming ``origin``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RepoConfigError(f"{origin} is not valid TOML: {exc}") from None
    artifacts = _table(data, "artifacts", origin)
    verify = _table(data, "verify", origin)
    setup = _table(data, "setup", origin)
    return RepoConfig(
        artifacts=_artifacts(artifacts, origin) if artifacts is not None else None,
        verify=_verify(verify, origin) if verify else None,
        setup=_setup(setup, origin) if setup else None,
    )


def read_repo_config_file(path: Path) -> RepoConfig:
    """The .baro.toml at ``path`` (defaults when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DEFAULT_REPO_CONFIG
    except (OSError, UnicodeDecodeError) as exc:
        raise RepoConfigError(f"cannot read {path.name}: {exc}") from None
    return parse_repo_config(text, origin=CONFIG_FILE)


# --------------------------------------------------------------------------- tables


def _table(data: dict[str, Any], name: str, origin: str) -> dict[str, Any] | None:
    if name not in data:
        return None
    table = data[name]
    if not isinstance(table, dict):
        raise RepoConfigError(f"{origin}: [{name}] must be a table")
    unknown = sorted(set(table) - set(_KEYS[name]))
    if unknown:
        valid = ", ".join(k for k in _KEYS[name] if k != "timeout_s")
        raise RepoConfigError(f"{origin}: [{name}] has no key {unknown[0]!r} (valid keys: {valid})")
    return table


def _artifacts(table: dict[str, Any], origin: str) -> ArtifactsConfig:
    return ArtifactsConfig(
        drop=_artifact_patterns(table, "drop", origin),
        keep=_artifact_patterns(table, "keep", origin),
        replace_defaults=_bool(table, "artifacts", "replace_defaults", False, origin),
        lockfiles=_bool(table, "artifacts", "lockfiles", True, origin),
    )


def _verify(table: dict[str, Any], origin: str) -> VerifyConfig:
    command = _command(table, "verify", origin, required=True)
    assert command is not None
    return VerifyConfig(
        command=command,
        timeout_s=_timeout(table, "verify", DEFAULT_VERIFY_TIMEOUT_S, origin),
    )


def _setup(table: dict[str, Any], origin: str) -> SetupConfig:
    copy = []
    for entry in _strings(table, "setup", "copy", origin):
        try:
            copy.append(normalize(entry).removesuffix("/**"))
        except UnsafePath as exc:
            raise RepoConfigError(f"{origin}: [setup] copy: {exc}") from None
    return SetupConfig(
        command=_command(table, "setup", origin, required=False),
        copy=tuple(copy),
        timeout_s=_timeout(table, "setup", DEFAULT_SETUP_TIMEOUT_S, origin),
    )


# --------------------------------------------------------------------------- values


def _strings(table: dict[str, Any], name: str, key: str, origin: str) -> list[str]:
    raw = table.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        raise RepoConfigError(f"{origin}: [{name}] {key} must be a list of non-empty strings")
    return raw


def _artifact_patterns(table: dict[str, Any], key: str, origin: str) -> tuple[str, ...]:
    out = []
    for pattern in _strings(table, "artifacts", key, origin):
        try:
            normalized = normalize(pattern)
        except UnsafePath as exc:
            raise RepoConfigError(f"{origin}: [artifacts] {key}: {exc}") from None
        # like .gitignore: a bare name matches at any depth
        out.append(normalized if "/" in pattern.strip().rstrip("/") else f"**/{normalized}")
    return tuple(out)


def _bool(table: dict[str, Any], name: str, key: str, default: bool, origin: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise RepoConfigError(f"{origin}: [{name}] {key} must be true or false")
    return value


def _command(table: dict[str, Any], name: str, origin: str, *, required: bool) -> Command | None:
    if "command" not in table and not required:
        return None
    command = table.get("command")
    if isinstance(command, str) and command.strip():
        return command
    if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        return tuple(command)
    raise RepoConfigError(
        f"{origin}: [{name}] command must be a non-empty string or list of strings"
    )


def _timeout(table: dict[str, Any], name: str, default: float, origin: str) -> float:
    timeout = table.get("timeout", table.get("timeout_s", default))
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise RepoConfigError(f"{origin}: [{name}] timeout must be a positive number of seconds")
    return float(timeout)


def command_text(command: Command) -> str:
    """How a configured command is shown to people (a list joined with spaces)."""
    return command if isinstance(command, str) else " ".join(command)
