"""One redactor where text leaves a service: credentials in URLs and key shapes are
masked in events, errors, reasons, API answers and logs, and nothing a run needs
verbatim (its request, stories, sources, paths) is touched."""

from __future__ import annotations

import logging

import msgspec
import pytest

from baro_shared import schemas as s
from baro_shared.redact import MASK, RedactingFilter, redact, scrub

TOKEN = "ghp_" + "A1b2C3d4" * 5


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        (f"fatal: could not read from https://{TOKEN}@github.com/o/r.git", TOKEN),
        ("https://deploy:hunter2hunter2@example.com/r.git", "hunter2hunter2"),
        ("https://x-access-token:s3cr3tvalue@github.com/o/r", "s3cr3tvalue"),
        ("clone of 'HTTP://Someone:pw-12345@host:8443/r' failed", "pw-12345"),
    ],
)
def test_credentials_in_urls_are_masked_wherever_they_appear(text: str, hidden: str) -> None:
    out = redact(text)
    assert hidden not in out
    assert f"{MASK}@" in out


@pytest.mark.parametrize(
    "text", ["ssh://git@github.com/o/r.git", "git@github.com:o/r.git", "mail a@b.example"]
)
def test_user_names_that_are_not_secrets_stay(text: str) -> None:
    assert redact(text) == text


def test_scrub_masks_nested_diagnostics_and_keeps_what_a_run_needs() -> None:
    url = f"https://{TOKEN}@github.com/o/r.git"
    request = s.RunSubmitted(
        run_id="r1", goal=f"mirror {url}", repo=s.RepoSource(kind="url", location=url)
    )
    story = s.Story(id="S1", title="t", description=f"push to {url}")
    record = s.RunRecord(
        run_id="r1",
        request=request,
        reason=f"could not prepare the repository: clone of {url} failed",
        stories=[s.StoryState(story=story, reason=f"failed: {url}")],
    )
    cleaned = scrub(record)
    assert TOKEN not in (cleaned.reason or "")
    assert TOKEN not in (cleaned.stories[0].reason or "")
    assert cleaned.request is request, "the submitted request is the run's input, kept as is"
    assert cleaned.stories[0].story is story, "a story is an agent's instructions, kept as is"
    assert TOKEN in record.reason, "scrub returns a copy"

    finished = s.RunFinished(run_id="r1", status="failed", reason=f"see {url}")
    assert TOKEN not in msgspec.json.encode(scrub(finished)).decode()
    event = s.AgentEventMsg(
        run_id="r1", story_id="S1", attempt=1, seq=1, event=s.CommandRun(command=f"git push {url}")
    )
    assert TOKEN not in msgspec.json.encode(scrub(event)).decode()
    assert (
        scrub(s.StoryFinished(run_id="r", story_id="S1", attempt=1, status="success")).error is None
    )


def test_log_records_and_their_tracebacks_are_redacted() -> None:
    url = f"https://{TOKEN}@github.com/o/r.git"
    try:
        raise RuntimeError(f"clone of {url} failed")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "pushing %s", (url,), sys.exc_info()
        )
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert TOKEN not in formatted
    assert "RuntimeError" in formatted and MASK in formatted
