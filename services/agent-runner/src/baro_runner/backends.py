"""How each backend CLI is started headlessly: command line and environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from baro_runner.workspace import Workspace
from baro_shared import schemas as s
from baro_shared.backends import agent_env, binary_for
from baro_shared.settings import Settings


@dataclass(frozen=True)
class AgentCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


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
    env = agent_env(ws.scratch)
    return builder(binary, prompt, ws, cmd, env)
