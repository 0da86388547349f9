"""One summary object for a whole captured stream (what ``baro map --summary`` prints)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from baro_shared.mappers.base import StreamMapper
from baro_shared.schemas import (
    CommandRun,
    FileChanged,
    NormalizedEvent,
    ToolStarted,
)


class SummaryUsage(msgspec.Struct, kw_only=True):
    """Token totals; every key is always present, null meaning unknown."""

    input: int | None = None
    cached_input: int | None = None
    output: int | None = None
    reasoning: int | None = None
    cost_usd: float | None = None  # US dollars, where the backend reports a price


class MapSummary(msgspec.Struct, kw_only=True):
    backend: str
    session_id: str | None
    events: int
    tool_calls: int
    files_changed: list[str]
    commands: int
    usage: SummaryUsage
    outcome: Literal["success", "error"]
    error: str | None
    skipped_lines: int


def summarize_stream(
    backend: str,
    mapper: StreamMapper,
    lines: Iterable[bytes | str],
    exit_code: int | None = None,
) -> MapSummary:
    """Feed every line to ``mapper``, finish it, and count what came out."""
    events = 0
    tool_calls = 0
    commands = 0
    files: dict[str, None] = {}  # insertion-ordered set

    def tally(batch: list[NormalizedEvent]) -> None:
        nonlocal events, tool_calls, commands
        for event in batch:
            events += 1
            if isinstance(event, ToolStarted):
                tool_calls += 1
            elif isinstance(event, CommandRun):
                commands += 1
            elif isinstance(event, FileChanged):
                files[event.path] = None

    for line in lines:
        tally(mapper.feed(line))
    tally(mapper.finish(exit_code))
    ok = mapper.outcome_ok is True  # finish() has decided it by now
    usage = mapper.usage
    return MapSummary(
        backend=backend,
        session_id=mapper.session_id,
        events=events,
        tool_calls=tool_calls,
        files_changed=list(files),
        commands=commands,
        usage=SummaryUsage(
            input=usage.input,
            cached_input=usage.cached_input,
            output=usage.output,
            reasoning=usage.reasoning,
            cost_usd=usage.cost_usd,
        ),
        outcome="success" if ok else "error",
        error=None if ok else mapper.error,
        skipped_lines=mapper.skipped_lines,
    )
