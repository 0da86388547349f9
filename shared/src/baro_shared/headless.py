"""How each agent CLI runs headlessly: command line, environment and private config home.

Two purposes share this. A ``story`` (the agent-runner): the agent may edit files in its
working directory and run commands there, nothing asks for permission, nothing prompts.
A ``question`` (intake and planner, through ``oneshot``): one answer, without tools where
the CLI can run without them, read-only where it cannot (Codex).

The prompt never goes on the command line: every CLI reads it from standard input when
no prompt argument is given (``claude -p``, ``codex exec``, ``opencode run``, ``pi
--mode json``), so a long one cannot hit the kernel's limit on one argument (128 KiB)
or on a whole command line, and it never shows in a process listing.

Every CLI gets its own config home under ``home`` (a workspace's ``home/``, or a
question's temporary folder), so parallel agents never share CLI state. The files written
there hold settings only: credentials reach a CLI through the environment
(``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``, ``CODEX_API_KEY``), never a file baro writes.
docs/backends.md describes each backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from baro_shared.settings import Settings

Purpose = Literal["story", "question"]
WireApi = Literal["chat", "responses", "messages"]

# The provider name baro gives a custom endpoint inside a CLI's own configuration.
PROVIDER = "baro"
# Sent when a custom endpoint has no key in the environment (local servers ignore it).
NO_KEY = "none"


class BackendConfigError(ValueError):
    """The settings for a backend cannot work; the message says what to change."""


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]
    stdin_text: str = ""  # what the CLI reads on standard input: the prompt


@dataclass(frozen=True)
class _Request:
    binary: str
    prompt: str
    purpose: Purpose
    home: Path
    settings: Settings
    model: str | None
    env: dict[str, str]


def invocation(
    backend: str,
    binary: str,
    prompt: str,
    *,
    purpose: Purpose,
    home: Path,
    settings: Settings,
    model: str | None,
    env: dict[str, str],
) -> Invocation:
    """The command line and environment for one headless run; writes the CLI's config home.

    ``env`` is the agent's base environment (``backends.agent_env``); it is copied, not
    changed.
    """
    builder = _BUILDERS.get(backend)
    if builder is None:
        raise BackendConfigError(f"backend {backend!r} has no headless command line")
    request = _Request(binary, prompt, purpose, home, settings, model, dict(env))
    return builder(request)


def _key_variable(api: WireApi, env: dict[str, str]) -> str | None:
    """The environment variable holding the key for a custom endpoint, if it is set."""
    names = ("ANTHROPIC_API_KEY",) if api == "messages" else ("OPENAI_API_KEY", "CODEX_API_KEY")
    return next((name for name in names if env.get(name)), None)


def _require_model(backend: str, model: str | None) -> str:
    if not model:
        raise BackendConfigError(
            f"BARO_{backend.upper()}_BASE_URL is set but no model is: "
            "set BARO_MODEL or pass --model"
        )
    return model


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


# --------------------------------------------------------------------------- Claude Code


def _claude(r: _Request) -> Invocation:
    env = r.env
    env["CLAUDE_CONFIG_DIR"] = str(_private_dir(r.home / "claude"))
    for name in (
        "DISABLE_AUTOUPDATER",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "DISABLE_BUG_COMMAND",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    ):
        env.setdefault(name, "1")
    if r.settings.claude_base_url:
        env["ANTHROPIC_BASE_URL"] = r.settings.claude_base_url
    if r.settings.agent_max_retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(r.settings.agent_max_retries)
    argv = [r.binary, "-p", "--output-format", "stream-json", "--verbose"]
    if r.purpose == "story":
        # file edits inside the working directory are accepted; anything else that would
        # ask is denied (headless), except Bash, which stories need for builds and tests
        argv += ["--permission-mode", "acceptEdits", "--allowedTools", "Bash"]
    else:
        argv += ["--tools", "", "--permission-mode", "dontAsk", "--no-session-persistence"]
    if r.model:
        argv += ["--model", r.model]
    return Invocation(argv, env, r.prompt)


# --------------------------------------------------------------------------- Codex


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string


def _toml(top: dict[str, object], tables: dict[str, dict[str, object]]) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]", *(f"{k} = {_toml_value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def _codex(r: _Request) -> Invocation:
    env, settings = r.env, r.settings
    home = _private_dir(r.home / "codex")
    env["CODEX_HOME"] = str(home)
    if not env.get("CODEX_API_KEY") and env.get("OPENAI_API_KEY"):
        env["CODEX_API_KEY"] = env["OPENAI_API_KEY"]  # `codex exec` reads CODEX_API_KEY
    top: dict[str, object] = {"approval_policy": "never", "check_for_update_on_startup": False}
    tables: dict[str, dict[str, object]] = {
        "analytics": {"enabled": False},
        "feedback": {"enabled": False},
        "features": {"plugins": False},  # otherwise it contacts plugin hosts on every run
    }
    if settings.codex_base_url:
        top["model_provider"] = PROVIDER
        provider: dict[str, object] = {
            "name": PROVIDER,
            "base_url": settings.codex_base_url,
            "wire_api": "responses",  # the only one Codex still speaks
            "supports_websockets": False,
        }
        key = _key_variable("responses", env)
        if key:
            provider["env_key"] = key
        if settings.agent_max_retries is not None:
            provider["request_max_retries"] = settings.agent_max_retries
            provider["stream_max_retries"] = settings.agent_max_retries
        tables[f"model_providers.{PROVIDER}"] = provider
    (home / "config.toml").write_text(_toml(top, tables))
    sandbox = settings.codex_sandbox if r.purpose == "story" else "read-only"
    argv = [r.binary, "exec", "--json", "--skip-git-repo-check", "--sandbox", sandbox]
    if r.purpose == "question":
        argv.append("--ephemeral")
    if r.model:
        argv += ["--model", r.model]
    return Invocation(argv, env, r.prompt)


# --------------------------------------------------------------------------- OpenCode

_OPENCODE_PACKAGES: dict[str, str] = {
    "chat": "@ai-sdk/openai-compatible",
    "responses": "@ai-sdk/openai",
    "messages": "@ai-sdk/anthropic",
}
_OPENCODE_ENV = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",  # no ~/.claude instructions or skills
}


def _opencode(r: _Request) -> Invocation:
    env, settings = r.env, r.settings
    home = _private_dir(r.home / "opencode")
    for xdg in ("config", "data", "state", "cache"):
        env[f"XDG_{xdg.upper()}_HOME"] = str(_private_dir(home / xdg))
    env.update(_OPENCODE_ENV)
    story = r.purpose == "story"
    allow = "allow" if story else "deny"
    config: dict[str, object] = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "permission": {
            "edit": allow,
            "bash": allow,
            "webfetch": "deny",
            "external_directory": "deny",  # nothing outside the working directory
        },
    }
    if not story:
        config["tools"] = {"*": False}
    model = r.model
    if settings.opencode_base_url:
        model_id = _require_model("opencode", r.model or settings.model)
        api = settings.opencode_api
        key = _key_variable(api, env)
        config["provider"] = {
            PROVIDER: {
                "npm": _OPENCODE_PACKAGES[api],
                "name": PROVIDER,
                "options": {
                    "baseURL": settings.opencode_base_url,
                    "apiKey": f"{{env:{key}}}" if key else NO_KEY,
                },
                "models": {
                    model_id: {"tool_call": True, "limit": {"context": 128000, "output": 8192}}
                },
            }
        }
        model = f"{PROVIDER}/{model_id}"
        config["model"] = config["small_model"] = model
        env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"
    path = home / "opencode.json"
    path.write_text(json.dumps(config, indent=2))
    env["OPENCODE_CONFIG"] = str(path)
    # its errors (a provider without a key, a model it does not know) reach the stream only
    # as "Unexpected server error"; the log lines on stderr say what happened
    argv = [r.binary, "run", "--format", "json", "--print-logs", "--log-level", "ERROR"]
    if model:
        argv += ["--model", model]
    return Invocation(argv, env, r.prompt)


# --------------------------------------------------------------------------- Pi

_PI_APIS: dict[str, str] = {
    "chat": "openai-completions",
    "responses": "openai-responses",
    "messages": "anthropic-messages",
}


def _pi(r: _Request) -> Invocation:
    env, settings = r.env, r.settings
    home = _private_dir(r.home / "pi")
    env["PI_CODING_AGENT_DIR"] = str(home)
    env.update({"PI_OFFLINE": "1", "PI_SKIP_VERSION_CHECK": "1", "PI_TELEMETRY": "0"})
    if settings.agent_max_retries is not None:
        retries = settings.agent_max_retries
        retry = {"enabled": retries > 0, "maxRetries": retries, "provider": {"maxRetries": 0}}
        (home / "settings.json").write_text(json.dumps({"retry": retry}, indent=2))
    argv = [r.binary, "--mode", "json", "--no-session"]
    if r.purpose == "question":
        argv.append("--no-tools")
    if settings.pi_base_url:
        model_id = _require_model("pi", r.model or settings.model)
        api = settings.pi_api
        key = _key_variable(api, env)
        provider: dict[str, object] = {
            "baseUrl": settings.pi_base_url,
            "api": _PI_APIS[api],
            "apiKey": f"${{{key}}}" if key else NO_KEY,
            "models": [{"id": model_id, "contextWindow": 128000, "maxTokens": 8192}],
        }
        if api == "chat":
            provider["compat"] = {"supportsDeveloperRole": False}
        models = {"providers": {PROVIDER: provider}}
        (home / "models.json").write_text(json.dumps(models, indent=2))
        argv += ["--provider", PROVIDER, "--model", model_id]
    elif r.model:
        argv += ["--model", r.model]
    return Invocation(argv, env, r.prompt)


_BUILDERS: dict[str, Callable[[_Request], Invocation]] = {
    "claude": _claude,
    "codex": _codex,
    "opencode": _opencode,
    "pi": _pi,
}
