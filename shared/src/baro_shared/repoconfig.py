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

    [verify]                         # checks (baro_shared.checks)
    story = ["pytest -q tests/unit"] # runner: each story's gate, in its workspace
    run = ["make test"]              # merger: the run gate, on the integrated result
    command = "make lint"            # merger: the run gate's first check (older spelling)
    detect = true                    # also the conventional checks found (pytest, npm test...)
    timeout = 900                    # seconds, per check

    [surface]                        # merger: what a story's change may hold
    policy = "strict"                # strict | warn (default: strict in parallel runs)
    max_file_size = "5 MiB"          # bytes, or a number with KiB / MiB / GiB
    max_deleted_share = 0.5          # of the files tracked at the story's base

    [models]                         # conductor: which model runs which kind of story
    docs = "claude-haiku-4-5"        # every file of the story is documentation
    tests = "claude-haiku-4-5"       # every file of the story is a test
    small = { model = "gpt-5-mini", backend = "codex" }   # one file
    default = "claude-sonnet-4-5"    # any other story

    [defaults]                       # baro run: the team's defaults for a run
    backend = "codex"                # any flag's BARO_* variable wins over these,
    model = "gpt-5-codex"            # and the flag over both (baro_shared.defaults)
    intake = "auto"                  # offline | llm | auto
    planner = "auto"                 # auto | deterministic | llm
    publish = "pr"                   # local | push | pr
    max_stories = 6
    parallelism = 3
    token_budget = 400000            # per story
    story_timeout = 1200             # seconds
    stall_timeout = 300              # seconds
    review = "on"                    # on | off: the critic (default: on, off for scripted)
    replan = "on"                    # on | off: replanning (default: on)
    checkpoint = "on"                # on | off: a partial result as a checkpoint branch

    [notify]                         # merger: who hears when a run needs a person or ends
    webhook = "https://hooks.example.com/baro"   # a JSON POST per state (--notify URL wins)
    desktop = true                   # a desktop notification for local runs

Both the runner and the merger read the file from the run's base commit (``read_at``):
never from a working tree, never from a story's result or the integrated result (a
story that writes ``.baro.toml`` must not choose the commands baro runs next), and baro
never writes it. The merger hands ``[models]`` to the conductor with the prepared run.

Tables baro does not know are ignored (room for newer versions); an unknown key inside a
known table is an error, so a typo never silently switches something off.

