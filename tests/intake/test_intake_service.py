"""The intake's bus handler on a real nats-server, asking the scripted agent as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from baro_intake.service import create
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.service import Host
from baro_shared.settings import Settings

UNSURE_GOAL = "update src/a.py and src/b.py"  # offline: focused at 55%
SURE_GOAL = "fix the typo in the README title"  # offline: focused, well above the threshold
REPLY = {"mode": "parallel", "confidence": 0.81, "reason": "two independent modules"}


def intake_script(*steps: dict[str, Any]) -> str:
    return json.dumps({"stories": [{"match": {"id": "baro-intake"}, "steps": list(steps)}]})


ANSWERING = intake_script({"text": json.dumps(REPLY)}, {"usage": {"input": 300, "output": 20}})


@pytest.fixture
async def intake_bus(settings: Settings) -> AsyncIterator[Bus]:
    host = Host({"intake": create}, settings, serve_http=False, handle_signals=False)
    task = asyncio.create_task(host.run())
    await asyncio.wait_for(host.started.wait(), 30)
    bus = await Bus.open(settings, "intake-test", ensure=False)
    try:
        yield bus
    finally:
        await bus.close()
        host.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


_runs = iter(range(1_000_000))


async def decide_on_bus(
    bus: Bus, goal: str, backend: str = "scripted", **fields: Any
) -> s.IntakeDecision:
    run_id = f"intake-test-{next(_runs)}"
    cmd = s.ClassifyGoal(run_id=run_id, goal=goal, backend=backend, **fields)
    await bus.publish(cmd, f"{run_id}.classify")
    async for event in bus.run_events(run_id, idle_timeout=90):
        if isinstance(event, s.IntakeDecided):
            return event.decision
    raise AssertionError(f"no decision for {run_id}")


def llm_calls(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "baro_intake_llm_calls_total", {"backend": "scripted", "outcome": outcome}
    )
    return value or 0.0


async def test_offline_decides_alone_and_marks_the_estimates_unknown(intake_bus: Bus) -> None:
    decision = await decide_on_bus(intake_bus, UNSURE_GOAL, strategy="offline")
    assert (decision.mode, decision.source) == ("focused", "offline")
    assert not decision.tokens.is_known()
    assert decision.latency_ms is not None and decision.latency_ms >= 0
    assert [(e.mode, e.samples, e.tokens, e.wall_s) for e in decision.estimates] == [
        ("focused", 0, None, None),
        ("sequential", 0, None, None),
        ("parallel", 0, None, None),
    ]


async def test_llm_intake_answers_with_its_cost(intake_bus: Bus) -> None:
    before = llm_calls("answered")
    decision = await decide_on_bus(intake_bus, UNSURE_GOAL, strategy="llm", agent_script=ANSWERING)
    assert (decision.mode, decision.confidence, decision.source) == ("parallel", 0.81, "llm")
    assert decision.reason == "two independent modules"
    assert decision.tokens == s.TokenUsage(input=300, cached_input=0, output=20, cost_usd=0.0)
    assert llm_calls("answered") == before + 1


async def test_auto_asks_only_when_the_classifier_is_unsure(intake_bus: Bus) -> None:
    unsure = await decide_on_bus(intake_bus, UNSURE_GOAL, strategy="auto", agent_script=ANSWERING)
    assert unsure.source == "llm" and unsure.tokens.is_known()
    sure = await decide_on_bus(intake_bus, SURE_GOAL, strategy="auto", agent_script=ANSWERING)
    assert sure.source == "offline" and not sure.tokens.is_known()
    assert not any("LLM" in note for note in sure.evidence)


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ([{"text": "It looks parallel to me."}], "scripted answered without a JSON object"),
        ([{"crash": 3}], "scripted: "),
        ([{"fail": "model unavailable"}], "model unavailable"),
    ],
    ids=["prose", "crash", "error"],
)
async def test_a_failed_question_falls_back_to_offline_and_says_why(
    intake_bus: Bus, steps: list[dict[str, Any]], why: str
) -> None:
    before = llm_calls("failed")
    decision = await decide_on_bus(
        intake_bus, UNSURE_GOAL, strategy="llm", agent_script=intake_script(*steps)
    )
    assert (decision.mode, decision.confidence, decision.source) == ("focused", 0.55, "offline")
    assert decision.reason.endswith("(LLM intake failed; offline answer kept)")
    assert why in decision.evidence[-1]
    assert llm_calls("failed") == before + 1


async def test_a_missing_cli_in_auto_keeps_the_offline_answer(settings: Settings) -> None:
    missing = settings.model_copy(update={"pi_bin": "/nonexistent/pi"})
    host = Host({"intake": create}, missing, serve_http=False, handle_signals=False)
    task = asyncio.create_task(host.run())
    await asyncio.wait_for(host.started.wait(), 30)
    bus = await Bus.open(missing, "intake-test", ensure=False)
    try:
        auto = await decide_on_bus(bus, UNSURE_GOAL, backend="pi", strategy="auto")
        assert auto.source == "offline" and "the pi CLI is not installed" in auto.evidence[-1]
        assert (
            auto.reason
            == "two named files, but nothing shows they are independent: focused to be safe"
        )
        asked = await decide_on_bus(bus, UNSURE_GOAL, backend="pi", strategy="llm")
        assert asked.source == "offline" and "the pi CLI is not installed" in asked.evidence[-1]
        assert asked.reason.endswith("(LLM intake failed; offline answer kept)")
    finally:
        await bus.close()
        host.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


async def test_estimates_come_from_this_repositorys_past_runs(intake_bus: Bus) -> None:
    repo_key = "path:/src/app"
    history = s.RepoHistory(
        runs=[
            s.PastRun(
                run_id=f"old-{i}",
                mode="focused",
                status="delivered",
                stories=1,
                tokens=s.TokenUsage(input=1000 * i, output=100),
                wall_s=20.0 * i,
                finished_at=float(i),
            )
            for i in (1, 2, 3)
        ]
    )
    await intake_bus.history.put(t.history_key(repo_key), s.encode(history))
    here = await decide_on_bus(intake_bus, SURE_GOAL, repo_key=repo_key)
    assert here.estimates[0] == s.Estimate(mode="focused", samples=3, tokens=2100, wall_s=40.0)
    assert [e.samples for e in here.estimates[1:]] == [0, 0]
    elsewhere = await decide_on_bus(intake_bus, SURE_GOAL, repo_key="path:/src/other")
    assert [e.samples for e in elsewhere.estimates] == [0, 0, 0]
