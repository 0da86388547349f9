"""When to ask an LLM about a goal, and how its answer is merged with the offline decision.

Pure: the caller runs the question (``baro_shared.oneshot``) and hands the answer here.
Whatever happens, the result is a usable decision: an answer that cannot be read, a CLI
that is missing, fails or times out, all fall back to the offline decision, with the
reason written into its evidence and the tokens the attempt cost kept on it.
"""

from __future__ import annotations

import msgspec

from baro_intake.llm_intake import parse_llm_decision
from baro_shared.oneshot import OneShotResult
from baro_shared.schemas import IntakeDecision, IntakeStrategy, TokenUsage

FALLBACK_NOTE = "LLM intake failed; offline answer kept"


def llm_wanted(strategy: IntakeStrategy, offline: IntakeDecision, threshold: float) -> str | None:
    """Why the LLM should be asked about this goal, or None when the offline answer stands."""
    if strategy == "llm":
        return "LLM intake requested"
    if strategy == "auto" and offline.confidence < threshold:
        return f"offline confidence {offline.confidence:.0%} is below {threshold:.0%}"
    return None


def with_evidence(decision: IntakeDecision, note: str) -> IntakeDecision:
    return msgspec.structs.replace(decision, evidence=[*decision.evidence, note])


def fall_back(offline: IntakeDecision, why: str, tokens: TokenUsage) -> IntakeDecision:
    """The offline decision, saying why the LLM's answer is not used, with its cost."""
    decision = with_evidence(offline, f"LLM intake failed ({why}); kept the offline decision")
    decision.reason = f"{offline.reason} ({FALLBACK_NOTE})"
    decision.tokens = tokens
    decision.source = "offline"
    return decision


def merge_answer(offline: IntakeDecision, answer: OneShotResult, backend: str) -> IntakeDecision:
    """The LLM's decision when its answer is usable; the offline one (with why) otherwise."""
    if not answer.ok:
        return fall_back(offline, f"{backend}: {answer.error or 'no answer'}", answer.usage)
    decision = _parse(answer, offline)
    if decision is None:
        return fall_back(offline, f"{backend} answered without a JSON object", answer.usage)
    if offline.vague and not decision.vague:
        # A goal the offline reading found vague keeps its smallest safe reading: a model
        # that reads more into it would widen the work beyond what was asked.
        note = f"the LLM read the vague goal as {decision.mode}; kept the smallest safe reading"
        kept = with_evidence(offline, note)
        kept.tokens = answer.usage
        return kept
    decision.tokens = answer.usage
    return decision


def _parse(answer: OneShotResult, offline: IntakeDecision) -> IntakeDecision | None:
    """Read the final text; failing that, the whole transcript (an answer followed by a
    closing remark is still an answer)."""
    transcript = "\n".join(answer.texts)
    candidates = [answer.text] if transcript in ("", answer.text) else [answer.text, transcript]
    for text in candidates:
        try:
            return parse_llm_decision(text, offline)
        except ValueError:
            continue
    return None
