"""When the LLM is asked, and how its answer (or its failure) becomes the decision."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from baro_intake.classifier import classify
from baro_intake.refine import FALLBACK_NOTE, llm_wanted, merge_answer
from baro_shared.oneshot import OneShotResult
from baro_shared.schemas import Caps, IntakeDecision, TokenUsage

OFFLINE = IntakeDecision(
    mode="focused",
    confidence=0.55,
    reason="two named files, but nothing shows they are independent",
    evidence=["src/a.py", "src/b.py"],
)
REPLY = {"mode": "parallel", "confidence": 0.8, "reason": "two independent modules"}
USAGE = TokenUsage(input=1200, cached_input=800, output=40)


def answer(text: str, *, ok: bool = True, texts: list[str] | None = None) -> OneShotResult:
    return OneShotResult(
        ok=ok,
        text=text,
        usage=USAGE,
        error=None if ok else "exit code 1",
        texts=[text] if texts is None else texts,
    )


def test_llm_is_asked_when_requested_or_when_auto_is_unsure() -> None:
    assert llm_wanted("offline", OFFLINE, 0.6) is None
    assert llm_wanted("llm", OFFLINE, 0.6) is not None
    assert llm_wanted("auto", OFFLINE, 0.6) == "offline confidence 55% is below 60%"
    sure = IntakeDecision(mode="focused", confidence=0.85, reason="a typo")
    assert llm_wanted("auto", sure, 0.6) is None
    assert llm_wanted("llm", sure, 0.6) is not None
    assert llm_wanted("auto", OFFLINE, 0.55) is None, "the threshold itself is confident enough"


def test_a_readable_answer_is_the_decision_with_its_cost() -> None:
    decision = merge_answer(OFFLINE, answer(json.dumps(REPLY)), "claude")
    assert (decision.mode, decision.confidence, decision.source) == ("parallel", 0.8, "llm")
    assert decision.reason == "two independent modules"
    assert decision.tokens == USAGE
    assert decision.evidence == OFFLINE.evidence


def test_an_answer_followed_by_a_closing_remark_is_read_from_the_transcript() -> None:
    texts = [json.dumps(REPLY), "Finished 1 step."]
    decision = merge_answer(OFFLINE, answer("Finished 1 step.", texts=texts), "scripted")
    assert decision.source == "llm" and decision.mode == "parallel"


def test_an_answer_without_json_falls_back_and_says_why() -> None:
    decision = merge_answer(OFFLINE, answer("I think it is parallel."), "codex")
    assert (decision.mode, decision.confidence, decision.source) == ("focused", 0.55, "offline")
    assert decision.reason == f"{OFFLINE.reason} ({FALLBACK_NOTE})"
    assert decision.evidence[:-1] == OFFLINE.evidence
    assert "codex answered without a JSON object" in decision.evidence[-1]
    assert decision.tokens == USAGE, "a failed question still cost tokens"


def test_a_failed_cli_falls_back_even_when_it_printed_json() -> None:
    decision = merge_answer(OFFLINE, answer(json.dumps(REPLY), ok=False), "pi")
    assert decision.source == "offline" and decision.mode == "focused"
    assert "pi: exit code 1" in decision.evidence[-1]
    assert decision.tokens == USAGE


def test_a_missing_cli_falls_back_with_unknown_tokens() -> None:
    missing = OneShotResult(ok=False, error="the claude CLI is not installed")
    decision = merge_answer(OFFLINE, missing, "claude")
    assert decision.source == "offline"
    assert "the claude CLI is not installed" in decision.evidence[-1]
    assert not decision.tokens.is_known()


def test_the_offline_decision_is_not_changed_by_a_fallback() -> None:
    offline = classify("update src/a.py and src/b.py")
    kept = (offline.reason, list(offline.evidence))
    merge_answer(offline, answer("no json"), "claude")
    assert (offline.reason, offline.evidence) == kept


def test_a_vague_goal_keeps_its_smallest_reading_whatever_the_llm_says() -> None:
    offline = classify("make it better")
    assert offline.vague
    reply = {"mode": "parallel", "confidence": 0.9, "reason": "many things", "vague": False}
    decision = merge_answer(offline, answer(json.dumps(reply)), "claude")
    assert (decision.mode, decision.vague, decision.source) == ("focused", True, "offline")
    assert (decision.confidence, decision.reason) == (offline.confidence, offline.reason)
    assert decision.caps == Caps(max_stories=1, parallelism=1)
    assert decision.interpretation == offline.interpretation
    assert "the LLM read the vague goal as parallel" in decision.evidence[-1]
    assert decision.tokens == USAGE


def test_a_vague_goal_the_llm_also_finds_vague_is_its_decision() -> None:
    offline = classify("make it better")
    reply = {
        "mode": "focused",
        "confidence": 0.7,
        "reason": "no target",
        "vague": True,
        "interpretation": "tidy the README wording only",
    }
    decision = merge_answer(offline, answer(json.dumps(reply)), "claude")
    assert (decision.mode, decision.vague, decision.source) == ("focused", True, "llm")
    assert decision.interpretation == "tidy the README wording only"


@given(
    reply=st.one_of(
        st.text(max_size=300),
        st.dictionaries(
            st.sampled_from(["mode", "confidence", "reason", "vague", "max_stories", "x"]),
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
        ).map(json.dumps),
    ),
    ok=st.booleans(),
    vague_goal=st.booleans(),
)
@hyp_settings(max_examples=300, deadline=None)
def test_any_answer_gives_a_sound_decision(reply: str, ok: bool, vague_goal: bool) -> None:
    offline = classify("make it better" if vague_goal else "update src/a.py and src/b.py")
    decision = merge_answer(offline, answer(reply, ok=ok), "claude")
    assert decision.mode in ("focused", "sequential", "parallel")
    assert 0.0 <= decision.confidence <= 1.0
    assert decision.source in ("offline", "llm")
    assert decision.tokens == USAGE
    if decision.vague or vague_goal:
        assert decision.mode == "focused" and decision.vague
        assert decision.caps == Caps(max_stories=1, parallelism=1)
    if decision.source == "offline":
        assert decision.mode == offline.mode and decision.confidence == offline.confidence
