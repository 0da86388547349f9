"""Which agent CLIs exist, where their binaries are, and the environment every agent gets."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from baro_shared import sandbox
from baro_shared.gitutil import BARO_IDENTITY, BARO_PREFIXES, REPOSITORY_VARIABLES
from baro_shared.settings import Settings
from baro_shared.usertools import read_only_config, replaceable_tools

KNOWN_BACKENDS = ("claude", "codex", "opencode", "pi", "scripted")
# A model name goes on an agent's command line: letters, digits and . _ : / @ + - only,
# never a leading "-" (it would read as an option).
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$"  # also the API's schema
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def model_problem(name: str) -> str | None:
    """Why ``name`` cannot be a model name, or None when it can."""
    if not _MODEL_NAME.fullmatch(name):
        return (
            f"model {name!r} is not a model name: use up to 128 letters, digits and . _ : / @ + -, "
            "starting with a letter or digit"
        )
    return None


# Never inherited by agents: baro's own credentials and settings, and the credentials the
# merger publishes with (what an agent writes is pushed by baro, never by the agent).
SECRET_PREFIXES = BARO_PREFIXES
PUBLISHING_CREDENTIALS = (
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
)
NON_INTERACTIVE = {
    "CI": "1",
    "npm_config_yes": "true",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
    "PIP_NO_INPUT": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "DEBIAN_FRONTEND": "noninteractive",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "NO_COLOR": "1",
    "TERM": "dumb",
}


def agent_env(
    scratch: Path | None = None, *, workdir: Path | None = None, away_from: Path | None = None
) -> dict[str, str]:
    """The environment of an agent (or any command baro runs on the repository's behalf):
    the process environment minus baro's secrets, plus settings that keep tools from
    prompting, and ``TMPDIR`` in ``scratch``.

    ``PWD`` and ``OLDPWD`` name ``workdir`` (or are dropped without one): a CLI that takes
    its working directory from ``PWD`` rather than from the kernel (OpenCode does) would
    otherwise work in whatever directory baro was started from. Variables that point git
    at a repository are dropped. ``away_from`` (the user's repository) is a directory the
    agent must not be pointed at: variables naming a path inside it are dropped, and
    search paths (``PATH``, ``PYTHONPATH``, ...) lose their entries inside it, so an
    activated virtualenv of the user's project is not the agent's.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(SECRET_PREFIXES)
        and k not in PUBLISHING_CREDENTIALS
        and k not in REPOSITORY_VARIABLES
        and k not in ("PWD", "OLDPWD")
    }
    if away_from is not None:
        env = _away_from(env, away_from)
    env.update(NON_INTERACTIVE)
    # an agent's own commits are baro's: the user's identity is only on delivered commits
    env.update(BARO_IDENTITY)
    if workdir is not None:
        env["PWD"] = env["OLDPWD"] = str(workdir)
    if scratch is not None:
        env["TMPDIR"] = str(scratch)
    return env


def _away_from(env: dict[str, str], directory: Path) -> dict[str, str]:
    roots = {os.path.abspath(directory), os.path.realpath(directory)}

    def inside(value: str) -> bool:
        if not os.path.isabs(value):
            return False
        path = os.path.abspath(value)
        return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)

    kept: dict[str, str] = {}
    for key, value in env.items():
        if os.pathsep in value:
            kept[key] = os.pathsep.join(e for e in value.split(os.pathsep) if not inside(e))
        elif not inside(value):
            kept[key] = value
    return kept


# Variables whose names say they hold a credential: provider keys, GH_TOKEN/GITHUB_TOKEN,
# cloud credentials, passwords, SSH_AUTH_SOCK.
CREDENTIAL_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)")


def check_env(
    scratch: Path | None = None, *, workdir: Path | None = None, away_from: Path | None = None
) -> dict[str, str]:
    """For commands that run what agents wrote (the ``[verify]`` gate runs their tests):
    what agents get (``agent_env``), minus every variable whose name says it holds a
    credential, so code an agent wrote cannot publish, call a provider, or read a token."""
    env = agent_env(scratch, workdir=workdir, away_from=away_from)
    return {k: v for k, v in env.items() if not CREDENTIAL_NAME.search(k)}


class SandboxRequired(RuntimeError):
    """BARO_AGENT_SANDBOX=require on a machine that cannot fence agents in."""


def sandbox_unavailable(settings: Settings) -> str | None:
    """Why agents run unfenced on this machine (None: they are fenced); tried once."""
    if settings.agent_sandbox == "off":
        return "BARO_AGENT_SANDBOX=off"
    return sandbox.unavailable_reason(sandbox.fence([settings.state_dir, settings.cache_dir], []))


