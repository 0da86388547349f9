"""The intake's bus handler: ClassifyGoal in, IntakeDecided out."""

from __future__ import annotations

import logging

import msgspec
from nats.js.errors import KeyNotFoundError
from prometheus_client import Counter, Histogram

from baro_intake.api_host import with_api
from baro_intake.decide import Decided, decide
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import ACK, Bus, Delivery, Outcome
from baro_shared.metrics import FAST_SECONDS_BUCKETS
from baro_shared.service import CommandService, Service
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

decisions = Counter("baro_intake_decisions_total", "Intake decisions", ["mode", "source"])
confidence = Histogram(
    "baro_intake_confidence",
    "Confidence of intake decisions",
    ["source"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
latency = Histogram(
    "baro_intake_classification_seconds",
    "Time to classify one goal (an LLM question included)",
    ["source"],
    buckets=(*FAST_SECONDS_BUCKETS, 5, 10, 30, 60, 120, 300),
)
llm_calls = Counter(
    "baro_intake_llm_calls_total",
    "LLM intake questions by outcome (answered, failed, unavailable)",
    ["backend", "outcome"],
)
llm_tokens = Counter(
    "baro_intake_llm_tokens_total", "Tokens spent on LLM intake questions", ["backend", "kind"]
)


class Intake(CommandService):
    name = "intake"
    consumer = t.INTAKE_CONSUMER
    slots = 8

    async def handle(self, delivery: Delivery[s.Command]) -> Outcome:
        cmd = delivery.message
        if not isinstance(cmd, s.ClassifyGoal):
            return ACK
        decided = await decide(
            cmd.goal,
            self.settings,
            strategy=cmd.strategy,
            backend=cmd.backend,
            model=cmd.model,
            agent_script=cmd.agent_script,
            history=await self.past_runs(cmd.repo_key),
            limits=cmd.limits,
            ask_model=cmd.ask_model,
            questions=list(cmd.questions),
            answers=list(cmd.answers),
        )
        observe(decided)
        # the decision on the answered goal is a second, distinct event
        again = "" if cmd.round == 1 else f".{cmd.round}"
        await self.bus.publish(
            s.IntakeDecided(run_id=cmd.run_id, decision=decided.decision),
            f"{cmd.run_id}.intake{again}",
        )
        return ACK

    async def past_runs(self, repo_key: str | None) -> s.RepoHistory | None:
        """This repository's past runs; None when there are none or they cannot be read."""
        if not repo_key:
            return None
        try:
            entry = await self.bus.history.get(t.history_key(repo_key))
        except KeyNotFoundError:
            return None
        except Exception as exc:  # estimates are a nicety: never block a run on them
            log.warning("could not read past runs: %s", exc)
            return None
        if not entry.value:
            return None
        try:
            return s.history_decoder.decode(entry.value)
        except msgspec.DecodeError:
            log.warning("unreadable past-run history under %s", entry.key)
            return None


def observe(decided: Decided) -> None:
    decision = decided.decision
    decisions.labels(mode=decision.mode, source=decision.source).inc()
    confidence.labels(source=decision.source).observe(decision.confidence)
    latency.labels(source=decision.source).observe((decision.latency_ms or 0.0) / 1000)
    if decided.llm != "not_asked" and decided.backend:
        llm_calls.labels(backend=decided.backend, outcome=decided.llm).inc()
        tokens = decision.tokens
        for kind, value in (
            ("input", tokens.input),
            ("cached_input", tokens.cached_input),
            ("output", tokens.output),
        ):
            if value:
                llm_tokens.labels(backend=decided.backend, kind=kind).inc(value)


async def create(bus: Bus, settings: Settings) -> Service:
    # the HTTP API rides along when BARO_API_PORT is set (docs/api.md)
    return with_api(Intake(bus, settings), bus, settings)
