"""Properties of the offline classifier that hold for any goal, not only labelled ones."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baro_intake.classifier import classify

FALLBACK_REASON = "could not be read"

_token_chars = st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs"))
_tokens = st.text(_token_chars, min_size=1, max_size=20).filter(lambda t: len(t.split()) == 1)
_vocabulary = st.sampled_from(
    [
        "fix",
        "add",
        "tests",
        "the",
        "bug",
        "a.py",
        "src/b.py",
        "each",
        "then",
        "refactor",
        "`cmd`",
        "1.",
        "-",
        "https://github.com/o/r/pull/1",
        "parallel",
        "services",
    ]
)
_separators = st.sampled_from([" ", "  ", "\n", "\t", " \n "])


@st.composite
def short_goals(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.one_of(_tokens, _vocabulary), min_size=0, max_size=3))
    goal = ""
    for word in words:
        goal += draw(_separators) + word
    return goal + draw(st.sampled_from(["", " ", "\n"]))


_hosts = st.sampled_from(["github.com", "gitlab.com", "bitbucket.org", "example.com"])
_path_parts = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)


@st.composite
def bare_urls(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_path_parts, min_size=0, max_size=5))
    tail = draw(
        st.sampled_from(["", "/pull/12", "/issues/7", "/actions/runs/99", "/-/merge_requests/3"])
    )
    url = f"{draw(st.sampled_from(['https', 'http']))}://{draw(_hosts)}/" + "/".join(parts) + tail
    return draw(st.sampled_from(["", " ", "\n"])) + url + draw(st.sampled_from(["", " ", "\n"]))


_unit_names = st.sampled_from(
    [
        "src/a.py",
        "src/b.py",
        "lib/c.ts",
        "docs/d.md",
        "packages/e",
        "services/f",
        "`status`",
        "`logs`",
        "POST /users",
        "GET /orders",
        "api",
        "worker",
        "tests/test_g.py",
        "h.go",
    ]
)


@st.composite
def structured_goals(draw: st.DrawFn) -> str:
    """Goals built from the pieces the rules look at, so every branch is exercised."""
    verb = draw(
        st.sampled_from(["Add tests for", "Write docs for", "Fix", "Rename", "Port", "Update", ""])
    )
    units = draw(st.lists(_unit_names, min_size=0, max_size=5, unique=True))
    joiner = draw(st.sampled_from([", ", " and ", "\n- ", "\n1. ", "; "]))
    kind = draw(
        st.sampled_from(["", " services", " endpoints", " commands", " modules", " fields"])
    )
    cue = draw(
        st.sampled_from(
            [
                "",
                ", each in its own file",
                "; they are independent",
                " in the same file",
                ", then deploy",
            ]
        )
    )
    noise = draw(st.text(max_size=40))
    return f"{verb} {joiner.join(units)}{kind}{cue}. {noise}"


any_goal = st.one_of(st.text(max_size=300), short_goals(), bare_urls(), structured_goals())


@given(short_goals())
def test_goals_under_four_words_are_focused_and_vague(goal: str) -> None:
    decision = classify(goal)
    assert len(goal.split()) < 4
    assert decision.mode == "focused"
    assert decision.vague
    assert decision.interpretation


@given(bare_urls())
def test_a_bare_url_is_focused_and_vague(goal: str) -> None:
    decision = classify(goal)
    assert decision.mode == "focused"
    assert decision.vague
    assert decision.interpretation and "change nothing else" in decision.interpretation


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(any_goal)
def test_parallel_only_with_two_named_units_in_the_evidence(goal: str) -> None:
    decision = classify(goal)
    if decision.mode != "parallel":
        return
    assert len(decision.evidence) >= 2
    assert len(set(decision.evidence)) == len(decision.evidence)
    for unit in decision.evidence:
        assert unit.lower() in goal.lower()
    assert decision.caps.max_stories == len(decision.evidence) or decision.caps.max_stories == 16
    assert 2 <= decision.caps.parallelism <= min(4, decision.caps.max_stories)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(any_goal)
def test_classify_never_raises_and_is_deterministic(goal: str) -> None:
    first = classify(goal)
    second = classify(goal)
    assert first == second
    assert FALLBACK_REASON not in first.reason
    assert first.source == "offline"
    assert first.tokens.total == 0


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(any_goal)
def test_confidence_reason_and_caps_are_well_formed(goal: str) -> None:
    decision = classify(goal)
    assert 0.0 <= decision.confidence <= 1.0
    assert decision.reason and "\n" not in decision.reason
    assert decision.caps.max_stories >= 1 and decision.caps.parallelism >= 1
    if decision.mode == "focused":
        assert (decision.caps.max_stories, decision.caps.parallelism) == (1, 1)
    if decision.mode == "sequential":
        assert decision.caps.parallelism == 1 and 2 <= decision.caps.max_stories <= 8
    if decision.vague:
        assert decision.mode == "focused" and decision.interpretation
