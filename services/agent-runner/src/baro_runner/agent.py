"""Running one agent CLI under supervision.

The agent runs in its own process group; its stdout is read line by line (each line capped)
and fed to the backend's stream mapper. The run ends when the stream ends, or is stopped for
a stall (no output for ``stall_timeout``), the wall timeout, the token budget, or an outside
reason (cancellation, shutdown). On every path the whole process group is terminated, so no
child outlives the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from baro_runner.backends import AgentCommand
from baro_runner.reaper import die_with_parent
from baro_shared import schemas as s
from baro_shared.mappers import StreamMapper

MAX_LINE_BYTES = 4 << 20
STDERR_TAIL_BYTES = 8192
READ_CHUNK = 1 << 16
EXIT_GRACE_S = 2.0

Sink = Callable[[s.NormalizedEvent], Awaitable[None]]
StopCheck = Callable[[], Awaitable[str | None]]


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


@dataclass
class Limits:
    stall_timeout: float
    wall_timeout: float
    token_budget: int | None = None
    check_every: float = 0.5


class _Stop(Exception):
    def __init__(self, status: s.AttemptStatus, reason: str) -> None:
        self.status = status
        self.reason = reason


async def run_agent(
    command: AgentCommand,
    mapper: StreamMapper,
    limits: Limits,
    sink: Sink,
    stop_check: StopCheck,
    on_spawn: Callable[[int], Awaitable[None]] | None = None,
) -> AgentOutcome:
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command.argv,
            cwd=str(command.cwd),
            env=command.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
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
    state = _ReadState(last_output=time.monotonic())
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
            if state.budget_hit:
                stopped = _Stop(
                    "budget_exceeded", f"token budget of {limits.token_budget} exceeded"
                )
            elif now - state.last_output > limits.stall_timeout:
                stopped = _Stop("stalled", f"no output for {limits.stall_timeout:.0f}s")
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
        await _emit(event, mapper, sink, state, limits)
    stderr_tail = state.stderr_tail.decode("utf-8", "replace")
    status, reason, error = _verdict(stopped, state, mapper, limits, exit_code, stderr_tail)
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
    )


def _verdict(
    stopped: _Stop | None,
    state: _ReadState,
    mapper: StreamMapper,
    limits: Limits,
    exit_code: int | None,
    stderr_tail: str,
) -> tuple[s.AttemptStatus, str, str | None]:
    """(status, exit reason, error) of a finished agent: a stop wins, then the stream."""
    if stopped is not None:
        return stopped.status, stopped.status, stopped.reason
    if state.budget_hit:
        return (
            "budget_exceeded",
            "budget_exceeded",
            f"token budget of {limits.token_budget} exceeded",
        )
    if mapper.outcome_ok:
        return "success", "completed", None
    error = mapper.error or (
        f"exited with code {exit_code}" if exit_code else "the agent reported failure"
    )
    if not state.lines and stderr_tail.strip():
        error = f"{error}: {stderr_tail.strip().splitlines()[-1][:300]}"
    status: s.AttemptStatus = "retryable" if state.retryable else "failed"
    return status, ("agent_error" if state.lines else "no_output"), error


@dataclass
class _ReadState:
    last_output: float
    lines: int = 0
    oversize: int = 0
    retryable: bool = False
    budget_hit: bool = False
    stderr_tail: bytes = b""


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
        state.last_output = time.monotonic()
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
    for event in mapper.feed(line):
        await _emit(event, mapper, sink, state, limits)


async def _emit(
    event: s.NormalizedEvent, mapper: StreamMapper, sink: Sink, state: _ReadState, limits: Limits
) -> None:
    if isinstance(event, s.AgentError) and event.retryable:
        state.retryable = True
    if (
        isinstance(event, s.Usage)
        and limits.token_budget
        and mapper.usage.total > limits.token_budget
    ):
        state.budget_hit = True
    await sink(event)


async def _read_stderr(stream: asyncio.StreamReader, state: _ReadState) -> None:
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            return
        state.stderr_tail = (state.stderr_tail + chunk)[-STDERR_TAIL_BYTES:]


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
