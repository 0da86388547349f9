"""One tool-less question to an agent CLI in headless mode, answered with text.

Intake (LLM classification) and the planner (LLM decomposition) use this: the CLI is run
without tools (or read-only where it has no tool-less mode), its stream is normalized by
the backend's mapper, and the final assistant text and the tokens it cost come back.

A failed question is read as a story's attempt is (``failures.explain``) and asked again
within the same retry budget (``retry.Budget`` over the run's ``Limits``): a transient
provider failure after a backoff until the budget is spent, the CLI's own failure at most
``Limits.retries`` times, a refused request or key never (the error then names the
variables to set). Every asking's tokens count.
"""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from baro_shared import schemas as s
from baro_shared.backends import (
    SandboxRequired,
    agent_env,
    agent_fence,
    auth_advice,
    binary_for,
)
from baro_shared.failures import explain
from baro_shared.headless import BackendConfigError, Invocation, invocation
from baro_shared.mappers import mapper_for
from baro_shared.processes import dies_with_parent, kill_group
from baro_shared.retry import Budget
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
    failure: s.ErrorKind | None = None  # what a failure means for a retry (None: the CLI's)
    attempts: int = 1


class _CannotAsk(Exception):
    """The question cannot be put at all (no CLI, bad settings): asking again would not help."""


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
    limits: s.Limits | None = None,
) -> OneShotResult:
    """Ask ``prompt``, again within the retry budget of ``limits`` (the run's; defaults
    otherwise) when it fails; never raises for the CLI's own failures (they come back as
    ok=False, with the tokens of every asking).

    ``purpose`` names the caller ("intake", "planner"); the scripted test/demo agent sees it
    as its story id (and the asking's number as its attempt), so one script can answer both.
    """
    limits = limits or s.Limits()
    started = time.monotonic()
    spent = s.TokenUsage()
    own_failures = 0
    first_failure: float | None = None
    attempt = 0
    while True:
        attempt += 1
        try:
            result = await _ask_once(
                backend, prompt, settings, purpose, model, timeout, agent_script, attempt
            )
        except _CannotAsk as exc:
            return OneShotResult(False, error=str(exc), usage=spent, attempts=attempt)
        spent = spent + result.usage
        result.usage, result.attempts = spent, attempt
        result.seconds = time.monotonic() - started
        if result.ok or result.failure in ("rejected", "auth"):
            if result.failure == "auth":
                advice = auth_advice(backend, settings, model, result.error or "")
                result.error = f"{result.error} — {advice}"
            return result
        now = time.time()
        first_failure = first_failure or now
        budget = Budget.of(limits, first_failure)
        if result.failure == "transient":
            delay = budget.delay(attempt, now, settings.retry_delay_s)
        elif own_failures < limits.retries and budget.allows_retry(attempt, now):
            own_failures, delay = own_failures + 1, 0.0
        else:
            delay = None
        if delay is None:
            if attempt > 1:
                result.error = f"{budget.spent(attempt, now)}: {result.error}"
            return result
        await asyncio.sleep(delay)


async def _ask_once(
    backend: str,
    prompt: str,
    settings: Settings,
    purpose: str,
    model: str | None,
    timeout: float,
    agent_script: str | None,
    attempt: int,
) -> OneShotResult:
    started = time.monotonic()
    binary = binary_for(backend, settings)
    if binary is None:
        raise _CannotAsk(f"the {backend} CLI is not installed")
    with tempfile.TemporaryDirectory(prefix=f"baro-{purpose}-") as tmp:
        env = agent_env(Path(tmp), workdir=Path(tmp))
        env.update(
            {
                "BARO_STORY_ID": f"baro-{purpose}",
                "BARO_STORY_TITLE": purpose,
                "BARO_ATTEMPT": str(attempt),
                # the scripted agent then refuses every step with a side effect
                "BARO_QUESTION": "0" if settings.scripted_question_tools else "1",
            }
        )
        if backend == "scripted" and agent_script:
            env["BARO_AGENT_SCRIPT"] = agent_script
        try:
            run = command(
                backend, binary, prompt, model, settings=settings, home=Path(tmp) / "home", env=env
            )
            fence = agent_fence(settings)
        except (BackendConfigError, SandboxRequired) as exc:
            raise _CannotAsk(str(exc)) from None
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
            raise _CannotAsk(f"could not start {binary}: {exc}") from None
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(run.stdin_text.encode()), timeout=timeout
            )
        except TimeoutError:
            kill_group(proc.pid)
            await proc.wait()
            return OneShotResult(
                False, error=f"no answer within {timeout:.0f}s", seconds=time.monotonic() - started
            )
        except asyncio.CancelledError:
            kill_group(proc.pid)
            raise
    return interpret(
        backend,
        out[:MAX_OUTPUT_BYTES],
        err,
        proc.returncode,
        time.monotonic() - started,
        env=run.env,
    )


def interpret(
    backend: str,
    out: bytes,
    err: bytes,
    exit_code: int | None,
    seconds: float,
    *,
    env: Mapping[str, str] | None = None,
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
        stderr = err.decode("utf-8", "replace")
        error, kind = explain(mapper, stderr, env or {}, exit_code)
        return OneShotResult(False, text, mapper.usage, error, seconds, texts, failure=kind)
    return OneShotResult(True, text, mapper.usage, None, seconds, texts)
