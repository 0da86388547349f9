"""The real stack with room for wide runs, and helpers that read a run's schedule from its events."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from tests.e2e.conftest import bus, stack  # noqa: F401  (fixtures used by these tests)

RUNNER_SLOTS = 8


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    return Settings(
        nats_url=nats_server.url,
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        runner_ack_wait_s=10.0,
        runner_slots=RUNNER_SLOTS,
        http_port=0,
    )


@dataclass(frozen=True)
class Interval:
    """One story's agent: from StoryStarted to StoryAgentEnded, or StoryFinished when the
    runner did not hand its slot on before the result was in (its last attempt)."""

    started: float
    finished: float


def intervals(events: list[s.Event]) -> dict[str, Interval]:
    starts: dict[str, float] = {}
    ended: dict[str, float] = {}
    out: dict[str, Interval] = {}
    for ev in events:
        if isinstance(ev, s.StoryStarted):
            starts[ev.story_id] = ev.ts
            ended.pop(ev.story_id, None)
        elif isinstance(ev, s.StoryAgentEnded) and ev.story_id in starts:
            ended[ev.story_id] = ev.ts
        elif isinstance(ev, s.StoryFinished) and ev.story_id in starts:
            out[ev.story_id] = Interval(starts[ev.story_id], ended.get(ev.story_id, ev.ts))
    return out


def integrated_at(events: list[s.Event]) -> dict[str, float]:
    return {ev.story_id: ev.ts for ev in events if isinstance(ev, s.StoryIntegrated)}


def max_overlap(spans: list[Interval]) -> int:
    """The most agents running at one moment."""
    points = sorted(
        [(i.started, 1) for i in spans] + [(i.finished, -1) for i in spans],
        key=lambda p: (p[0], p[1]),  # a finish at the same instant counts before a start
    )
    running = best = 0
    for _, step in points:
        running += step
        best = max(best, running)
    return best


def rendezvous(meeting: Path, name: str, count: int) -> dict[str, str]:
    """A script step: arrive at ``meeting``, wait (up to 40 s) until ``count`` agents have
    arrived, and record how many had in ``meeting/<name>.met`` (outside the workspace).

    The wait does not depend on how fast the machine is: agents that run side by side
    meet; an agent that runs alone sees only those that came before it.
    """
    room = shlex.quote(str(meeting / "arrived"))
    met = shlex.quote(str(meeting / f"{name}.met"))
    return {
        "run": (
            f"mkdir -p {room} && touch {room}/{shlex.quote(name)}; i=0; "
            f'while [ "$(ls {room} | wc -l)" -lt {count} ] && [ $i -lt 800 ]; '
            f"do sleep 0.05; i=$((i+1)); done; "
            f"ls {room} | wc -l | tr -d ' ' > {met}"
        )
    }


def met(meeting: Path, name: str) -> int:
    """How many agents had arrived when ``name`` left the meeting (0: it never came)."""
    path = meeting / f"{name}.met"
    return int(path.read_text().strip() or 0) if path.exists() else 0


def copy_out(paths: list[str], seen: Path) -> dict[str, str]:
    """A script step: copy what the agent sees of ``paths`` in its workspace to ``seen``
    (outside the workspace); a missing file leaves an error line instead of its text."""
    files = " ".join(shlex.quote(p) for p in paths)
    return {
        "run": f"mkdir -p {shlex.quote(str(seen.parent))}; cat {files} > {shlex.quote(str(seen))} 2>&1"
    }


def story(sid: str, title: str, surface: list[str], depends_on: list[str] | None = None) -> s.Story:
    return s.Story(id=sid, title=title, depends_on=depends_on or [], write_surface=surface)
