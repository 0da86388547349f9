"""Finished runs kept per repository for the intake's estimates: pure folding, then the KV."""

from __future__ import annotations

import asyncio

import pytest

from baro_conductor import core
from baro_conductor.history import MAX_RUNS_PER_MODE, became_final, past_run, with_run
from baro_conductor.remember import remember_run
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.settings import Settings

REPO = s.RepoSource(kind="path", location="/src/app", commit="base")


def finished(
    run_id: str,
    *,
    state: str = "delivered",
    mode: str = "focused",
    stories: int = 1,
    created: float = 100.0,
    confirmed: float | None = 130.0,
    done: float = 190.0,
) -> s.RunRecord:
    request = s.RunSubmitted(run_id=run_id, goal="fix a.py", repo=REPO, backend="scripted")
    return s.RunRecord(
        run_id=run_id,
        request=request,
        state=state,  # type: ignore[arg-type]
        created_at=created,
        confirmed_at=confirmed,
        finished_at=done,
        mode=mode,  # type: ignore[arg-type]
        caps=s.Caps(max_stories=stories, parallelism=min(stories, 4)),
        stories=[s.StoryState(story=s.Story(id=f"S{i}", title="t")) for i in range(stories)],
        totals=s.Totals(tokens=s.TokenUsage(input=900, cached_input=500, output=100)),
    )


def test_a_finished_run_becomes_its_figures() -> None:
    run = past_run(finished("r1", mode="parallel", stories=3))
    assert run == s.PastRun(
        run_id="r1",
        mode="parallel",
        status="delivered",
        stories=3,
        parallelism=3,
        tokens=s.TokenUsage(input=900, cached_input=500, output=100),
        wall_s=60.0,  # from the confirmation, not the submission: time in the picker is not work
        finished_at=190.0,
    )
    assert past_run(finished("r2", confirmed=None)).wall_s == 90.0  # type: ignore[union-attr]


def test_runs_without_stories_or_not_finished_are_not_kept() -> None:
    assert past_run(finished("r1", state="cancelled", stories=0)) is None
    assert past_run(finished("r1", state="running")) is None


def test_the_final_transition_is_seen_once() -> None:
    running, done = finished("r1", state="running"), finished("r1")
    assert became_final(running, done)
    assert not became_final(done, done)
    assert not became_final(None, running)


def test_a_run_is_added_once_and_each_mode_keeps_its_latest_runs() -> None:
    history = with_run(None, past_run(finished("r0")))  # type: ignore[arg-type]
    assert history is not None and [r.run_id for r in history.runs] == ["r0"]
    assert with_run(history, past_run(finished("r0"))) is None  # type: ignore[arg-type]
    for i in range(1, MAX_RUNS_PER_MODE + 5):
        history = with_run(history, past_run(finished(f"r{i}", done=200.0 + i)))  # type: ignore[arg-type]
        assert history is not None
    history = with_run(history, past_run(finished("p", mode="parallel", stories=2)))  # type: ignore[arg-type]
    assert history is not None
    focused = [r.run_id for r in history.runs if r.mode == "focused"]
    assert len(focused) == MAX_RUNS_PER_MODE and focused[-1] == f"r{MAX_RUNS_PER_MODE + 4}"
    assert "r0" not in focused
    assert [r.run_id for r in history.runs if r.mode == "parallel"] == ["p"]


async def _stored(bus: Bus) -> s.RepoHistory:
    entry = await bus.history.get(t.history_key(core.repo_key(REPO)))
    assert entry.value is not None
    return s.history_decoder.decode(entry.value)


@pytest.mark.nats
async def test_remembering_is_idempotent_and_safe_with_concurrent_writers(
    settings: Settings,
) -> None:
    bus = await Bus.open(settings, "history-test")
    try:
        assert await remember_run(bus.history, finished("first"))
        assert not await remember_run(bus.history, finished("first")), "the same run twice"
        records = [finished(f"r{i}", done=300.0 + i) for i in range(8)]
        added = await asyncio.gather(*(remember_run(bus.history, rec) for rec in records))
        assert all(added)
        stored = await _stored(bus)
        assert sorted(r.run_id for r in stored.runs) == sorted(
            ["first", *(f"r{i}" for i in range(8))]
        )
        assert not await remember_run(
            bus.history, finished("nothing-ran", state="cancelled", stories=0)
        )
    finally:
        await bus.close()
