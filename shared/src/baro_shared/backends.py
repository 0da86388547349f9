"""Which agent CLIs exist, where their binaries are, and the environment every agent gets."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from baro_shared.settings import Settings

KNOWN_BACKENDS = ("claude", "codex", "opencode", "pi", "scripted")

# Never inherited by agents: baro's own credentials and settings.
SECRET_PREFIXES = ("BARO_", "NATS_")
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


def agent_env(scratch: Path | None = None) -> dict[str, str]:
    """The process environment minus baro's secrets, plus settings that keep tools from prompting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_PREFIXES)}
    env.update(NON_INTERACTIVE)
    if scratch is not None:
        env["TMPDIR"] = str(scratch)
    return env


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
