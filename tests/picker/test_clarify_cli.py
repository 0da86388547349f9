"""`baro run --answers FILE` / `--clarify` and `baro answer`: what they accept, as pure
functions (no run is started)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from baro_cli.commands.cluster import render_detail
from baro_cli.commands.run import clarify_policy
from baro_cli.questions import answers_from_mapping, read_answers_file
from baro_cli.validate import UserError
from baro_intake import api_views
from baro_shared import schemas as s

QUESTIONS = [s.Question(id="target", text="Which?"), s.Question(id="outcome", text="What?")]


@pytest.mark.parametrize(
    ("clarify", "answers", "interactive", "yes", "expected"),
    [
        (None, False, True, False, "ask"),  # a terminal asks
        (None, False, True, True, "skip"),  # --yes takes the suggestion as it is
        (None, False, False, False, "skip"),  # no terminal: today's behaviour, recorded
        ("ask", False, False, False, "ask"),  # waits for `baro answer`
        ("skip", False, True, False, "skip"),
        (None, True, False, False, "ask"),  # --answers FILE
    ],
)
def test_when_a_run_asks(
    clarify: str | None, answers: bool, interactive: bool, yes: bool, expected: str
) -> None:
    assert clarify_policy(clarify, answers, "auto", yes, interactive) == expected


@pytest.mark.parametrize(
    ("clarify", "mode", "message"),
    [
        ("later", "auto", "unknown --clarify 'later'"),
        ("skip", "auto", "--clarify skip skips them"),
        (None, "focused", "--answers needs the intake"),
    ],
)
def test_contradicting_flags_are_one_clear_line(
    clarify: str | None, mode: str, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        clarify_policy(clarify, clarify != "later", mode, False, False)


def test_answers_match_by_id_or_position_and_the_rest_is_skipped() -> None:
    answers = answers_from_mapping({"2": " fast ", "other": "x"}, QUESTIONS)
    assert [(a.question_id, a.text) for a in answers] == [("target", ""), ("outcome", "fast")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "is not JSON"),
        (b'["a"]', "must be one JSON object"),
        (b'{"target": 3}', "must be one JSON object"),
        (json.dumps({"target": "x" * 2001}).encode(), "over 2000 characters"),
    ],
)
def test_a_bad_answers_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "answers.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_answers_file(path)


def test_a_missing_answers_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read the answers file"):
        read_answers_file(tmp_path / "nope.json")


def test_baro_status_shows_the_questions_a_run_waits_for() -> None:
    request = s.RunSubmitted(
        run_id="r1", goal="make it faster", repo=s.RepoSource(kind="path", location="/repo"),
        clarify="ask",
    )  # fmt: skip
    record = s.RunRecord(
        run_id="r1",
        request=request,
        state="awaiting_answers",
        clarification=s.Clarification(
            status="asked",
            questions=QUESTIONS,
            answers=[],
        ),
    )
    out = io.StringIO()
    render_detail(api_views.detail(record), out)
    shown = out.getvalue()
    assert "questions before planning (asked):" in shown
    assert "[target] Which? — (not answered)" in shown
    assert "waiting for answers: baro answer r1" in shown
