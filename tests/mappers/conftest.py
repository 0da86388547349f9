"""Shared pieces of the mapper tests.

The captured wire streams live in ``fixtures/`` next to this file: a copy of
``../shared/fixtures/wire`` (public captures; provenance in ``fixtures/SOURCES.md``), so the
suite runs on a fresh clone. A missing fixture directory is a failure, never a skip.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from baro_shared.mappers import StreamMapper, mapper_for
from baro_shared.schemas import NormalizedEvent

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The originals, one level above the repository root (absent on a fresh clone).

event_decoder = msgspec.json.Decoder(NormalizedEvent)


def fixture_lines(relative: str) -> list[bytes]:
    if not FIXTURES.is_dir():
        pytest.fail(f"fixture directory {FIXTURES} is missing", pytrace=False)
    return (FIXTURES / relative).read_bytes().splitlines()


def run(
    backend: str, lines: list[bytes] | list[str], exit_code: int | None = None
) -> tuple[StreamMapper, list[NormalizedEvent]]:
    """Feed every line, then finish: the mapper and every event it produced."""
    mapper = mapper_for(backend)
    events: list[NormalizedEvent] = []
    for line in lines:
        events.extend(mapper.feed(line))
    events.extend(mapper.finish(exit_code))
    return mapper, events


def roundtrip(event: NormalizedEvent) -> NormalizedEvent:
    """Encode and decode with the bus schema: proves every field has its declared type."""
    return event_decoder.decode(msgspec.json.encode(event))
