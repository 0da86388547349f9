"""What each real CLI's failure means for a retry, read from real captures (cli_failures/).

Authentication failures are permanent (``auth``), a refused request is ``rejected``, a cut
stream or a lost network is ``transient``; a CLI's retry notices are not progress.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.backends import missing_provider_key
from baro_shared.mappers import mapper_for
from baro_shared.mappers.base import classify
from baro_shared.mappers.opencode import MAX_UNFINISHED_STEPS

from .conftest import run

CAPTURES = Path(__file__).resolve().parent / "cli_failures"
CASES = json.loads((CAPTURES / "cases.json").read_text())

# case -> what the stream alone says (None: the stream is silent; the stderr speaks)
STREAM_SAYS: dict[str, s.ErrorKind | None] = {
    "claude_401": "auth",
    "claude_not_logged_in": "auth",
    "codex_401": "auth",
    "codex_cut": "transient",
    "opencode_401": "auth",
    "opencode_cut": "transient",
    "opencode_cut_close": "transient",  # a loop, stopped by the runner (killed here)
    "opencode_no_key": None,  # "Unexpected server error": its stderr says why
    "pi_401": "auth",
    "pi_cut": "transient",
    "pi_cut_close": "transient",
    "pi_no_key": None,
}


def capture(case: str) -> tuple[list[bytes], str, int | None]:
    lines = (CAPTURES / f"{case}.jsonl").read_bytes().splitlines()
    stderr = (CAPTURES / f"{case}.stderr").read_text()
    return lines, stderr, CASES[case]["exit_code"]


def test_every_capture_is_listed_and_checked() -> None:
    on_disk = {path.stem for path in CAPTURES.glob("*.jsonl")}
    assert on_disk == set(CASES)
    assert on_disk == {*STREAM_SAYS, "codex_no_network"}
    assert {case["backend"] for case in CASES.values()} == {"claude", "codex", "opencode", "pi"}


@pytest.mark.parametrize("case", sorted(STREAM_SAYS))
def test_a_failure_is_classified_from_what_the_cli_really_says(case: str) -> None:
    lines, _, exit_code = capture(case)
    mapper, events = run(CASES[case]["backend"], lines, exit_code)

    assert mapper.skipped_lines == 0 and mapper._mapping_failures == 0
    finished = [e for e in events if isinstance(e, s.AgentFinished)]
    assert len(finished) == 1 and not finished[0].ok
    assert mapper.failure_kind == STREAM_SAYS[case]
    errors = [e for e in events if isinstance(e, s.AgentError)]
    assert errors and errors[-1].category == STREAM_SAYS[case]
    assert all(e.retryable == (e.category == "transient") for e in errors)
    assert mapper.explained == (STREAM_SAYS[case] is not None)
    if STREAM_SAYS[case] == "auth":
        assert mapper.progress == 0, "a refused call is no work"


def test_pi_without_a_key_says_so_only_on_stderr() -> None:
    lines, stderr, exit_code = capture("pi_no_key")
    mapper, _ = run("pi", lines, exit_code)
    assert mapper.error == "pi exited with code 1 without a result"
    assert not mapper.explained
    assert stderr.startswith("No API key found for anthropic.")
    assert classify(stderr) == "auth"


def test_opencode_without_a_key_says_which_provider_only_on_stderr() -> None:
    lines, stderr, exit_code = capture("opencode_no_key")
    mapper, _ = run("opencode", lines, exit_code)
    assert mapper.error == "Unexpected server error. Check server logs for details."
    assert not mapper.explained and mapper.failure_kind is None, "not transient: no retry"
    assert missing_provider_key("opencode", stderr, {}) == (
        "opencode has no key for the google provider (GOOGLE_GENERATIVE_AI_API_KEY or "
        "GEMINI_API_KEY is not set in the agent's environment), so it does not know the model "
        "google/gemini-2.5-flash"
    )
    # with the key set, "not found" means the model itself: no advice about keys
    assert missing_provider_key("opencode", stderr, {"GEMINI_API_KEY": "k"}) is None
    assert missing_provider_key("pi", stderr, {}) is None


def test_opencode_calling_a_model_whose_stream_never_finishes_is_a_loop() -> None:
    """The stream ends without a finish reason: OpenCode calls the model again, for ever
    (15 calls until the capture was killed). The third such step in a row is a loop."""
    lines, _, _ = capture("opencode_cut_close")
    mapper = mapper_for("opencode")
    steps = 0
    for line in lines:
        mapper.feed(line)
        steps += b'"type":"step_finish"' in line
        if mapper.looping is not None:
            break
    assert steps == MAX_UNFINISHED_STEPS == 3
    assert mapper.looping == (
        "opencode: the model's stream ended without a finish reason 3 times in a row, "
        "and opencode kept calling it again"
    )
    finished = [e for e in mapper.finish(None) if isinstance(e, s.AgentFinished)]
    assert finished and finished[0].error == mapper.looping


def test_reconnect_notices_are_not_progress() -> None:
    lines, _, _ = capture("codex_no_network")  # killed: the stream never ends by itself
    mapper, events = run("codex", lines, None)
    assert mapper.progress == 0
    assert mapper.retry_notice is not None
    assert mapper.retry_notice.startswith("Reconnecting... waiting for network")
    assert not [e for e in events if isinstance(e, s.AgentError) and "Reconnecting" in e.message]


@pytest.mark.parametrize(
    ("message", "status", "kind"),
    [
        ("429 Too Many Requests", None, "transient"),
        ("anything", 529, "transient"),
        ("Overloaded", None, "transient"),
        ("Stream ended without finish_reason", None, "transient"),
        ("terminated: Response does not match the HTTP/1.1 protocol", None, "transient"),
        ("stream disconnected before completion: stream closed", None, "transient"),
        ("Connection reset by server", None, "transient"),
        ("Reconnecting... waiting for network (Connection failed)", None, "transient"),
        ("unexpected status 401 Unauthorized: invalid x-api-key", None, "auth"),
        ("Not logged in · Please run /login", None, "auth"),
        ("Invalid API key · Fix external API key", None, "auth"),
        ("No API key found for anthropic.", None, "auth"),
        ("Forbidden", 403, "auth"),
        ('400 {"type":"error","error":{"type":"invalid_request_error"}}', None, "rejected"),
        ("Model claude-nope not found", None, "rejected"),
        ("unexpected status 404 Not Found", None, "rejected"),
        ("the tests fail and I could not fix them", None, None),
        ("", None, None),
    ],
)
def test_classify(message: str, status: int | None, kind: s.ErrorKind | None) -> None:
    assert classify(message, status) == kind
