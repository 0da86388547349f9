"""The planner service on a real nats-server: PlanGoal in, PlanProposed or PlanFailed out,
with the repository's file list read from the object store and the scripted agent as the
backend CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from baro_cli import runflow
from baro_planner.service import create as create_planner
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.service import Host
from baro_shared.settings import Settings

PLAN = {
    "stories": [
        {"id": "S1", "title": "Parse the flag", "write_surface": ["src/cli.py"]},
        {"id": "S2", "title": "Document the flag", "write_surface": ["docs/cli.md"]},
    ]
}
FILES = ["src/cli.py", "src/pkg/a.py", "src/pkg/b.py", "docs/cli.md", "tests/test_cli.py"]


@pytest.fixture
async def planner_bus(settings: Settings) -> AsyncIterator[Bus]:
    host = Host({"planner": create_planner}, settings, serve_http=False, handle_signals=False)
    task = asyncio.create_task(host.run())
    await asyncio.wait_for(host.started.wait(), 20)
    bus = await Bus.open(settings, "planner-test", ensure=False)
    try:
        yield bus
    finally:
        await bus.close()
        host.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


async def file_list(bus: Bus, run_id: str, tmp_path: Path) -> str:
    name = f"runs/{run_id}/files.txt"
    listing = tmp_path / f"{run_id}-files.txt"
    listing.write_text("\n".join(FILES))
    await bus.put_file(name, listing)
    return name


async def outcome(bus: Bus, run_id: str) -> s.PlanProposed | s.PlanFailed:
    async def first() -> s.PlanProposed | s.PlanFailed:
        async for ev in bus.run_events(run_id):
            if isinstance(ev, s.PlanProposed | s.PlanFailed):
                return ev
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(first(), 60)


def plan_goal(run_id: str, goal: str, **kw: object) -> s.PlanGoal:
    fields: dict[str, object] = dict(
        run_id=run_id, goal=goal, mode="parallel", caps=s.Caps(max_stories=4, parallelism=2)
    )
    fields.update(kw)
    return s.PlanGoal(**fields)  # type: ignore[arg-type]


async def test_deterministic_plans_resolve_names_against_the_file_list(
    planner_bus: Bus, tmp_path: Path
) -> None:
    run_id = runflow.new_run_id()
    listing = await file_list(planner_bus, run_id, tmp_path)
    cmd = plan_goal(
        run_id, "add type hints to a.py and b.py", file_list=listing, backend="scripted"
    )
    await planner_bus.publish(cmd, f"{run_id}.plan")
    ev = await outcome(planner_bus, run_id)
    assert isinstance(ev, s.PlanProposed) and ev.planner == "deterministic"
    assert [st.write_surface for st in ev.stories] == [["src/pkg/a.py"], ["src/pkg/b.py"]]


async def test_the_model_sees_goal_contract_and_files_and_its_tokens_are_reported(
    planner_bus: Bus, tmp_path: Path
) -> None:
    run_id = runflow.new_run_id()
    listing = await file_list(planner_bus, run_id, tmp_path)
    # the prompt as the agent received it (on stdin) must hold each of these; a question
    # saves no file (no tools), so the rule answers only a prompt that holds them all
    wanted = [
        "Execution mode (already decided; do not reconsider it): parallel",
        f"Repository files ({len(FILES)} of {len(FILES)}):",
        *FILES,
        "Goal:\n<<<\nmake the command line friendlier\n>>>",
    ]
    every = "(?s)" + "".join(f"(?=.*{re.escape(part)})" for part in wanted)
    script = {
        "stories": [
            {
                "match": {"id": "baro-planner", "prompt": every},
                "steps": [{"text": json.dumps(PLAN)}, {"usage": {"input": 500, "output": 60}}],
            },
            {"match": {"id": "baro-planner"}, "steps": [{"text": "the prompt lacks a part"}]},
        ]
    }
    cmd = plan_goal(
        run_id,
        "make the command line friendlier",
        file_list=listing,
        backend="scripted",
        strategy="llm",
        agent_script=json.dumps(script),
    )
    await planner_bus.publish(cmd, f"{run_id}.plan")
    ev = await outcome(planner_bus, run_id)
    assert isinstance(ev, s.PlanProposed), ev
    assert ev.planner == "llm" and [st.id for st in ev.stories] == ["S1", "S2"]
    assert ev.tokens == s.TokenUsage(input=500, cached_input=0, output=60, cost_usd=0.0)
    assert ev.notes == ["planned by scripted (2 stories)"]


async def test_a_plan_that_cannot_be_repaired_is_a_plan_failure_with_its_tokens(
    planner_bus: Bus,
) -> None:
    run_id = runflow.new_run_id()
    script = {"default": {"steps": [{"text": "no idea"}, {"usage": {"input": 70, "output": 7}}]}}
    cmd = plan_goal(
        run_id,
        "make it better",
        backend="scripted",
        strategy="llm",
        agent_script=json.dumps(script),
    )
    await planner_bus.publish(cmd, f"{run_id}.plan")
    ev = await outcome(planner_bus, run_id)
    assert isinstance(ev, s.PlanFailed)
    assert ev.error.startswith("scripted did not return a usable plan, even after one repair")
    assert ev.tokens == s.TokenUsage(input=140, cached_input=0, output=14, cost_usd=0.0)


async def test_a_run_no_longer_planning_costs_no_model_call(
    planner_bus: Bus, tmp_path: Path
) -> None:
    cancelled = runflow.new_run_id()
    request = s.RunSubmitted(
        run_id=cancelled, goal="g", repo=s.RepoSource(kind="path", location=str(tmp_path))
    )
    await planner_bus.create_record(
        s.RunRecord(run_id=cancelled, request=request, state="cancelled")
    )
    marker = tmp_path / "asked"
    script = {"default": {"steps": [{"run": f"touch {marker}"}, {"text": json.dumps(PLAN)}]}}
    await planner_bus.publish(
        plan_goal(
            cancelled, "g", backend="scripted", strategy="llm", agent_script=json.dumps(script)
        ),
        f"{cancelled}.plan",
    )
    other = runflow.new_run_id()
    await planner_bus.publish(plan_goal(other, "a.py and b.py"), f"{other}.plan")
    await outcome(planner_bus, other)

    async def drained() -> None:
        while True:
            info = await planner_bus.js.consumer_info(t.CMD_STREAM, t.PLANNER_CONSUMER)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(drained(), 60)
    events = [ev async for ev in planner_bus.run_events(cancelled, follow=False, idle_timeout=1)]
    assert events == []
    assert not marker.exists(), "the backend was asked for a run that was not planning"