def agent_fence(
    settings: Settings,
    *,
    keep: Path | None = None,
    away_from: Path | None = None,
    read_only: Sequence[Path] = (),
) -> sandbox.Fence | None:
    """The fence an agent runs in: baro's state and cache directories, the user's
    repository (``away_from``) and ``BARO_AGENT_HIDDEN_PATHS`` hidden, ``keep`` (its
    workspace) kept, ``read_only`` (the object cache its clone borrows from) readable.
    None when agents run unfenced (off, or auto where the machine cannot); raises
    SandboxRequired when they must not."""
    reason = sandbox_unavailable(settings)
    if reason is not None:
        if settings.agent_sandbox == "require":
            raise SandboxRequired(
                f"agents must run sandboxed (BARO_AGENT_SANDBOX=require) and cannot here: {reason}"
            )
        return None
    hidden = [settings.state_dir, settings.cache_dir, away_from, *settings.agent_hidden_paths]
    kept = [keep] if keep is not None else []
    installation, writable = baro_installation()
    system: list[Path] = []
    if os.geteuid() == 0:
        # root's files are the agent's own in its namespace (root outside is the uid it
        # maps to): everything but its home and the temporary folders is read-only
        system = [Path("/")]
        writable = (*writable, *(p for p in _writable_for_root() if p.is_dir()))
    return sandbox.fence(
        hidden,
        [*kept, *writable],
        [*read_only, *read_only_config(), *replaceable_tools(), *installation, *system],
    )


def _writable_for_root() -> list[Path]:
    """What an agent of a root baro may write besides its workspace: its home (its tools
    keep their state there) and the temporary folders."""
    return [Path.home(), Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]


# the packages baro's processes import (its services, its command line, its shared library)
BARO_PACKAGES = (
    "baro_shared", "baro_runner", "baro_merger", "baro_conductor", "baro_intake",
    "baro_planner", "baro_cli",
)  # fmt: skip


@functools.cache
def baro_installation() -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """What baro runs from, read-only in the fence: its virtual environment, the
    interpreter and its standard library, and the folders its packages are imported from
    (an editable install's sources). The fence's launcher and every baro process import
    them afresh, outside the fence: an agent that could rewrite them (they often live in
    the user's home directory, which stays writable) would run as baro. Second, what stays
    writable inside them: the interpreter's own site-packages, where an agent may install
    what its project needs (baro's virtual environment does not read it, and the launcher
    starts without ``site``)."""
    paths = {Path(sysconfig.get_path(key)) for key in ("stdlib", "platstdlib")}
    paths.add(Path(os.path.realpath(sys.executable)))
    if sys.prefix != sys.base_prefix:
        paths.add(Path(sys.prefix))
    for name in BARO_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            paths.add(Path(spec.origin).parent.parent)
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
    installs = {Path(sysconfig.get_path(key, vars=base)) for key in ("purelib", "platlib")}
    outermost = sorted(p for p in paths if not any(o in p.parents for o in paths))
    writable = sorted(
        p for p in installs if p.is_dir() and any(o in p.parents for o in outermost)
    )  # fmt: skip
    return tuple(outermost), tuple(writable)


def scripted_binary(settings: Settings) -> str | None:
    if settings.scripted_agent_bin:
        return settings.scripted_agent_bin
    beside = Path(sys.executable).parent / "baro-scripted-agent"
    if beside.is_file():
        return str(beside)
    return shutil.which("baro-scripted-agent")


def binary_for(backend: str, settings: Settings) -> str | None:
    """The resolved executable for a backend, or None when it is not installed."""
    if backend == "scripted":
        return scripted_binary(settings)
    name = {
        "claude": settings.claude_bin,
        "codex": settings.codex_bin,
        "opencode": settings.opencode_bin,
        "pi": settings.pi_bin,
    }.get(backend)
    if name is None:
        return None
    if os.sep in name:
        return name if Path(name).is_file() else None
    return shutil.which(name)


# The CLI versions the contract tier runs (tests/cli_contract/package.json pins them).
TESTED_VERSIONS = {"claude": "2.1.332", "codex": "0.171.0", "opencode": "1.18.33", "pi": "1.6.0"}
NPM_PACKAGES = {
    "claude": "@anthropic-ai/claude-code",
    "codex": "@openai/codex",
    "opencode": "opencode-ai",
    "pi": "@earendil-works/pi-coding-agent",
}
# A model named ``provider/model`` (OpenCode, Pi) authenticates with its provider's variable.
PROVIDER_KEYS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "google": "GEMINI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "xai": "XAI_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
}


# where OpenCode reads a provider's key from other variables than Pi does (models.dev)
_OPENCODE_KEYS = {"google": ("GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY")}


