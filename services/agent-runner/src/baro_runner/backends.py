"""How each backend CLI is started headlessly: command line and environment."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from baro_runner.workspace import Workspace
from baro_shared import schemas as s
from baro_shared.settings import Settings

# Never inherited by agents: baro's own credentials and settings.
_SECRET_PREFIXES = ("BARO_", "NATS_")
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


@dataclass(frozen=True)
class AgentCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def base_env(ws: Workspace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SECRET_PREFIXES)}
    env.update(NON_INTERACTIVE)
    env["TMPDIR"] = str(ws.scratch)
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


def _claude(
    binary: str, prompt: str, ws: Workspace, cmd: s.RunStory, env: dict[str, str]
) -> AgentCommand:
    argv = [
        binary,
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
    ]
    if cmd.model:
        argv += ["--model", cmd.model]
    env["IS_SANDBOX"] = (
        "1"  # the workspace is a throwaway clone; allows skipping permission prompts as root
    )
    env["CLAUDE_CONFIG_DIR"] = str(ws.home / "claude")
    env.setdefault("DISABLE_AUTOUPDATER", "1")
    env.setdefault("DISABLE_TELEMETRY", "1")
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    return AgentCommand(argv, env, ws.repo)


def _scripted(
    binary: str, prompt: str, ws: Workspace, cmd: s.RunStory, env: dict[str, str]
) -> AgentCommand:
    argv = [binary, "-p", prompt, "--output-format", "stream-json", "--verbose"]
    if cmd.model:
        argv += ["--model", cmd.model]
    if cmd.agent_script:
        env["BARO_AGENT_SCRIPT"] = cmd.agent_script
    env["BARO_STORY_ID"] = cmd.story.id
    env["BARO_STORY_TITLE"] = cmd.story.title
    env["BARO_ATTEMPT"] = str(cmd.attempt)
    env["BARO_WRITE_SURFACE"] = json.dumps(cmd.story.write_surface)
    return AgentCommand(argv, env, ws.repo)


Builder = Callable[[str, str, Workspace, s.RunStory, dict[str, str]], AgentCommand]
BUILDERS: dict[str, Builder] = {"claude": _claude, "scripted": _scripted}
KNOWN_BACKENDS = ("claude", "codex", "opencode", "pi", "scripted")


class BackendUnavailable(RuntimeError):
    pass


def agent_command(
    backend: str, prompt: str, ws: Workspace, cmd: s.RunStory, settings: Settings
) -> AgentCommand:
    builder = BUILDERS.get(backend)
    if builder is None:
        raise BackendUnavailable(f"backend {backend!r} is not supported by this runner")
    binary = binary_for(backend, settings)
    if binary is None:
        raise BackendUnavailable(f"the {backend} CLI is not installed on this runner")
    env = base_env(ws)
    return builder(binary, prompt, ws, cmd, env)
