"""Answering a run's questions before it is planned: at a terminal, or from a file.

At a terminal ``baro run`` asks each question (at most three; Enter skips one, Esc or
Ctrl-C cancels the run), then shows the objective and acceptance criteria the answers
made and asks to go on. Without a terminal, ``--answers FILE`` answers them:

    {"target": "the search endpoint in api/search.py", "outcome": "p95 under 200 ms"}

a JSON object whose keys are question ids (``baro run`` prints them; the templated ones
are ``target``, ``outcome``, ``untouched``, ``pr``, ``issue``, ``check``, ``link``,
``intent``, ``reference``, ``conflict``) or 1-based positions ("1", "2", "3"), and whose
values are the answers. A question the file does not answer is skipped.

Everything draws on stderr, as the mode picker does, so ``--json`` keeps stdout clean.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from baro_cli.picker import ask_or_cancel
from baro_cli.validate import UserError
from baro_shared import schemas as s
from baro_shared.goals.envelope import sections

MAX_ASKED = 3
MAX_ANSWER_CHARS = 2_000
MAX_FILE_BYTES = 64 * 1024
INSTRUCTION = "(Enter skips, Esc cancels)"


class Answerer(Protocol):
    by: str

    def answer(self, questions: list[s.Question]) -> list[s.GivenAnswer] | None:
        """The answers (a blank one: skipped), or None to cancel the run."""
        ...

    def confirm(self, envelope: s.GoalEnvelope) -> bool:
        """Go on with the clarified goal?"""
        ...


def envelope_lines(envelope: s.GoalEnvelope) -> list[str]:
    """The clarified goal as a few plain lines (progress, the confirmation)."""
    lines = [f"objective: {envelope.objective}"]
    for title, values in sections(envelope):
        if title.startswith(("Acceptance", "Non-goals")):
            lines.append(f"{title.split(' (')[0].lower()}: {'; '.join(values)}")
    return lines


def answers_from_mapping(given: dict[str, str], questions: list[s.Question]) -> list[s.GivenAnswer]:
    """Answers by question id or by 1-based position; the rest skipped."""
    found: list[s.GivenAnswer] = []
    for position, question in enumerate(questions, 1):
        text = given.get(question.id, given.get(str(position), ""))
        found.append(s.GivenAnswer(question_id=question.id, text=text.strip()))
    return found


def read_answers_file(path: Path) -> dict[str, str]:
    """The answers file, checked: a JSON object of strings (see the module doc)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read the answers file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UserError(f"the answers file {path} is over {MAX_FILE_BYTES // 1024} KiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"the answers file {path} is not JSON ({exc}): write an object such as "
            '{"target": "api/search.py", "outcome": "p95 under 200 ms"}'
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise UserError(
            f"the answers file {path} must be one JSON object of question id (or position) "
            "to answer text, all strings"
        )
    for key, value in data.items():
        if len(value) > MAX_ANSWER_CHARS:
            raise UserError(
                f"the answer to {key!r} in {path} is over {MAX_ANSWER_CHARS} characters"
            )
    return data


@dataclass
class FileAnswers:
    """``--answers FILE``: the answers given up front."""

    given: dict[str, str]
    by: str = "file"

    def answer(self, questions: list[s.Question]) -> list[s.GivenAnswer] | None:
        return answers_from_mapping(self.given, questions)

    def confirm(self, envelope: s.GoalEnvelope) -> bool:
        return True


@dataclass
class TerminalAnswers:
    """At a terminal: each question in turn, then the clarified goal to confirm."""

    by: str = "terminal"
    asked: list[str] = field(default_factory=list)

    def answer(self, questions: list[s.Question]) -> list[s.GivenAnswer] | None:
        import questionary
        from prompt_toolkit.output import create_output

        answers: list[s.GivenAnswer] = []
        shown = questions[:MAX_ASKED]
        for number, question in enumerate(shown, 1):
            prompt = f"({number}/{len(shown)}) {question.text}"
            self.asked.append(question.id)
            try:
                text = ask_or_cancel(
                    questionary.text(
                        prompt, instruction=INSTRUCTION, output=create_output(stdout=sys.stderr)
                    )
                )
            except (KeyboardInterrupt, EOFError):
                return None
            answers.append(s.GivenAnswer(question_id=question.id, text=(text or "").strip()))
        return answers

    def confirm(self, envelope: s.GoalEnvelope) -> bool:
        import questionary
        from prompt_toolkit.output import create_output

        print("\n".join(["the goal, clarified:", *envelope_lines(envelope)]), file=sys.stderr)
        try:
            return bool(
                questionary.confirm(
                    "Go on with this goal?", default=True, output=create_output(stdout=sys.stderr)
                ).unsafe_ask()
            )
        except (KeyboardInterrupt, EOFError):
            return False
