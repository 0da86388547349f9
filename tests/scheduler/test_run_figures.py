"""The run's figures on the real stack: summed agent time is what the attempts' agent
processes took, speedup is that over the wall-clock, and the summary, the record and the
API agree — for a sequential, a parallel and a retried run (docs/architecture.md, "What a
run took and cost")."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_intake import api_views
from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.conftest import make_repo
from tests.e2e.conftest import replay, request_for, run_to_end
from tests.scheduler.conftest import rendezvous, story

FILES = {"README.md": "# figures\n"}
NAP = 0.4  # each agent sleeps this long: agent time is at least that per attempt


def rule(sid: str, *steps: dict[str, object], attempts: list[int] | None = None) -> dict:
    found: dict[str, object] = {"match": {"id": sid}, "steps": list(steps)}
    if attempts is not None:
        found["attempts"] = attempts
    return found


def work(sid: str, cost: float) -> list[dict[str, object]]:
    return [
        {"sleep": NAP},
        {"write": f"{sid.lower()}.txt", "content": f"from {sid}\n"},
        {"usage": {"input": 100, "output": 10, "cost_usd": cost}},
    ]


async def figures_agree(bus: Bus, run_id: str, report: object) -> list[s.StoryFinished]:
    """Every view shows the same figures, and they obey their definitions."""
    events = await replay(bus, run_id)
    attempts = [ev for ev in events if isinstance(ev, s.StoryFinished)]
    (finished,) = [ev for ev in events if isinstance(ev, s.RunFinished)]
    totals = finished.totals
    assert totals.agent_s == pytest.approx(sum(a.agent_seconds for a in attempts), abs=0.002)
    assert totals.speedup == round(totals.agent_s / totals.wall_s, 3)
    assert all(a.agent_seconds >= NAP for a in attempts), "agent time is the process's lifetime"
    cost = sum(a.tokens.cost_usd or 0 for a in attempts)
    assert totals.tokens.cost_usd == pytest.approx(cost, abs=1e-9)

    got = await bus.get_record(run_id)
    assert got is not None
    assert got[0].totals == totals
    view = api_views.totals_out(got[0])
    assert (view.wall_s, view.agent_s, view.speedup) == (
        totals.wall_s,
        totals.agent_s,
        totals.speedup,
    )
    assert view.tokens.cost_usd == totals.tokens.cost_usd
    assert (report.wall_s, report.agent_s, report.speedup) == (  # type: ignore[attr-defined]
        totals.wall_s,
        totals.agent_s,
        totals.speedup,
    )
    assert report.cost_usd == totals.tokens.cost_usd  # type: ignore[attr-defined]
    return attempts


async def test_a_sequential_run(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    plan = [story("A", "Write a.txt", ["a.txt"]), story("B", "Write b.txt", ["b.txt"], ["A"])]
    script = {"stories": [rule("A", *work("A", 0.125)), rule("B", *work("B", 0.25))]}
    request = request_for(
        repo, "write a.txt then b.txt", script, mode_request="sequential", plan=plan
    )
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason
    attempts = await figures_agree(bus, request.run_id, report)
    assert len(attempts) == 2
    assert report.cost_usd == 0.375
    # one agent at a time, and the wall-clock holds intake, planning and delivery too
    assert report.speedup is not None and report.speedup < 1


async def test_a_parallel_run(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    room = tmp_path / "room"
    plan = [story(sid, f"Write {sid.lower()}.txt", [f"{sid.lower()}.txt"]) for sid in "ABC"]
    script = {"stories": [rule(sid, rendezvous(room, sid, 3), *work(sid, 0.5)) for sid in "ABC"]}
    request = request_for(
        repo,
        "write a.txt, b.txt and c.txt",
        script,
        mode_request="parallel",
        plan=plan,
        limits=s.Limits(parallelism=3, story_timeout_s=120, stall_timeout_s=90),
    )
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason
    attempts = await figures_agree(bus, request.run_id, report)
    assert len(attempts) == 3
    assert report.cost_usd == 1.5


async def test_a_retried_run_counts_every_attempt(bus: Bus, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    script = {
        "stories": [
            rule(
                "S1",
                {"sleep": NAP},
                {"usage": {"input": 50, "output": 5, "cost_usd": 0.0625}},
                {"fail": "not this time"},
                attempts=[1],
            ),
            rule("S1", *work("S1", 0.125)),
        ]
    }
    request = request_for(repo, "write s1.txt", script, mode_request="focused")
    report = await run_to_end(bus, request, timeout=180)
    assert report.status == "delivered", report.reason
    attempts = await figures_agree(bus, request.run_id, report)
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "success")]
    assert report.cost_usd == 0.1875  # the failed attempt's price counts too
    got = await bus.get_record(request.run_id)
    assert got is not None
    (only,) = got[0].stories
    assert only.agent_seconds == pytest.approx(sum(a.agent_seconds for a in attempts), abs=0.002)
