"""The repository's own settings for the merger, read from ``.baro.toml`` at the run's base.

Only ever at the run's base commit: never the integrated result, whose ``.baro.toml`` a
story may have written.

Parsing lives in ``baro_shared.repoconfig`` (the runner reads the same file for its
``[setup]``); this module reads the file from a commit and turns ``[artifacts]`` into
hygiene rules. Paths that ``[setup] copy`` puts into workspaces (``.env``...) are always
artifacts: they come from the user's working tree and never belong in a delivered branch.
See docs/merging.md for the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from baro_merger.errors import ConfigError
from baro_merger.hygiene import (
    DEFAULT_ARTIFACT_PATTERNS,
    DEFAULT_RULES,
    ArtifactPattern,
    ArtifactRules,
)
from baro_shared.repoconfig import (
    CONFIG_FILE,
    DEFAULT_SURFACE,
    DEFAULT_VERIFY_TIMEOUT_S,
    ArtifactsConfig,
    NotifyConfig,
    RepoConfig,
    RepoConfigError,
    SetupConfig,
    SurfaceConfig,
    VerifyConfig,
    config_text_at,
    parse_repo_config,
)
from baro_shared.schemas import ModelTier

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_CONFIG",
    "DEFAULT_VERIFY_TIMEOUT_S",
    "BaroConfig",
    "SetupConfig",
    "VerifyConfig",
    "parse_baro_config",
    "read_baro_config",
]


@dataclass(frozen=True)
class BaroConfig:
    artifacts: ArtifactRules = DEFAULT_RULES
    verify: VerifyConfig | None = None
    setup: SetupConfig | None = None
    surface: SurfaceConfig = DEFAULT_SURFACE
    models: tuple[ModelTier, ...] = ()
    notify: NotifyConfig | None = None


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
    text = await config_text_at(repo, commit)
    config = (
        parse_baro_config(text, origin=f"{CONFIG_FILE} at {commit[:12]}")
        if text is not None
        else DEFAULT_CONFIG
    )
    _cache[key] = config
    return config


def parse_baro_config(text: str, origin: str = CONFIG_FILE) -> BaroConfig:
    try:
        parsed = parse_repo_config(text, origin)
    except RepoConfigError as exc:
        raise ConfigError(str(exc)) from None
    return from_repo_config(parsed)


def from_repo_config(config: RepoConfig) -> BaroConfig:
    copied = config.setup.copy if config.setup else ()
    return BaroConfig(
        artifacts=artifact_rules(config.artifacts, copied),
        verify=config.verify,
        setup=config.setup,
        surface=config.surface,
        models=config.models,
        notify=config.notify,
    )


def artifact_rules(table: ArtifactsConfig | None, copied: tuple[str, ...] = ()) -> ArtifactRules:
    # a plain path also matches everything under it (a copied directory)
    copied_patterns = tuple(ArtifactPattern(path) for path in copied)
    if table is None:
        if not copied_patterns:
            return DEFAULT_RULES
        table = ArtifactsConfig()
    drop = tuple(ArtifactPattern(p) for p in table.drop)
    patterns = drop if table.replace_defaults else DEFAULT_ARTIFACT_PATTERNS + drop
    return ArtifactRules(
        patterns=patterns + copied_patterns, keep=table.keep, lockfiles=table.lockfiles
    )
