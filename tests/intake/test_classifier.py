"""The offline classifier on hand-picked goals: shapes, reasons, evidence, caps, vagueness."""

from __future__ import annotations

import time

import pytest

from baro_intake.classifier import classify
from baro_shared.goals.shape import small_change_shapes


def test_four_named_test_files_run_in_parallel_with_the_units_as_evidence() -> None:
    decision = classify(
        "Add unit tests for each of these modules: src/a/one.py, src/a/two.py, "
        "src/a/three.py and src/a/four.py."
    )
    assert decision.mode == "parallel"
    assert decision.evidence == ["src/a/one.py", "src/a/two.py", "src/a/three.py", "src/a/four.py"]
    assert (decision.caps.max_stories, decision.caps.parallelism) == (4, 4)
    assert decision.reason.startswith("four named modules with no shared write surface")
    assert decision.source == "offline"


def test_parallelism_is_capped_at_four_and_stories_at_the_unit_count() -> None:
    names = ", ".join(f"docs/guide/page{i}.md" for i in range(1, 7))
    decision = classify(f"Write one page each: {names}.")
    assert decision.mode == "parallel"
    assert (decision.caps.max_stories, decision.caps.parallelism) == (6, 4)


def test_numbered_steps_are_sequential_with_one_story_per_step() -> None:
    decision = classify("Add billing:\n1. add the Invoice model\n2. add the API\n3. add the page")
    assert decision.mode == "sequential"
    assert (decision.caps.max_stories, decision.caps.parallelism) == (3, 1)
    assert decision.evidence == ["add the Invoice model", "add the API", "add the page"]
    assert "numbered steps" in decision.reason


def test_first_then_is_sequential() -> None:
    decision = classify(
        "First add a `Clock` protocol, then switch the runner to it, then delete time.time() calls."
    )
    assert decision.mode == "sequential"
    assert decision.caps.max_stories == 3


@pytest.mark.parametrize(
    "goal",
    [
        "Fix the typo in a.py and b.py",
        "Rename `Foo` to `Bar` in a.py, b.py and c.py.",
        "Bump requests to 2.32 in services/a, services/b and services/c.",
        "Remove unused imports from cli/main.py, cli/config.py and cli/output.py.",
        "Add `retry`, `timeout` and `backoff` options to the client in http/client.py.",
        "Add the /users and /orders endpoints to api/routes.py.",
        "Add tests for parse_a, parse_b and parse_c; they all live in the same file, p.py.",
        "Split models.py into models/user.py, models/order.py and models/invoice.py.",
        "Address the review on PR #12: rename x in a.py and add a test in b.py.",
    ],
)
def test_lists_that_share_a_surface_or_are_small_edits_stay_focused(goal: str) -> None:
    decision = classify(goal)
    assert decision.mode == "focused"
    assert not decision.vague
    assert (decision.caps.max_stories, decision.caps.parallelism) == (1, 1)


def test_a_traceback_is_one_focused_fix_whatever_paths_it_mentions() -> None:
    goal = (
        "This crashes:\n\nTraceback (most recent call last):\n"
        '  File "/app/a.py", line 3, in <module>\n    main()\n'
        '  File "/app/b.py", line 9, in main\n    run()\n'
        "KeyError: 'x'\n"
    )
    decision = classify(goal)
    assert decision.mode == "focused"
    assert decision.confidence >= 0.85
    assert "KeyError: 'x'" in decision.reason
    assert decision.evidence[0] == "KeyError: 'x'"


def test_steps_to_reproduce_are_not_a_plan() -> None:
    decision = classify(
        "Steps to reproduce:\n1. Open settings\n2. Click Save\n3. Reload\n"
        "Expected: saved. Actual: the page goes blank."
    )
    assert decision.mode == "focused"


@pytest.mark.parametrize(
    ("goal", "bug_report"),
    [
        ("Login returns 500 when the email contains a plus sign.", True),
        ("When I click save, the app crashes.", True),
        ("Fix the retry when the request returns 503.", True),
        ("If the cache is stale, fetch fails.", True),
        ("Retry the upload when it fails, and log when it fails again.", False),
        ("Show a toast when the upload fails.", False),
        ("Add error handling to the uploader and clearer error messages.", False),
        ("Refactor app.js to async handlers, then update its test for the new error shape.", False),
        ("The upload shows a generic error message and fails silently.", True),
        ("Add a `refresh()` method to src/api/client.ts, then call it from "
         "src/hooks/useAuth.ts when a request returns 401.", False),
    ],
)  # fmt: skip
def test_a_failure_is_a_bug_report_unless_it_is_the_condition_of_new_behaviour(
    goal: str, bug_report: bool
) -> None:
    assert ("bugfix" in small_change_shapes(goal)) == bug_report


def test_a_later_step_on_error_messages_does_not_make_a_feature_an_error_message_edit() -> None:
    assert small_change_shapes("The error message for a missing config is vague") == (
        "error-message",
    )
    decision = classify(
        "Implement Display for Token in src/lexer.rs, then use it in the error messages "
        "in src/parser.rs."
    )
    assert decision.mode == "sequential"


