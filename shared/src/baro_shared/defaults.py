"""A run's defaults and where each came from: flag > environment > repository > built-in.

A team commits its defaults with the repository in ``.baro.toml [defaults]`` (read from
the run's base commit, like every table of the file); a person overrides them for their
shell with ``BARO_*`` variables, and for one run with flags. ``resolve`` is the one place
that order is written down: a plain function over plain mappings, used by ``baro run``
for the request (which records the outcome) and by ``baro doctor`` to show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from baro_shared.schemas import ChosenSetting

Source = Literal["flag", "environment", "repository", "built-in"]


@dataclass(frozen=True)
class Default:
    name: str  # the key in .baro.toml [defaults], and in the run's record
    flag: str
    env: str  # its BARO_* variable (Settings field: the name without BARO_, in lower case)
    builtin: object  # None: decided later (by the run's mode, the CLI's own default model)

    @property
    def setting(self) -> str:
        return self.env.removeprefix("BARO_").lower()


DEFAULTS: tuple[Default, ...] = (
    Default("backend", "--backend", "BARO_BACKEND", "claude"),
    Default("model", "--model", "BARO_MODEL", None),
    Default("intake", "--intake", "BARO_INTAKE", "offline"),
    Default("planner", "--planner", "BARO_PLANNER", "auto"),
    Default("publish", "--publish", "BARO_PUBLISH", "local"),
    Default("surface", "--surface", "BARO_SURFACE", None),
    Default("max_stories", "--max-stories", "BARO_MAX_STORIES", None),
    Default("parallelism", "--parallelism", "BARO_PARALLELISM", None),
    Default("token_budget", "--token-budget", "BARO_TOKEN_BUDGET", None),
    Default("run_token_budget", "--run-token-budget", "BARO_RUN_TOKEN_BUDGET", None),
    Default("story_timeout", "--story-timeout", "BARO_STORY_TIMEOUT_S", 1800.0),
    Default("stall_timeout", "--stall-timeout", "BARO_STALL_TIMEOUT_S", 600.0),
    Default("review", "--review", "BARO_REVIEW", None),
    Default("replan", "--replan", "BARO_REPLAN", None),
    Default("checkpoint", "--checkpoint", "BARO_CHECKPOINT", "on"),
)
NAMES = tuple(d.name for d in DEFAULTS)
BY_NAME = {d.name: d for d in DEFAULTS}
BUILTIN_NOTES = {
    "model": "the agent CLI's own",
    "surface": "by the mode",
    "max_stories": "by the mode",
    "parallelism": "by the mode",
    "token_budget": "none",
    "run_token_budget": "none",
    "review": "on, off for the scripted backend",
    "replan": "on",
}


@dataclass(frozen=True)
class Resolved:
    name: str
    value: object
    source: Source
    where: str  # the flag, the variable, the file and commit, or "built-in"

    def shown(self) -> str:
        if self.value is None:
            return BUILTIN_NOTES.get(self.name, "unset")
        if isinstance(self.value, float) and self.value.is_integer():
            return str(int(self.value))
        return str(self.value)

    def as_setting(self) -> ChosenSetting:
        value = None if self.value is None else self.shown()
        return ChosenSetting(name=self.name, value=value, source=self.source, where=self.where)


def resolve(
    flags: Mapping[str, object],
    environment: Mapping[str, object],
    repository: Mapping[str, object],
    repository_origin: str = ".baro.toml",
) -> dict[str, Resolved]:
    """Each default's value and source: the first of flag, environment, repository file
    and built-in that gives one (None in a mapping is "not given")."""
    out = {}
    for d in DEFAULTS:
        if flags.get(d.name) is not None:
            out[d.name] = Resolved(d.name, flags[d.name], "flag", d.flag)
        elif environment.get(d.name) is not None:
            out[d.name] = Resolved(d.name, environment[d.name], "environment", d.env)
        elif repository.get(d.name) is not None:
            table = "[surface] policy" if d.name == "surface" else "[defaults]"
            where = f"{repository_origin} {table}"
            out[d.name] = Resolved(d.name, repository[d.name], "repository", where)
        else:
            out[d.name] = Resolved(d.name, d.builtin, "built-in", "built-in")
    return out


def environment_values(settings: object, explicitly_set: set[str]) -> dict[str, object]:
    """The defaults a ``Settings`` holds because a BARO_* variable set them."""
    return {
        d.name: getattr(settings, d.setting)
        for d in DEFAULTS
        if d.setting in explicitly_set and getattr(settings, d.setting, None) is not None
    }
