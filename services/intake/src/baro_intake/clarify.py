"""Ask before guessing: the questions a goal raises, and the envelope its answers make.

Pure and offline. A goal raises questions when the classifier finds it vague (the reason
picks the templates: a bare link asks what to do with it, a question asks whether a change
is wanted, a goal without a target asks which file and what should happen) or when its
plan would need a guess: it points at something only the user knows ("the review
comments", "what we discussed") without a link or a number, or it asks for a change and
forbids every change at once. At most three questions, each answerable in one line.

The answers (any of them may be skipped) make the goal's envelope: its objective,
acceptance criteria, constraints, non-goals, and what was assumed for a skipped question.
"""

from __future__ import annotations

import re

from baro_intake.vagueness import Vagueness, assess
from baro_shared.goals.text import bounded, find_urls, url_kind
from baro_shared.schemas import GivenAnswer, GoalEnvelope, Question

MAX_QUESTIONS = 3
MAX_ANSWER_CHARS = 1_000

# Something only the user can name: a review, a conversation, an earlier request.
_USER_ONLY = re.compile(
    r"\b(?:the|those|these|his|her|their|our|my|your)\s+(?:latest\s+|last\s+|new\s+|open\s+)?"
    r"(?:review\s+comments?|review\s+feedback|comments?|feedback|remarks|review|notes)\b"
    r"|\b(?:as|what|like)\s+(?:we\s+)?(?:discussed|agreed|talked\s+about|said)\b"
    r"|\bthe\s+thing\s+from\b|\bthe\s+(?:ticket|issue)\b(?!\s*#?\d)",
    re.I,
)
# A reference the run can follow: a link, #123, !45, a commit sha.
_REFERENCE = re.compile(r"https?://|(?<!\w)[#!]\d+\b|\b[0-9a-f]{7,40}\b", re.I)
# "... but change no code": a change asked for and every change forbidden.
_FORBIDS_ALL = re.compile(
    r"\b(?:without|do\s+not|don'?t|never)\s+(?:changing|change|touching|touch|modifying|modify|"
    r"editing|edit)\s+(?:any|a\s+single)\s+(?:code|file|files|line|lines)\b",
    re.I,
)
_PERF = re.compile(r"\b(?:fast\w*|slow\w*|perf\w*|speed\w*|sluggish|latency|lag\w*)\b", re.I)
_FIX = re.compile(r"\bfix(?!ture)\w*\b|\bbroken\b|\bfail\w*\b|\bmess\b", re.I)

_TARGET = Question(id="target", text="Which file, module, command or feature should change?")
_UNTOUCHED = Question(
    id="untouched", text="Is there anything this must not change (files, behaviour, APIs)?"
)


def needs_a_guess(goal: str) -> str | None:
    """Why a goal the classifier reads as concrete would still need a guess, or None."""
    text = bounded(goal)
    match = _USER_ONLY.search(text)
    if match and not _REFERENCE.search(text):
        return f'it refers to "{match.group(0)}", which only you can point at'
    if _FORBIDS_ALL.search(text):
        return "it asks for a change and forbids changing any code"
    return None


def _outcome(goal: str) -> Question:
    if _PERF.search(goal):
        text = "Which operation is slow, and how fast should it be when this is done?"
    elif _FIX.search(goal):
        text = (
            "What is broken: which command, test or error shows it, and what should happen instead?"
        )
    else:
        text = "What should be true when this is done (how will you check it)?"
    return Question(id="outcome", text=text)


def _link_question(url: str) -> Question:
    kind = url_kind(url)
    if kind == "pull":
        text = (
            f"What should this run do on {url}: address its open review comments, make its "
            "failing checks pass, or something else?"
        )
        return Question(id="pr", text=text)
    if kind == "issue":
        return Question(id="issue", text=f"Which part of {url} should this run fix?")
    if kind == "ci":
        return Question(id="check", text=f"Which failing check of {url} should pass?")
    return Question(id="link", text=f"What should change about {url}?")


def _templates(goal: str, vagueness: Vagueness | None, guess: str | None) -> list[Question]:
    urls = find_urls(bounded(goal))
    if guess is not None:
        if "forbids" in guess:
            conflict = Question(
                id="conflict",
                text="The goal asks for a change but forbids changing code: which files may change?",
            )
            return [conflict, _outcome(goal)]
        named = guess.split('"')[1] if '"' in guess else "it"
        reference = Question(
            id="reference",
            text=f'Which "{named}" do you mean? Give its link or number (a pull request URL, #123).',
        )
        return [reference, _outcome(goal)]
    reason = vagueness.reason if vagueness is not None else ""
    if urls and ("link" in reason or "under four words" in reason):
        return [_link_question(urls[0]), _outcome(goal)]
    if reason.startswith("a question"):
        return [
            Question(
                id="intent",
                text="Do you want an explanation only, or a change? If a change, what should it do?",
            ),
            _TARGET,
        ]
    return [_TARGET, _outcome(goal), _UNTOUCHED]


def questions_for(goal: str) -> list[Question]:
    """The questions to ask before planning ``goal``; none for a goal that needs no guess."""
    vagueness = assess(goal)
    guess = needs_a_guess(goal)
    if vagueness is None and guess is None:
        return []
    why = guess or (vagueness.reason if vagueness is not None else "")
    return [
        Question(id=q.id, text=q.text, why=why)
        for q in _templates(goal, vagueness, guess)[:MAX_QUESTIONS]
    ]


# Which part of the envelope an answer goes to, by question id; the rest add to the objective.
_CRITERIA = frozenset({"outcome", "check"})
_NON_GOALS = frozenset({"untouched"})
_CONSTRAINTS = frozenset({"conflict"})


def _clean(text: str) -> str:
    return " ".join(text.split())[:MAX_ANSWER_CHARS]


def answered(questions: list[Question], answers: list[GivenAnswer]) -> dict[str, str]:
    """Each question's answer by id (unknown ids and blank answers left out)."""
    ids = {q.id for q in questions}
    found: dict[str, str] = {}
    for answer in answers:
        text = _clean(answer.text)
        if answer.question_id in ids and text and answer.question_id not in found:
            found[answer.question_id] = text
    return found


def envelope_from_answers(
    goal: str,
    questions: list[Question],
    answers: list[GivenAnswer],
    interpretation: str | None,
) -> GoalEnvelope:
    """The clarified goal, offline: the goal with its answers folded in."""
    given = answered(questions, answers)
    stated = " ".join(goal.split()).rstrip(".!?") or "the goal"
    objective_parts = [
        given[q.id]
        for q in questions
        if q.id in given and q.id not in (_CRITERIA | _NON_GOALS | _CONSTRAINTS)
    ]
    objective = stated + "".join(f" — {part.rstrip('.')}" for part in objective_parts)
    criteria = [given[q.id] for q in questions if q.id in _CRITERIA and q.id in given]
    non_goals = [given[q.id] for q in questions if q.id in _NON_GOALS and q.id in given]
    constraints = [
        f"Only these may change: {given[q.id]}"
        for q in questions
        if q.id in _CONSTRAINTS and q.id in given
    ]
    constraints.append("Make the smallest change that meets the objective; change nothing else.")
    skipped = [q for q in questions if q.id not in given]
    assumptions = [f'"{q.text}" was not answered.' for q in skipped]
    if skipped and interpretation:
        assumptions.append(f"Taken as the smallest safe reading: {interpretation}")
    return GoalEnvelope(
        objective=objective,
        constraints=constraints,
        acceptance_criteria=criteria,
        non_goals=non_goals,
        assumptions=assumptions,
        source="offline",
    )
