"""The critic's question and how its answer is read: strictly, one repair, else abstain."""

from __future__ import annotations

import json

import pytest

from baro_planner import critic
from baro_planner.asking import Ask
from baro_shared.oneshot import OneShotResult
from baro_shared.schemas import CheckResult, Story, TokenUsage

STORY = Story(id="S1", title="Set VALUE", acceptance=["app.VALUE is 2"], write_surface=["app.py"])
CHECKS = [CheckResult(command="pytest -q", result="failed", exit_code=1)]


def answered(*texts: str, ok: bool = True) -> Ask:
    """An ask that gives these answers in turn, and records the purposes asked."""
    queue = list(texts)

    async def ask(prompt: str, purpose: str) -> OneShotResult:
        asked.append((purpose, prompt))
        text = queue.pop(0)
        return OneShotResult(
            ok=ok, text=text, texts=[text], usage=TokenUsage(input=10, output=5),
            error=None if ok else "exit 1",
        )  # fmt: skip

    asked: list[tuple[str, str]] = []
    ask.asked = asked  # type: ignore[attr-defined]
    return ask


def test_the_question_holds_the_story_its_checks_and_a_bounded_diff() -> None:
    diff = "+VALUE = 2\n" * 5000
    prompt = critic.critic_prompt("set VALUE to 2", STORY, diff, CHECKS)
    assert "Story S1: Set VALUE" in prompt and "- app.VALUE is 2" in prompt
    assert "- pytest -q: failed (exit code 1)" in prompt
    assert f"(the first {critic.DIFF_CHARS} of {len(diff)} characters)" in prompt
    assert len(prompt) < critic.DIFF_CHARS + 3000


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("looks good to me", "no JSON object"),
        ('{"verdict": "approved", "reasons": []}', "verdict must be"),
        ('{"verdict": "revise", "reasons": []}', "needs at least one reason"),
        ('{"verdict": "approve", "reasons": "fine"}', "list of strings"),
        ('{"verdict": "approve", "reasons": [], "score": 9}', "unknown key 'score'"),
        ("[1, 2, 3]", "no JSON object"),
    ],
)
def test_an_unusable_answer_says_what_is_wrong(answer: str, problem: str) -> None:
    with pytest.raises(critic.ReviewError, match=problem):
        critic.read_review(answer)


def test_prose_around_the_answer_is_tolerated_and_reasons_are_bounded() -> None:
    reasons = ["x" * 1000] + [f"r{i}" for i in range(20)]
    text = "Here is my review:\n```json\n" + json.dumps({"verdict": "revise", "reasons": reasons})
    verdict, kept = critic.read_review(text + "\n```")
    assert verdict == "revise" and len(kept) == critic.MAX_REASONS
    assert len(kept[0]) == critic.REASON_CHARS


async def test_garbage_twice_makes_the_critic_abstain_with_why() -> None:
    ask = answered("LGTM!", "{ still not it")
    review = await critic.review_story("goal", STORY, "diff", CHECKS, ask, "claude")
    assert review.verdict == "abstain" and review.reasons == []
    assert review.note is not None and "even after one repair" in review.note
    assert review.tokens == TokenUsage(input=20, output=10)
    assert [p for p, _ in ask.asked] == ["critic-S1", "critic-S1-repair"]  # type: ignore[attr-defined]


async def test_one_repair_question_can_save_the_answer() -> None:
    ask = answered("LGTM!", '{"verdict": "approve", "reasons": []}')
    review = await critic.review_story("goal", STORY, "diff", CHECKS, ask, "claude")
    assert review.verdict == "approve"
    assert review.note == "its first answer was unusable (the answer contains no JSON object)"


async def test_a_failing_cli_makes_the_critic_abstain() -> None:
    ask = answered("", ok=False)
    review = await critic.review_story("goal", STORY, "diff", CHECKS, ask, "codex")
    assert review.verdict == "abstain" and review.note == "the codex CLI failed: exit 1"
