"""A run's defaults for this repository: the flags given, the BARO_* variables set, the
``.baro.toml [defaults]`` of the commit the run starts from, then baro's own
(``baro_shared.defaults``). Used by ``baro run`` and shown by ``baro doctor``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from baro_cli.validate import UserError
from baro_shared.defaults import Resolved, environment_values, resolve
from baro_shared.gitutil import git_sync
from baro_shared.repoconfig import CONFIG_FILE, RepoConfigError, parse_defaults
from baro_shared.settings import Settings


def repository_defaults(root: Path, commit: str) -> tuple[dict[str, object], str]:
    """The defaults committed in ``commit`` and the name of where they come from.

    Never the working tree: what the run starts from is the commit (and nothing an agent
    wrote on another branch). Raises UserError for a [defaults] mistake."""
    origin = f"{CONFIG_FILE} at {commit[:12]}"
    shown = git_sync("cat-file", "blob", f"{commit}:{CONFIG_FILE}", cwd=root, check=False)
    if shown.returncode != 0:
        return {}, origin
    try:
        return parse_defaults(shown.stdout, origin), origin
    except RepoConfigError as exc:
        raise UserError(f"{exc} (fix it and commit)") from None


def choose(
    flags: Mapping[str, object], settings: Settings, root: Path | None, commit: str | None
) -> dict[str, Resolved]:
    """Every default's value and where it came from; without a repository, no file."""
    repository, origin = repository_defaults(root, commit) if root and commit else ({}, "")
    environment = environment_values(settings, settings.model_fields_set)
    return resolve(flags, environment, repository, origin)
