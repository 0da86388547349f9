"""One goal to one decision: the offline classifier, the LLM when wanted, the estimates.

Used by the intake's bus handler and by ``baro classify``. The only I/O is the model
questions (a subprocess through ``baro_shared.oneshot``); past runs are passed in.

A goal that would need a guess comes back with questions (``clarify``: templated offline;
the model's own when the run will ask them and may ask a model). Once they are answered
(round 2), the goal's envelope is made from the answers and the mode is decided again on
the clarified goal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from baro_intake.clarify import envelope_from_answers, questions_for
from baro_intake.classifier import classify
from baro_intake.conversation import ConversationProblem, Reply, build_prompt, read_reply
from baro_intake.estimates import estimates_for
from baro_intake.llm_intake import build_llm_prompt
from baro_intake.refine import llm_wanted, merge_answer, with_evidence
from baro_shared import oneshot
from baro_shared.backends import binary_for
from baro_shared.goals.envelope import work_goal
from baro_shared.schemas import (
    GivenAnswer,
    GoalEnvelope,
    IntakeDecision,
    IntakeStrategy,
    Limits,
    Question,
    RepoHistory,
    TokenUsage,
)
from baro_shared.settings import Settings

LlmOutcome = Literal["not_asked", "answered", "failed", "unavailable"]


@dataclass
class Decided:
    decision: IntakeDecision
    llm: LlmOutcome = "not_asked"
    backend: str | None = None


@dataclass
class _Asker:
    """Asks the run's backend one question; keeps what every question cost."""

    settings: Settings
    strategy: IntakeStrategy
    backend: str | None
    model: str | None
    agent_script: str | None
    limits: Limits | None
    tokens: TokenUsage = field(default_factory=TokenUsage)

    @property
    def name(self) -> str:
        return self.backend or self.settings.backend

    def can_ask(self) -> bool:
        return self.strategy != "offline" and binary_for(self.name, self.settings) is not None

    async def ask(self, prompt: str, purpose: str, timeout: float) -> oneshot.OneShotResult:
        answer = await oneshot.ask(
            self.name,
            prompt,
            self.settings,
            purpose=purpose,
            model=self.model,
            timeout=timeout,
            agent_script=self.agent_script,
            limits=self.limits,
        )
        self.tokens = self.tokens + answer.usage
        return answer

    async def converse(self, prompt: str) -> tuple[Reply | None, str | None]:
        """The conversation question: its reply, or why there is none."""
        answer = await self.ask(prompt, "conversation", self.settings.intake_llm_timeout_s)
        if not answer.ok:
            return None, answer.error or "the question failed"
        try:
            return read_reply(answer.text), None
        except ConversationProblem as problem:
            return None, f"unusable answer: {problem}"


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
    ask_model: bool = False,
    questions: list[Question] | None = None,
    answers: list[GivenAnswer] | None = None,
) -> Decided:
    started = time.perf_counter()
    asker = _Asker(settings, strategy, backend, model, agent_script, limits)
    notes: list[str] = []
    envelope: GoalEnvelope | None = None
    asked: list[Question] = []
    source: Literal["offline", "llm"] | None = None
    tool_answer: str | None = None
    if questions:  # round 2: the answers are in
        envelope = await _envelope(goal, questions, answers or [], asker, notes)
    else:
        asked = questions_for(goal)
        source = "offline" if asked else None
        if asked and ask_model and asker.can_ask():
            reply, failure = await asker.converse(build_prompt(goal, asked[0].why))
            if reply is None:
                notes.append(f"conversation question failed ({failure}); offline questions kept")
            elif reply.kind == "clarify":
                asked, source = reply.questions, "llm"
            elif reply.kind == "ready":
                asked, source, envelope = [], None, reply.envelope
            else:
                asked, source, tool_answer = [], None, reply.answer
    result = await _classify(
        work_goal(goal, envelope), settings, asker, strategy, model, agent_script, limits
    )
    decision = result.decision
    for note in notes:
        decision = with_evidence(decision, note)
    decision.questions = asked
    decision.question_source = source
    decision.envelope = envelope
    decision.tool_answer = tool_answer
    decision.round = 2 if questions else 1
    decision.tokens = decision.tokens + asker.tokens
    decision.estimates = estimates_for(history, decision)
    decision.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    result.decision = decision
    return result


async def _envelope(
    goal: str,
    questions: list[Question],
    answers: list[GivenAnswer],
    asker: _Asker,
    notes: list[str],
) -> GoalEnvelope:
    """The clarified goal: the model's ``ready`` when it may be asked, else offline."""
    offline = envelope_from_answers(goal, questions, answers, classify(goal).interpretation)
    if not asker.can_ask():
        return offline
    reply, failure = await asker.converse(build_prompt(goal, "", questions, answers))
    if reply is not None and reply.kind == "ready" and reply.envelope is not None:
        return reply.envelope
    why = failure or f"it answered {reply.kind if reply else 'nothing'} instead of ready"
    notes.append(f"conversation question failed ({why}); envelope made from the answers")
    return offline


async def _classify(
    goal: str,
    settings: Settings,
    asker: _Asker,
    strategy: IntakeStrategy,
    model: str | None,
    agent_script: str | None,
    limits: Limits | None,
) -> Decided:
    offline = classify(goal)
    result = Decided(offline)
    why = llm_wanted(strategy, offline, settings.intake_llm_threshold)
    if why is not None:
        name = asker.name
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
    return result
