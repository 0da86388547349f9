"""How each backend CLI is started for a story: command line, environment, working directory.

The real CLIs' command lines live in ``baro_shared.headless`` (intake and planner ask the
same CLIs one-shot questions); this module adds the story's workspace and the scripted
test/demo agent.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from baro_runner.workspace import Workspace
from baro_shared import objectcache
from baro_shared import schemas as s
from baro_shared.backends import (
    KNOWN_BACKENDS,
    SandboxRequired,
    agent_env,
    agent_fence,
    binary_for,
)
from baro_shared.headless import BackendConfigError, invocation
from baro_shared.sandbox import Fence
from baro_shared.settings import Settings


@dataclass(frozen=True)
class AgentCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stdin: Path | None = None  # a file the agent reads on standard input: its prompt
    # the fence it runs in: started by the fence's launcher (``argv`` then starts the
    # launcher), which dies with the runner by itself (--parent)
    fence: Fence | None = None
    agent_argv: list[str] | None = None  # ``argv`` without the launcher
    # the arguments of ``SCRIPTED_MODULE``'s main when ``argv`` starts baro's own scripted
    # agent as that module: a launcher that preloaded it runs it without a second Python
    inline: list[str] | None = None

    @property
    def fenced(self) -> bool:
        return self.fence is not None


def _prompt_file(ws: Workspace, prompt: str) -> Path:
    """The prompt, in the attempt's folder beside (not inside) the clone; the agent reads
    it on standard input, never from its command line (see baro_shared.headless)."""
    path = ws.root / "prompt.md"
    path.write_text(prompt, encoding="utf-8")
    return path


class BackendUnavailable(RuntimeError):
    pass


def user_repository(cmd: s.RunStory) -> Path | None:
    """The user's repository when the run's source is one on this machine."""
    return Path(cmd.source.location) if cmd.source.kind == "path" else None


def _environment(ws: Workspace, cmd: s.RunStory) -> dict[str, str]:
    """The agent's base environment: started in its clone, pointed away from the user's
    repository when the run's source is one on this machine, with the story's ports."""
    return agent_env(ws.scratch, workdir=ws.repo, away_from=user_repository(cmd)) | ws.env


def story_fence(ws: Workspace, cmd: s.RunStory, settings: Settings) -> Fence | None:
    """The fence for whatever runs in this story's workspace (the agent, the setup
    command): nothing of baro's or of the user's repository visible, the workspace kept,
    the source objects its clone borrows readable and nothing more."""
    try:
        return agent_fence(
            settings,
            keep=ws.root,
            away_from=user_repository(cmd),
            read_only=objectcache.borrowed_objects(ws.git_dir),
        )
    except SandboxRequired as exc:
        raise BackendUnavailable(str(exc)) from None


def fenced(command: AgentCommand, fence: Fence | None) -> AgentCommand:
    if fence is None:
        return command
    argv = fence.command(command.argv, dies_with=os.getpid())  # agent.run_agent starts it
    return replace(command, argv=argv, fence=fence, agent_argv=command.argv)


# baro's own scripted agent, started as its console script would start it, but in an
# isolated interpreter without site: it needs nothing but the standard library and its
# module, and starts in about two thirds of the time (once per story); it leaves without
# the interpreter's finalization
SCRIPTED_MODULE = (str(Path(__file__).resolve().parent.parent), "baro_runner.scripted_agent")
_SCRIPTED_MAIN = (
    f"import sys; sys.path.append({SCRIPTED_MODULE[0]!r}); "
    f"from {SCRIPTED_MODULE[1]} import exit_after, main; exit_after(main())"
)


def _scripted_start(binary: str) -> list[str]:
    """How to start the scripted agent at ``binary``: the console script installed beside
    this interpreter is this package's own, started as its module; any other as it is."""
    if _is_own_scripted_agent(binary):
        return [sys.executable, "-I", "-S", "-c", _SCRIPTED_MAIN]
    return [binary]


def _is_own_scripted_agent(binary: str) -> bool:
    return binary == str(Path(sys.executable).parent / "baro-scripted-agent")


def _scripted(binary: str, prompt: str, ws: Workspace, cmd: s.RunStory) -> AgentCommand:
    env = _environment(ws, cmd)
    args = ["-p", "--output-format", "stream-json", "--verbose"]
    if cmd.model:
        args += ["--model", cmd.model]
    if cmd.agent_script:
        env["BARO_AGENT_SCRIPT"] = cmd.agent_script
    env["BARO_STORY_ID"] = cmd.story.id
    env["BARO_STORY_TITLE"] = cmd.story.title
    env["BARO_ATTEMPT"] = str(cmd.attempt)
    env["BARO_WRITE_SURFACE"] = json.dumps(cmd.story.write_surface)
    inline = args if _is_own_scripted_agent(binary) else None
    return AgentCommand(
        [*_scripted_start(binary), *args], env, ws.repo, _prompt_file(ws, prompt), inline=inline
    )


def agent_command(
    backend: str, prompt: str, ws: Workspace, cmd: s.RunStory, settings: Settings
) -> AgentCommand:
    if backend not in KNOWN_BACKENDS:
        raise BackendUnavailable(f"backend {backend!r} is not supported by this runner")
    binary = binary_for(backend, settings)
    if binary is None:
        raise BackendUnavailable(f"the {backend} CLI is not installed on this runner")
    if backend == "scripted":
        return _scripted(binary, prompt, ws, cmd)
    try:
        run = invocation(
            backend,
            binary,
            prompt,
            purpose="story",
            home=ws.home,
            settings=settings,
            model=cmd.model or settings.model,
            env=_environment(ws, cmd),
        )
    except BackendConfigError as exc:
        raise BackendUnavailable(str(exc)) from exc
    return AgentCommand(run.argv, run.env, ws.repo, _prompt_file(ws, run.stdin_text))
