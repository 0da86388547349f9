"""The pull request body: mode and reason, stories table, dropped artifacts, totals."""

from __future__ import annotations

from baro_merger.prbody import pr_body, pr_title
from baro_shared import schemas as s


def story(
    sid: str, title: str, status: str, start: float, end: float, tokens: s.TokenUsage, agent: float
) -> s.StoryState:
    return s.StoryState(
        story=s.Story(id=sid, title=title),
        status=status,  # type: ignore[arg-type]
        started_at=start,
        finished_at=end,
        tokens=tokens,
        agent_seconds=agent,
    )


def record() -> s.RunRecord:
    request = s.RunSubmitted(
        run_id="r1",
        goal="add tests for a.py and b.py",
        repo=s.RepoSource(kind="path", location="/repo"),
    )
    return s.RunRecord(
        run_id="r1",
        request=request,
        created_at=1000.0,
        mode="parallel",
        mode_source="offline",
        decision=s.IntakeDecision(
            mode="parallel",
            confidence=0.85,
            reason="two independent units",
            tokens=s.TokenUsage(input=10, output=2),
        ),
        enforcement=["serialized S2 after S1 (shared surface)"],
        stories=[
            story(
                "S1", "Tests for a.py", "integrated", 1001.0, 1011.0,
                s.TokenUsage(input=1000, cached_input=700, output=50, cost_usd=0.25), 9.5,
            ),
            story(
                "S2", "Tests | for b.py", "integrated", 1001.0, 1021.0,
                s.TokenUsage(input=2000, cached_input=1400, output=100, cost_usd=0.5), 19.0,
            ),
        ],
    )  # fmt: skip


def test_body_holds_mode_stories_dropped_and_totals() -> None:
    body = pr_body(
        record(),
        commits=2,
        files_changed=["tests/test_a.py", "tests/test_b.py"],
        dropped=["prd.json", "docs/adr/0001-x.md"],
        verify="passed",
        verify_command="make test",
        now=1030.0,
    )
    assert "> add tests for a.py and b.py" in body
    assert "**Mode:** parallel (85% confident), decided by offline — two independent units" in body
    assert "- serialized S2 after S1 (shared surface)" in body
    assert (
        "| story | title | status | duration | agent time | tokens in / cached / out | cost |"
        in body
    )
    assert (
        "| S1 | Tests for a.py | integrated | 10.0s | 9.5s | 1,000 / 700 / 50 | $0.2500 |" in body
    )
    assert (
        "| S2 | Tests \\| for b.py | integrated | 20.0s | 19.0s | 2,000 / 1,400 / 100 | $0.5000 |"
        in body
    )
    assert "- `prd.json`\n- `docs/adr/0001-x.md`" in body
    assert "`refs/baro/r1/<story>/<attempt>`" in body
    assert "`make test` passed." in body
    # tokens: stories plus the intake's 10 in / 2 out (which reported no price: the cost is
    # the stories' 0.25 + 0.5); wall 30s; agent time 9.5 + 19 = 28.5s; speedup 28.5 / 30
    assert "| 3,010 | 2,100 | 152 | $0.7500 | 30.0s | 28.5s | 0.95x |" in body
    assert "2 commit(s), 2 file(s) changed" in body


def test_nothing_dropped_and_unknown_tokens() -> None:
    rec = record()
    rec.stories[0].tokens = s.TokenUsage()
    body = pr_body(
        rec, commits=1, files_changed=[], dropped=[], verify=None, verify_command=None, now=1100.0
    )
    assert "## Dropped artifacts\n\nNone." in body
    assert "| S1 | Tests for a.py | integrated | 10.0s | 9.5s | ? / ? / ? | unknown |" in body
    assert "| 2,010 | 1,400 | 102 | $0.5000 | 1m 40s | 28.5s | 0.28x |" in body
    assert "## Verification" not in body
    assert "1m 40s" in body  # wall-clock over a minute


def test_no_price_reported_is_unknown_not_zero() -> None:
    rec = record()
    for st in rec.stories:
        st.tokens = s.TokenUsage(input=st.tokens.input, output=st.tokens.output)
    body = pr_body(
        rec, commits=1, files_changed=[], dropped=[], verify=None, verify_command=None, now=1030.0
    )
    assert "| 3,010 | ? | 152 | unknown | 30.0s | 28.5s | 0.95x |" in body
    assert "$0.0000" not in body


def test_title_is_the_goal_s_first_line_cut_short() -> None:
    assert pr_title("fix the typo\n\nmore words") == "fix the typo"
    long = pr_title("word " * 40)
    assert len(long) <= 72 and long.endswith("…")
    assert pr_title("   \n") == "baro change"


def test_the_questions_asked_before_the_run_and_the_clarified_goal_are_in_the_body() -> None:
    rec = record()
    rec.clarification = s.Clarification(
        status="answered",
        questions=[
            s.Question(id="target", text="Which file?"),
            s.Question(id="untouched", text="What must not change?"),
        ],
        answers=[s.GivenAnswer(question_id="target", text="a.py and b.py")],
    )
    rec.envelope = s.GoalEnvelope(
        objective="add tests — a.py and b.py", acceptance_criteria=["both files covered"]
    )
    body = pr_body(rec, commits=1, files_changed=[], dropped=[], verify=None,
                   verify_command=None, now=1030.0)  # fmt: skip
    asked = body.index("## Questions before the run (answered)")
    assert body.index("**Mode:**") < asked < body.index("## What was agreed before the run")
    assert "- Which file? — a.py and b.py" in body
    assert "- What must not change? — (not answered)" in body
    assert "**Objective:** add tests — a.py and b.py" in body
    assert "- both files covered" in body
    assert body.index("## What was agreed") < body.index("## Stories")