Artifact patterns come back normalized: a pattern without a ``/`` matches the file name
at any depth (as in .gitignore, ``**/name``), and a pattern ending in ``/`` is a directory
(``dir/**``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from baro_shared.backends import KNOWN_BACKENDS, model_problem
from baro_shared.gitutil import ByCommit, read_objects
from baro_shared.schemas import ModelTier
from baro_shared.surfaces import UnsafePath, normalize

CONFIG_FILE = ".baro.toml"
DEFAULT_VERIFY_TIMEOUT_S = 900.0
DEFAULT_SETUP_TIMEOUT_S = 600.0
DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_DELETED_SHARE = 0.5

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
    command: Command | None = None  # the run gate's first check
    story: tuple[Command, ...] = ()  # every story's gate
    run: tuple[Command, ...] = ()  # the run gate, after ``command``
    detect: bool = True  # add the conventional checks the repository has
    timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S

    @property
    def run_commands(self) -> tuple[Command, ...]:
        return ((self.command,) if self.command is not None else ()) + self.run


@dataclass(frozen=True)
class SetupConfig:
    command: Command | None = None
    copy: tuple[str, ...] = ()  # repo-relative paths or globs, normalized
    timeout_s: float = DEFAULT_SETUP_TIMEOUT_S


@dataclass(frozen=True)
class SurfaceConfig:
    policy: Literal["strict", "warn"] | None = None  # None: by the run's mode
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_deleted_share: float = DEFAULT_MAX_DELETED_SHARE


DEFAULT_SURFACE = SurfaceConfig()


@dataclass(frozen=True)
class NotifyConfig:
    webhook: str | None = None
    desktop: bool = False


@dataclass(frozen=True)
class RepoConfig:
    artifacts: ArtifactsConfig | None = None  # None: no [artifacts] table
    verify: VerifyConfig | None = None
    setup: SetupConfig | None = None
    surface: SurfaceConfig = DEFAULT_SURFACE
    models: tuple[ModelTier, ...] = ()
    defaults: tuple[tuple[str, object], ...] = ()  # [defaults], checked, in file order
    notify: NotifyConfig | None = None


DEFAULT_REPO_CONFIG = RepoConfig()

_KEYS = {
    "artifacts": ("drop", "keep", "replace_defaults", "lockfiles"),
    "verify": ("command", "story", "run", "detect", "timeout", "timeout_s"),
    "setup": ("command", "copy", "timeout", "timeout_s"),
    "surface": ("policy", "max_file_size", "max_deleted_share"),
    "models": ("docs", "tests", "small", "default"),
    "notify": ("webhook", "desktop"),
    "defaults": (
        "backend", "model", "intake", "planner", "publish", "max_stories", "parallelism",
        "token_budget", "run_token_budget", "story_timeout", "stall_timeout", "review",
        "replan", "checkpoint",
    ),
}  # fmt: skip


def parse_repo_config(text: str, origin: str = CONFIG_FILE) -> RepoConfig:
    """Parse the text of a .baro.toml; raises RepoConfigError naming ``origin``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RepoConfigError(f"{origin} is not valid TOML: {exc}") from None
    artifacts = _table(data, "artifacts", origin)
    verify = _table(data, "verify", origin)
    setup = _table(data, "setup", origin)
    surface = _table(data, "surface", origin)
    models = _table(data, "models", origin)
    defaults = _table(data, "defaults", origin)
    notify = _table(data, "notify", origin)
    return RepoConfig(
        artifacts=_artifacts(artifacts, origin) if artifacts is not None else None,
        verify=_verify(verify, origin) if verify else None,
        setup=_setup(setup, origin) if setup else None,
        surface=_surface(surface, origin) if surface else DEFAULT_SURFACE,
        models=_models(models, origin) if models else (),
        defaults=_defaults(defaults, origin) if defaults else (),
        notify=_notify(notify, origin) if notify else None,
    )


def parse_defaults(text: str, origin: str = CONFIG_FILE) -> dict[str, object]:
    """The run defaults a .baro.toml gives: its [defaults] and its [surface] policy.

    Only these tables are checked (a mistake elsewhere is reported by the step that reads
    it, as for any run); raises RepoConfigError naming ``origin``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RepoConfigError(f"{origin} is not valid TOML: {exc}") from None
    values: dict[str, object] = dict(_defaults(_table(data, "defaults", origin) or {}, origin))
    surface = _table(data, "surface", origin)
    if surface and (policy := _surface(surface, origin).policy):
        values["surface"] = policy
    return values


# .baro.toml's text by the commit it was read from (``ByCommit``): every story of a run
# reads its run base's, so one read serves them all. Only a commit found in the repository
# is kept, with or without the file.
_texts: ByCommit[str | None] = ByCommit()
_UNKNOWN = object()


async def config_text_at(repo: Path, commit: str) -> str | None:
    """The text of .baro.toml in ``commit`` of ``repo`` (None when the commit has none, or
    ``repo`` has no such commit)."""
    known = _texts.get(commit, default=_UNKNOWN)
    if known is not _UNKNOWN:
        return known  # type: ignore[return-value]
    found, blob = await read_objects(repo, [f"{commit}^{{commit}}", f"{commit}:{CONFIG_FILE}"])
    if found is None:
        return None
    text = blob[1].decode("utf-8", "replace") if blob is not None and blob[0] == "blob" else None
    return _texts.put(commit, text)


async def read_repo_config_at(repo: Path, commit: str) -> RepoConfig:
    """The .baro.toml of ``commit`` in ``repo`` (defaults when there is none).

    Raises RepoConfigError naming the file and the commit when it is not valid.
    """
    text = await config_text_at(repo, commit)
    if text is None:
        return DEFAULT_REPO_CONFIG
    return parse_repo_config(text, origin=f"{CONFIG_FILE} at {commit[:12]}")


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
    return VerifyConfig(
        command=_command(table, "verify", origin, required=False),
        story=_commands(table, "verify", "story", origin),
        run=_commands(table, "verify", "run", origin),
        detect=_bool(table, "verify", "detect", True, origin),
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


def _surface(table: dict[str, Any], origin: str) -> SurfaceConfig:
    policy = table.get("policy")
    if policy is not None and policy not in ("strict", "warn"):
        raise RepoConfigError(f'{origin}: [surface] policy must be "strict" or "warn"')
    size = table.get("max_file_size", DEFAULT_MAX_FILE_BYTES)
    max_bytes = (
        size
        if isinstance(size, int) and not isinstance(size, bool)
        else parse_size(size)
        if isinstance(size, str)
        else None
    )
    if max_bytes is None or max_bytes <= 0:
        raise RepoConfigError(
            f'{origin}: [surface] max_file_size must be a positive number of bytes or a size such as "5 MiB"'
        )
    share = table.get("max_deleted_share", DEFAULT_MAX_DELETED_SHARE)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise RepoConfigError(
            f"{origin}: [surface] max_deleted_share must be a number above 0 and at most 1"
        )
    return SurfaceConfig(policy=policy, max_file_bytes=max_bytes, max_deleted_share=float(share))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|bytes?|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.I)
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int | None:
    """``"5 MiB"``, ``"512k"``, ``"1048576"`` -> bytes (units are binary); None if unreadable."""
    found = _SIZE.match(text)
    if found is None:
        return None
    number, unit = float(found.group(1)), (found.group(2) or "b").lower()
    return int(number * _UNITS.get(unit[0], 1))


def human_size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def _models(table: dict[str, Any], origin: str) -> tuple[ModelTier, ...]:
    tiers = []
    for kind, value in table.items():
        where = f"{origin}: [models] {kind}"
        if isinstance(value, str):
            model, backend = value, None
        elif isinstance(value, dict) and set(value) <= {"model", "backend"} and "model" in value:
            model, backend = value["model"], value.get("backend")
        else:
            raise RepoConfigError(
                f'{where} must be a model name or {{ model = "...", backend = "..." }}'
            )
        if not isinstance(model, str) or (problem := model_problem(model.strip())):
            raise RepoConfigError(
                f"{where}: {problem if isinstance(model, str) else 'model must be a string'}"
            )
        if backend is not None and backend not in KNOWN_BACKENDS:
            raise RepoConfigError(
                f"{where}: unknown backend {backend!r} (choose one of {', '.join(KNOWN_BACKENDS)})"
            )
        tiers.append(ModelTier(kind=kind, model=model.strip(), backend=backend))
    return tuple(tiers)


def _notify(table: dict[str, Any], origin: str) -> NotifyConfig:
    webhook = table.get("webhook")
    if webhook is not None and (problem := webhook_problem(webhook)):
        raise RepoConfigError(f"{origin}: [notify] webhook {problem}")
    return NotifyConfig(webhook, _bool(table, "notify", "desktop", False, origin))


def webhook_problem(url: object) -> str | None:
    """Why ``url`` cannot be a webhook (None: it can)."""
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+(/\S*)?$", url.strip()):
        return "must be an http:// or https:// URL"
    return None


_CHOICES = {
    "backend": KNOWN_BACKENDS,
    "intake": ("offline", "llm", "auto"),
    "planner": ("auto", "deterministic", "llm"),
    "publish": ("local", "push", "pr"),
    "review": ("on", "off"),
    "replan": ("on", "off"),
    "checkpoint": ("on", "off"),
}
_SWITCHES = ("review", "replan", "checkpoint")
_COUNTS = ("max_stories", "parallelism", "token_budget", "run_token_budget")
_SECONDS = ("story_timeout", "stall_timeout")


def _defaults(table: dict[str, Any], origin: str) -> tuple[tuple[str, object], ...]:
    out: list[tuple[str, object]] = []
    for key, value in table.items():
        where = f"{origin}: [defaults] {key}"
        if key in _SWITCHES and isinstance(value, bool):
            value = "on" if value else "off"  # review = true reads as review = "on"
        if key in _CHOICES:
            if value not in _CHOICES[key]:
                choices = ", ".join(_CHOICES[key])
                raise RepoConfigError(f"{where} must be one of {choices} (not {value!r})")
        elif key == "model":
            if not isinstance(value, str) or (problem := model_problem(value.strip())):
                reason = problem if isinstance(value, str) else "model must be a string"
                raise RepoConfigError(f"{where}: {reason}")
            value = value.strip()
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RepoConfigError(f"{where} must be a whole number of at least 1")
        elif key in _SECONDS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
                raise RepoConfigError(f"{where} must be a number of seconds of at least 1")
            value = float(value)
        out.append((key, value))
    return tuple(out)


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


def _commands(table: dict[str, Any], name: str, key: str, origin: str) -> tuple[Command, ...]:
    """A list of commands, each a string (run through /bin/sh) or a list of strings."""
    raw = table.get(key, [])
    problem = (
        f"{origin}: [{name}] {key} must be a list of commands, each a non-empty string "
        'or a list of strings (e.g. ["pytest -q", ["npm", "test"]])'
    )
    if not isinstance(raw, list):
        raise RepoConfigError(problem)
    commands: list[Command] = []
    for entry in raw:
        if isinstance(entry, str) and entry.strip():
            commands.append(entry)
        elif isinstance(entry, list) and entry and all(isinstance(c, str) and c for c in entry):
            commands.append(tuple(entry))
        else:
            raise RepoConfigError(problem)
    return tuple(commands)


def _timeout(table: dict[str, Any], name: str, default: float, origin: str) -> float:
    timeout = table.get("timeout", table.get("timeout_s", default))
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise RepoConfigError(f"{origin}: [{name}] timeout must be a positive number of seconds")
    return float(timeout)


def command_text(command: Command) -> str:
    """How a configured command is shown to people (a list joined with spaces)."""
    return command if isinstance(command, str) else " ".join(command)
