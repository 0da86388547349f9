"""Running one agent CLI under supervision.

The agent runs in its own process group; its stdout is read line by line (each line capped)
and fed to the backend's stream mapper. The run ends when the stream ends, or is stopped for
a stall (no progress for ``stall_timeout``), the wall timeout, a token budget, or an
outside reason (cancellation, shutdown). On every path the whole process group is
terminated, so no child outlives the story.

Token budgets are checked on every line, against what the stream shows spent so far
(``StreamMapper.spent``): the story's own budget, and the attempt's share of the run's
budget (docs/backends.md, "Token budgets").

Progress is what the mapper counts as the model or its tools at work (text, thinking, tool
calls, files, commands, tokens, streamed deltas), not any output: a CLI printing
"Reconnecting..." for ever stalls. A stall during such retry notices, like any failure the
provider caused, is ``transient``; what a failure means for a retry (``failure``) comes from
the stream, or from the agent's stderr when the stream does not say.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from baro_runner.backends import AgentCommand
from baro_runner.reaper import die_with_parent
from baro_runner.standby import StandbyLaunchers
from baro_shared import schemas as s
from baro_shared.failures import explain
from baro_shared.mappers import StreamMapper

MAX_LINE_BYTES = 4 << 20
STDERR_TAIL_BYTES = 8192
READ_CHUNK = 1 << 16
EXIT_GRACE_S = 2.0

Sink = Callable[[s.NormalizedEvent], Awaitable[None]]
StopCheck = Callable[[], Awaitable[str | None]]


class Recorder(Protocol):
    """Keeps the agent's raw output (``rawlog.AgentLogs``)."""

    def stdout(self, line: bytes) -> None: ...

    def stderr(self, chunk: bytes) -> None: ...


@dataclass
class AgentOutcome:
    status: s.AttemptStatus
    exit_reason: str
    error: str | None
    usage: s.TokenUsage
    session_id: str | None
    seconds: float
    exit_code: int | None
    lines: int = 0
    oversize_lines: int = 0
    stderr_tail: str = ""
    events: list[str] = field(default_factory=list)
    failure: s.ErrorKind | None = None  # what a failure means for a retry (AgentError)


@dataclass
class Limits:
    stall_timeout: float
    wall_timeout: float
    token_budget: int | None = None  # the story's own budget (Limits.token_budget)
    # what this attempt may spend of the run's budget (RunStory.token_allowance, less what
    # earlier attempts of the command spent)
    run_allowance: int | None = None
    run_budget: int | None = None  # the run's whole budget, for the message
    check_every: float = 0.5

    def over_budget(self, spent: int) -> _Stop | None:
        """The stop a spending of ``spent`` tokens calls for, if any."""
        if self.token_budget is not None and spent > self.token_budget:
            return _Stop(
                "budget_exceeded",
                f"token budget of {self.token_budget:,} exceeded ({spent:,} spent)",
                reason="budget_exceeded",
            )
        if self.run_allowance is not None and spent > self.run_allowance:
            whole = f" of {self.run_budget:,}" if self.run_budget is not None else ""
            return _Stop(
                "budget_exceeded",
                f"the run's token budget{whole}: this story's share of {self.run_allowance:,} "
                f"tokens is spent ({spent:,} spent)",
                reason=s.RUN_BUDGET_EXCEEDED,
            )
        return None


