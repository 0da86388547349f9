"""Stream mappers: each backend's JSON wire stream onto baro's normalized agent events.

``mapper_for(backend)`` gives a fresh mapper; feed it the agent's stdout line by line, then
call ``finish(exit_code)`` once the process is gone. ``summarize`` does that for a whole
captured stream and counts the result.
"""

from __future__ import annotations

from collections.abc import Iterable

from baro_shared.mappers.base import StreamMapper
from baro_shared.mappers.claude import ClaudeMapper
from baro_shared.mappers.codex import CodexMapper
from baro_shared.mappers.opencode import OpenCodeMapper
from baro_shared.mappers.pi import PiMapper
from baro_shared.mappers.summary import MapSummary, SummaryUsage, summarize_stream

BACKENDS: tuple[str, ...] = ("claude", "codex", "opencode", "pi")

_MAPPERS: dict[str, type[StreamMapper]] = {
    "claude": ClaudeMapper,
    "codex": CodexMapper,
    "opencode": OpenCodeMapper,
    "pi": PiMapper,
    # The scripted test agent speaks Claude Code's stream-json.
    "scripted": ClaudeMapper,
}


def mapper_for(backend: str) -> StreamMapper:
    """A new mapper for ``backend``; ValueError naming the valid ones otherwise."""
    mapper_class = _MAPPERS.get(backend) if isinstance(backend, str) else None
    if mapper_class is None:
        valid = ", ".join(_MAPPERS)
        raise ValueError(f"unknown backend {backend!r}; valid backends: {valid}")
    return mapper_class()


def summarize(
    backend: str, lines: Iterable[bytes | str], exit_code: int | None = None
) -> MapSummary:
    """Map a whole captured stream and summarize it (``baro map --summary``)."""
    return summarize_stream(backend, mapper_for(backend), lines, exit_code)


__all__ = [
    "BACKENDS",
    "ClaudeMapper",
    "CodexMapper",
    "MapSummary",
    "OpenCodeMapper",
    "PiMapper",
    "StreamMapper",
    "SummaryUsage",
    "mapper_for",
    "summarize",
]
