"""The repository's own settings for the merger, read from ``.baro.toml`` at the run's base.

    [artifacts]
    drop = ["*.orig", "tmp/"]      # more artifact patterns
    keep = ["docs/adr/*.md"]       # never dropped
    replace_defaults = false       # true: ``drop`` replaces the default patterns
    lockfiles = true               # false: keep lockfiles changed without their manifest

    [verify]
    command = "make test"          # a string runs through /bin/sh; a list runs as is
    timeout = 900                  # seconds

A pattern without a ``/`` matches the file name at any depth (as in .gitignore); a
pattern ending in ``/`` is a directory. The file is read from the base commit, never
from anyone's working tree, and baro never writes it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baro_merger.errors import ConfigError
from baro_merger.hygiene import (
    DEFAULT_ARTIFACT_PATTERNS,
    DEFAULT_RULES,
    ArtifactPattern,
    ArtifactRules,
)
from baro_shared.gitutil import git
from baro_shared.surfaces import UnsafePath, normalize

CONFIG_FILE = ".baro.toml"
DEFAULT_VERIFY_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class VerifyConfig:
    command: str | tuple[str, ...]
    timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S


@dataclass(frozen=True)
class BaroConfig:
    artifacts: ArtifactRules = DEFAULT_RULES
    verify: VerifyConfig | None = None


DEFAULT_CONFIG = BaroConfig()

_cache: dict[tuple[str, str], BaroConfig] = {}


async def read_baro_config(repo: Path, commit: str) -> BaroConfig:
    """The .baro.toml of ``commit`` in ``repo`` (defaults when there is none).

    Raises ConfigError when the file exists but is not valid.
    """
    key = (str(repo), commit)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    shown = await git("cat-file", "blob", f"{commit}:{CONFIG_FILE}", cwd=repo, check=False)
    config = (
        parse_baro_config(shown.stdout, origin=f"{CONFIG_FILE} at {commit[:12]}")
        if shown.returncode == 0
        else DEFAULT_CONFIG
    )
    _cache[key] = config
    return config


def parse_baro_config(text: str, origin: str = CONFIG_FILE) -> BaroConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from None
    return BaroConfig(
        artifacts=_artifact_rules(_table(data, "artifacts", origin), origin),
        verify=_verify_config(_table(data, "verify", origin), origin),
    )


def _table(data: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: [{name}] must be a table")
    return table


def _artifact_rules(table: dict[str, Any], origin: str) -> ArtifactRules:
    if not table:
        return DEFAULT_RULES
    drop = tuple(ArtifactPattern(p) for p in _patterns(table, "drop", origin))
    keep = _patterns(table, "keep", origin)
    replace = _bool(table, "replace_defaults", False, origin)
    lockfiles = _bool(table, "lockfiles", True, origin)
    patterns = drop if replace else DEFAULT_ARTIFACT_PATTERNS + drop
    return ArtifactRules(patterns=patterns, keep=keep, lockfiles=lockfiles)


def _patterns(table: dict[str, Any], key: str, origin: str) -> tuple[str, ...]:
    raw = table.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(f"{origin}: [artifacts] {key} must be a list of strings")
    out = []
    for pattern in raw:
        try:
            normalized = normalize(pattern)
        except UnsafePath as exc:
            raise ConfigError(f"{origin}: [artifacts] {key}: {exc}") from None
        # like .gitignore: a bare name matches at any depth
        out.append(normalized if "/" in pattern.strip().rstrip("/") else f"**/{normalized}")
    return tuple(out)


def _bool(table: dict[str, Any], key: str, default: bool, origin: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{origin}: [artifacts] {key} must be true or false")
    return value


def _verify_config(table: dict[str, Any], origin: str) -> VerifyConfig | None:
    if not table:
        return None
    command = table.get("command")
    if isinstance(command, str) and command.strip():
        parsed: str | tuple[str, ...] = command
    elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        parsed = tuple(command)
    else:
        raise ConfigError(
            f"{origin}: [verify] command must be a non-empty string or list of strings"
        )
    timeout = table.get("timeout", table.get("timeout_s", DEFAULT_VERIFY_TIMEOUT_S))
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{origin}: [verify] timeout must be a positive number of seconds")
    return VerifyConfig(command=parsed, timeout_s=float(timeout))