def test_unrelated_chores_run_apart_unless_each_is_a_mechanical_edit() -> None:
    chores = (
        "Before the release:\n- remove the dead code in a.py\n- fix the flaky test in "
        "tests/test_b.py\n- update docs/install.md\nThey're unrelated."
    )
    assert classify(chores).mode == "parallel"
    mechanical = (
        "Before the release:\n- remove the dead code in a.py\n- delete tests/test_b.py\n"
        "- rename the title in docs/install.md\nThey're unrelated."
    )
    assert classify(mechanical).mode == "focused"


def test_a_change_and_its_own_test_are_one_agent_s_work() -> None:
    decision = classify("Add a retry with backoff to the S3 upload, then add a test for it.")
    assert decision.mode == "focused"
    extended = classify(
        "First make routers/items.py return 404 for unknown ids; then extend "
        "tests/test_items.py to cover it and the happy path."
    )
    assert extended.mode == "focused"
    steps = classify("First add the endpoint, then write tests for it, and finally document it.")
    assert steps.mode == "sequential" and steps.caps.max_stories == 2


def test_unnamed_repetition_stays_focused() -> None:
    decision = classify("Add smoke tests for every service in the repo.")
    assert decision.mode == "focused"
    assert "names none" in decision.reason


def test_a_bare_pull_request_link_gets_the_smallest_safe_reading() -> None:
    decision = classify("https://github.com/acme/shop/pull/981")
    assert decision.mode == "focused" and decision.vague
    assert decision.interpretation == (
        "Address the open review feedback on pull request acme/shop#981 only, on top of that "
        "pull request's changes; change nothing else."
    )
    assert decision.evidence == ["https://github.com/acme/shop/pull/981"]


def test_a_bare_issue_link_reads_as_fixing_only_that_issue() -> None:
    decision = classify("https://github.com/acme/shop/issues/7 please")
    assert decision.vague
    assert decision.interpretation is not None
    assert decision.interpretation.startswith("Fix only what issue acme/shop#7 describes")


@pytest.mark.parametrize(
    "goal",
    [
        "fix",
        "make it better",
        "The app lacks polish.",
        "The UI is missing stuff",
        "why is the build slow?",
        "is the retry logic correct?",
        "the dashboard feels sluggish and clunky",
        "improve the code quality",
        "could you take a look at this?",
    ],
)
def test_vague_goals_are_focused_flagged_and_interpreted(goal: str) -> None:
    decision = classify(goal)
    assert decision.mode == "focused"
    assert decision.vague
    assert decision.interpretation
    assert "change nothing" in decision.interpretation or "nothing else" in decision.interpretation
    assert decision.reason.startswith("vague goal")


@pytest.mark.parametrize(
    "goal",
    [
        "Login returns 500 when the email contains a plus sign.",
        "The export button does nothing on Safari.",
        "When the CLI is missing, show 'not found' instead of a traceback.",
        "Could you write tests for src/a.py and src/b.py? One file each.",
        "Two mappers lack tests:\n- mappers/claude_mapper.py\n- mappers/pi_mapper.py",
        "cart.py has no tests.",
        "The storage module is untested.",
        "Ops asked for two more Grafana dashboards in deploy/dashboards: cart and checkout.",
        "Docs refresh:\n* docs/install.md — document the uv install\n* docs/api.md — list the routes",
        "make it faster — the greet function in app.py",
        "Need e2e coverage for signup and checkout. Playwright, one spec per flow.",
        "Home.tsx and Settings.tsx need snapshot tests.",
        "Each storage backend (s3, gcs, azure) needs its own test module.",
        "New REST routes, one router file each:\n- users\n- orders",
    ],
)
def test_concrete_reports_and_polite_requests_are_not_vague(goal: str) -> None:
    assert not classify(goal).vague


@pytest.mark.parametrize("goal", ["", "   ", "\n\t"])
def test_an_empty_goal_is_focused_and_vague(goal: str) -> None:
    decision = classify(goal)
    assert decision.mode == "focused" and decision.vague
    assert decision.interpretation == "No goal was given: change nothing."


def test_classify_tolerates_a_non_string() -> None:
    decision = classify(None)  # type: ignore[arg-type]
    assert decision.mode == "focused" and decision.vague


def test_a_huge_pasted_log_is_read_quickly() -> None:
    frames = '  File "/app/mod.py", line 10, in f\n    g()\n' * 50_000
    goal = "Fix this crash:\nTraceback (most recent call last):\n" + frames + "ValueError: boom"
    started = time.perf_counter()
    decision = classify(goal)
    # a guard against super-linear matching (it took minutes), not a latency figure: the
    # classifier's latency is measured by the intake benchmark (make bench)
    assert time.perf_counter() - started < 5
    assert decision.mode == "focused"
