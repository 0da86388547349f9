"""One tool-less question to an agent CLI in headless mode, answered with text.

Intake (LLM classification) and the planner (LLM decomposition) use this: the CLI is run
without tools (or read-only where it has no tool-less mode), its stream is normalized by
the backend's mapper, and the final assistant text and the tokens it cost come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.backends import SandboxRequired, agent_env, agent_fence, binary_for
from baro_shared.headless import BackendConfigError, Invocation, invocation
from baro_shared.mappers import mapper_for
from baro_shared.processes import dies_with_parent
from baro_shared.settings import Settings

MAX_OUTPUT_BYTES = 8 << 20


@dataclass
class OneShotResult:
    ok: bool
    text: str = ""
    usage: s.TokenUsage = field(default_factory=s.TokenUsage)
    error: str | None = None
    seconds: float = 0.0
    # every assistant text in order; ``text`` is the last one (or the final result)
    texts: list[str] = field(default_factory=list)


def command(
    backend: str,
    binary: str,
    prompt: str,
    model: str | None,
    *,
    settings: Settings,
    home: Path,
    env: dict[str, str],
) -> Invocation:
    """The headless, tool-less command line and environment for one question (the real
    CLIs' in ``baro_shared.headless``); the CLI's config home is written under ``home``."""
    if backend == "scripted":
        argv = [binary, "-p", "--output-format", "stream-json", "--verbose"]
        return Invocation(argv + (["--model", model] if model else []), env, prompt)
    return invocation(
        backend,
        binary,
        prompt,
        purpose="question",
        home=home,
        settings=settings,
        model=model or settings.model,
        env=env,
    )


async def ask(
    backend: str,
    prompt: str,
    settings: Settings,
    *,
    purpose: str,
    model: str | None = None,
    timeout: float = 180.0,
    agent_script: str | None = None,
) -> OneShotResult:
    """Ask ``prompt``; never raises for the CLI's own failures (they come back as ok=False).

    ``purpose`` names the caller ("intake", "planner"); the scripted test/demo agent sees it
    as its story id, so one script can answer both.
    """
    started = time.monotonic()
    binary = binary_for(backend, settings)
    if binary is None:
        return OneShotResult(False, error=f"the {backend} CLI is not installed")
    with tempfile.TemporaryDirectory(prefix=f"baro-{purpose}-") as tmp:
        env = agent_env(Path(tmp), workdir=Path(tmp))
        env.update(
            {"BARO_STORY_ID": f"baro-{purpose}", "BARO_STORY_TITLE": purpose, "BARO_ATTEMPT": "1"}
        )
        if backend == "scripted" and agent_script:
            env["BARO_AGENT_SCRIPT"] = agent_script
        try:
            run = command(
                backend, binary, prompt, model, settings=settings, home=Path(tmp) / "home", env=env
            )
        except BackendConfigError as exc:
            return OneShotResult(False, error=str(exc))
        try:
            fence = agent_fence(settings)
        except SandboxRequired as exc:
            return OneShotResult(False, error=str(exc))
        argv = fence.command(run.argv) if fence is not None else run.argv
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=tmp,
                env=run.env,
                stdin=asyncio.subprocess.PIPE,  # the prompt (see baro_shared.headless)
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=dies_with_parent(signal.SIGKILL),
            )
        except OSError as exc:
            return OneShotResult(False, error=f"could not start {binary}: {exc}")
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(run.stdin_text.encode()), timeout=timeout
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return OneShotResult(
                False, error=f"no answer within {timeout:.0f}s", seconds=time.monotonic() - started
            )
    return interpret(
        backend, out[:MAX_OUTPUT_BYTES], err, proc.returncode, time.monotonic() - started
    )


def interpret(
    backend: str, out: bytes, err: bytes, exit_code: int | None, seconds: float
) -> OneShotResult:
    mapper = mapper_for(backend)
    texts: list[str] = []
    result_text: str | None = None
    for line in out.splitlines():
        for event in mapper.feed(line):
            if isinstance(event, s.AssistantText):
                texts.append(event.text)
            elif isinstance(event, s.AgentFinished) and event.result:
                result_text = event.result
    for event in mapper.finish(exit_code):
        if isinstance(event, s.AgentFinished) and event.result:
            result_text = event.result
    text = texts[-1] if texts else (result_text or "")
    if not mapper.outcome_ok:
        detail = (
            mapper.error
            or err.decode("utf-8", "replace").strip()[-300:]
            or f"exit code {exit_code}"
        )
        return OneShotResult(False, text, mapper.usage, detail, seconds, texts)
    return OneShotResult(True, text, mapper.usage, None, seconds, texts)