def provider_keys(backend: str, provider: str) -> tuple[str, ...]:
    """The variables ``backend`` reads the key of a known ``provider`` from."""
    if backend == "opencode" and provider in _OPENCODE_KEYS:
        return _OPENCODE_KEYS[provider]
    return (PROVIDER_KEYS[provider],)


# OpenCode loads only the providers whose key is set: a model of any other one is "not found"
_UNLOADED_PROVIDER = re.compile(
    r"ProviderModelNotFoundError: Model not found: ([\w-]+)/(\S+?)\.?(?=[\s\"]|$)"
)


def missing_provider_key(backend: str, stderr: str, env: Mapping[str, str]) -> str | None:
    """Why an agent could not start its model when the reason is a provider key missing from
    its environment (OpenCode's "Model not found" for a known provider whose key is unset),
    in one sentence; None otherwise."""
    found = _UNLOADED_PROVIDER.search(stderr) if backend == "opencode" else None
    if found is None or found.group(1) not in PROVIDER_KEYS:
        return None
    provider, model = found.group(1), found.group(2)
    names = provider_keys(backend, provider)
    if any(env.get(name) for name in names):
        return None  # the key is there: the model itself is unknown
    return (
        f"{backend} has no key for the {provider} provider ({' or '.join(names)} is not set "
        f"in the agent's environment), so it does not know the model {provider}/{model}"
    )


@dataclass(frozen=True)
class Credentials:
    """What a backend needs in the environment: any one of ``names``."""

    names: tuple[str, ...]
    required: bool  # False: a custom endpoint, which may take no key
    how: str  # what to set, in one phrase

    def present(self, env: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(name for name in self.names if env.get(name))


def credentials_for(backend: str, settings: Settings, model: str | None = None) -> Credentials:
    """The variables that carry ``backend``'s key (docs/backends.md, "Credentials")."""
    model = model or settings.model
    if backend == "claude":
        if settings.claude_base_url:
            return Credentials(
                ("ANTHROPIC_API_KEY",), False, "the endpoint's key as ANTHROPIC_API_KEY"
            )
        return Credentials(
            ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"),
            True,
            "export ANTHROPIC_API_KEY=... (or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`)",
        )
    if backend == "codex":
        return Credentials(
            ("CODEX_API_KEY", "OPENAI_API_KEY"),
            not settings.codex_base_url,
            "export OPENAI_API_KEY=... (or CODEX_API_KEY)",
        )
    if backend in ("opencode", "pi"):
        base_url = settings.opencode_base_url if backend == "opencode" else settings.pi_base_url
        if base_url:
            api = settings.opencode_api if backend == "opencode" else settings.pi_api
            names = (
                ("ANTHROPIC_API_KEY",) if api == "messages" else ("OPENAI_API_KEY", "CODEX_API_KEY")
            )
            return Credentials(names, False, f"the endpoint's key as {names[0]}")
        provider = model.split("/", 1)[0] if model and "/" in model else None
        if provider in PROVIDER_KEYS:
            names = provider_keys(backend, provider)
            return Credentials(names, True, f"export {names[0]}=... (the {provider} key)")
        names = tuple(dict.fromkeys(PROVIDER_KEYS.values()))
        return Credentials(
            names,
            True,
            "export the key of the model's provider (ANTHROPIC_API_KEY, OPENAI_API_KEY, ...)",
        )
    return Credentials((), False, "nothing")


_NO_KEY_FOR = re.compile(r"No API key found for ([\w-]+)")  # Pi, on stderr


def auth_advice(backend: str, settings: Settings, model: str | None, message: str = "") -> str:
    """What to do when ``backend`` could not authenticate, in one sentence. ``message`` is
    the CLI's own error, which may name the provider (Pi: "No API key found for X.")."""
    if backend == "scripted":  # the scripted agent stands in for Claude Code
        backend = "claude"
    named = _NO_KEY_FOR.search(message)
    if named and named.group(1) in PROVIDER_KEYS and "/" not in (model or settings.model or ""):
        model = f"{named.group(1)}/{model or settings.model or ''}"
    names = credentials_for(backend, settings, model).names
    what = " or ".join(names) if 0 < len(names) <= 2 else "the key of the model's provider"
    return (
        f"set {what} in the environment baro runs in; a login stored by the CLI itself "
        "(/login) does not reach baro's agents, each has its own config home "
        "(docs/backends.md, Credentials)"
    )


def custom_endpoint(backend: str, settings: Settings) -> str | None:
    """The backend's BARO_<CLI>_BASE_URL, when one is set."""
    return {
        "claude": settings.claude_base_url,
        "codex": settings.codex_base_url,
        "opencode": settings.opencode_base_url,
        "pi": settings.pi_base_url,
    }.get(backend)