class _Stop(Exception):
    def __init__(
        self,
        status: s.AttemptStatus,
        message: str,
        failure: s.ErrorKind | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.failure = failure
        self.exit_reason = reason or status


async def run_agent(
    command: AgentCommand,
    mapper: StreamMapper,
    limits: Limits,
    sink: Sink,
    stop_check: StopCheck,
    on_spawn: Callable[[int], Awaitable[None]] | None = None,
    recorder: Recorder | None = None,
    standby: StandbyLaunchers | None = None,
) -> AgentOutcome:
    started = time.monotonic()
    try:
        proc = await standby.start(command) if standby is not None else None
        if proc is None:
            proc = await _spawn(command)
    except OSError as exc:
        return AgentOutcome(
            "failed",
            "spawn_failed",
            f"could not start {command.argv[0]}: {exc}",
            s.TokenUsage(),
            None,
            0.0,
            None,
        )
    if on_spawn is not None:
        await on_spawn(proc.pid)
    state = _ReadState(last_progress=time.monotonic(), recorder=recorder)
    assert proc.stdout is not None and proc.stderr is not None
    reader = asyncio.create_task(_read_stdout(proc.stdout, mapper, sink, state, limits))
    err_reader = asyncio.create_task(_read_stderr(proc.stderr, state))
    exited = asyncio.create_task(proc.wait())
    exited_at: float | None = None
    stopped: _Stop | None = None
    try:
        while not reader.done():
            await asyncio.wait({reader, exited}, timeout=limits.check_every)
            if reader.done():
                break
            now = time.monotonic()
            if exited.done():
                # a child that inherited stdout can keep the pipe open after the agent exits
                exited_at = exited_at or now
                if now - exited_at > EXIT_GRACE_S:
                    break
                continue
            if state.over_budget is not None:
                stopped = state.over_budget
            elif mapper.looping is not None:
                stopped = _Stop("stalled", mapper.looping, "transient")
            elif now - state.last_progress > limits.stall_timeout:
                stopped = _stall(mapper, limits)
            elif now - started > limits.wall_timeout:
                stopped = _Stop("timeout", f"still running after {limits.wall_timeout:.0f}s")
            else:
                reason = await stop_check()
                if reason:
                    stopped = _Stop("cancelled", reason)
            if stopped:
                break
    finally:
        await _terminate_group(proc)
        for task in (reader, err_reader, exited):
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
    exit_code = proc.returncode
    for event in mapper.finish(exit_code):
        await sink(event)
    stderr_tail = state.stderr_tail.decode("utf-8", "replace")
    status, reason, error, failure = _verdict(
        stopped, state, mapper, limits, exit_code, stderr_tail, command.env
    )
    return AgentOutcome(
        status,
        reason,
        error,
        mapper.usage,
        mapper.session_id,
        time.monotonic() - started,
        exit_code,
        state.lines,
        state.oversize,
        stderr_tail,
        failure=failure,
    )


async def _spawn(command: AgentCommand) -> asyncio.subprocess.Process:
    with open(command.stdin or os.devnull, "rb") as stdin:
        return await asyncio.create_subprocess_exec(
            *command.argv,
            cwd=str(command.cwd),
            env=command.env,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            # the fence's launcher dies with the runner by itself: without a
            # preexec_fn, Python spawns the agent without forking the whole runner
            preexec_fn=None if command.fenced else die_with_parent,
        )


def _stall(mapper: StreamMapper, limits: Limits) -> _Stop:
    reason = f"no progress for {limits.stall_timeout:.0f}s"
    if mapper.retry_notice:  # the CLI was retrying a model call all along: the provider's fault
        notice = mapper.retry_notice[:300]
        return _Stop("stalled", f"{reason}; the agent kept retrying: {notice}", "transient")
    return _Stop("stalled", reason)


def _verdict(
    stopped: _Stop | None,
    state: _ReadState,
    mapper: StreamMapper,
    limits: Limits,
    exit_code: int | None,
    stderr_tail: str,
    env: Mapping[str, str],
) -> tuple[s.AttemptStatus, str, str | None, s.ErrorKind | None]:
    """(status, exit reason, error, failure) of a finished agent: a stop wins, then the
    stream, then the exit code with the agent's stderr."""
    if stopped is not None:
        if stopped.failure == "transient":
            return "retryable", stopped.exit_reason, stopped.message, stopped.failure
        return stopped.status, stopped.exit_reason, stopped.message, stopped.failure
    over = state.over_budget or limits.over_budget(mapper.spent)
    if over is not None:  # e.g. Codex: its usage comes at the end of its turn
        return over.status, over.exit_reason, over.message, None
    if mapper.outcome_ok:
        return "success", "completed", None, None
    error, failure = explain(mapper, stderr_tail, env, exit_code)
    if failure == "transient":
        return "retryable", "agent_error" if state.lines else "no_output", error, failure
    reason = {"auth": "auth_failed", "rejected": "rejected"}.get(failure or "")
    return "failed", reason or ("agent_error" if state.lines else "no_output"), error, failure


@dataclass
class _ReadState:
    last_progress: float  # when the mapper last counted progress (monotonic)
    lines: int = 0
    oversize: int = 0
    over_budget: _Stop | None = None  # the first budget the stream's spending passed
    stderr_tail: bytes = b""
    recorder: Recorder | None = None


async def _read_stdout(
    stream: asyncio.StreamReader,
    mapper: StreamMapper,
    sink: Sink,
    state: _ReadState,
    limits: Limits,
) -> None:
    pending = bytearray()
    discarding = False
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            break
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl == -1:
                piece = chunk[start:]
                if not discarding:
                    pending += piece
                    if len(pending) > MAX_LINE_BYTES:
                        # keep a truncated prefix for the mapper (it counts it as malformed)
                        del pending[MAX_LINE_BYTES:]
                        discarding = True
                break
            piece = chunk[start:nl]
            start = nl + 1
            if discarding:
                state.oversize += 1
                line = bytes(pending)
                discarding = False
            else:
                pending += piece
                line = bytes(pending)
            pending.clear()
            await _feed(line, mapper, sink, state, limits)
    if pending:
        await _feed(bytes(pending), mapper, sink, state, limits)


async def _feed(
    line: bytes, mapper: StreamMapper, sink: Sink, state: _ReadState, limits: Limits
) -> None:
    if not line.strip():
        return
    state.lines += 1
    if state.recorder is not None:
        state.recorder.stdout(line)
    progress = mapper.progress
    for event in mapper.feed(line):
        await sink(event)
    if mapper.progress != progress:
        state.last_progress = time.monotonic()
    if state.over_budget is None:
        state.over_budget = limits.over_budget(mapper.spent)


async def _read_stderr(stream: asyncio.StreamReader, state: _ReadState) -> None:
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            return
        state.stderr_tail = (state.stderr_tail + chunk)[-STDERR_TAIL_BYTES:]
        if state.recorder is not None:
            state.recorder.stderr(chunk)


async def _terminate_group(proc: asyncio.subprocess.Process, grace: float = 3.0) -> None:
    """SIGTERM the agent's process group, then SIGKILL what is left; reap the agent."""
    pgid = proc.pid  # start_new_session: the agent leads its own group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()
