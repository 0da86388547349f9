"""One goal to one decision: the offline classifier, the LLM when wanted, the estimates.

Used by the intake's bus handler and by ``baro classify``. The only I/O is the LLM
question (a subprocess through ``baro_shared.oneshot``); past runs are passed in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from baro_intake.classifier import classify
from baro_intake.estimates import estimates_for
from baro_intake.llm_intake import build_llm_prompt
from baro_intake.refine import llm_wanted, merge_answer, with_evidence
from baro_shared import oneshot
from baro_shared.backends import binary_for
from baro_shared.schemas import IntakeDecision, IntakeStrategy, Limits, RepoHistory
from baro_shared.settings import Settings

LlmOutcome = Literal["not_asked", "answered", "failed", "unavailable"]


@dataclass
class Decided:
    decision: IntakeDecision
    llm: LlmOutcome = "not_asked"
    backend: str | None = None


async def decide(
    goal: str,
    settings: Settings,
    *,
    strategy: IntakeStrategy = "offline",
    backend: str | None = None,
    model: str | None = None,
    agent_script: str | None = None,
    history: RepoHistory | None = None,
    limits: Limits | None = None,
) -> Decided:
    started = time.perf_counter()
    offline = classify(goal)
    result = Decided(offline)
    why = llm_wanted(strategy, offline, settings.intake_llm_threshold)
    if why is not None:
        name = backend or settings.backend
        result.backend = name
        if strategy == "auto" and binary_for(name, settings) is None:
            note = f"{why}, but the {name} CLI is not installed: offline answer kept"
            result.decision, result.llm = with_evidence(offline, note), "unavailable"
        else:
            answer = await oneshot.ask(
                name,
                build_llm_prompt(goal, offline),
                settings,
                purpose="intake",
                model=model,
                timeout=settings.intake_llm_timeout_s,
                agent_script=agent_script,
                limits=limits,
            )
            result.decision = merge_answer(offline, answer, name)
            result.llm = "answered" if result.decision.source == "llm" else "failed"
    result.decision.estimates = estimates_for(history, result.decision)
    result.decision.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return result
