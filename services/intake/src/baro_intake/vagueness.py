"""Vague goals: what makes a goal too thin to plan from, and its smallest safe reading.

A goal is vague when it is empty, under four words, a bare link, a question without an
instruction, or an instruction without a concrete target ("make it better"). Failure
reports are never vague: "Login returns 500 when ..." names its target.

The interpretation is written for the agent and shown to the user. It always narrows
the work ("change nothing else"); it never adds work nobody asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from baro_shared.goals.text import (
    ACTION_VERBS,
    FAILURE,
    WEAK_VERBS,
    bounded,
    find_urls,
    split_trace,
    url_kind,
    verb_of,
    without_urls,
    word_set,
    words,
)
from baro_shared.goals.units import UNIT_KINDS

MIN_WORDS = 4

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n")
# "When X, do Y" is an instruction; "where/when/which/who" open a question only with a "?".
_QUESTION_START = re.compile(
    r"^\s*(?:why|what|how|is|are|was|were|does|do|did|can|could|should|would|will|isn'?t|"
    r"doesn'?t|aren'?t|shouldn'?t|any\s+idea)\b",
    re.I,
)
# "s/old/new/" and "X instead of Y" state the change wanted even without a verb.
_DESIRED_BEHAVIOUR = re.compile(r"(?<![\w/])s/[^/\s]+/[^/\s]*/|\binstead\s+of\b", re.I)
_DASH = re.compile(r"\s[—\u2013]\s")
_POLITE_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:can|could|would|will)\s+you\s+(?:please\s+)?([A-Za-z-]+)", re.I
)
_INFINITIVE = re.compile(r"\bto\s+([A-Za-z][a-z-]*)")
_MODAL_DIRECTIVE = re.compile(
    r"\b(?:should|must|needs?\s+(?:to|an?|some|(?:its|their)\s+own)|has\s+to|have\s+to|we\s+need|"
    r"gets?\s+(?:its|their)\s+own)\b",
    re.I,
)
# A goal that names what it wants delivered: "e2e tests for login and search", "docstrings
# for the storage backends"
_DELIVERABLE_NOUNS = (
    r"tests?|specs?|docs|documentation|docstrings|type\s+hints|benchmarks?|translations?|examples?|"
    r"coverage"
)
_DELIVERABLE = re.compile(
    rf"^\s*(?:(?:a|an|some|more|new)\s+)?(?:[\w-]+\s+){{0,2}}?(?:{_DELIVERABLE_NOUNS})\s+(?:for|of)\b",
    re.I,
)
# "Home.tsx and Settings.tsx need snapshot tests"
_NEEDS_DELIVERABLE = re.compile(
    rf"\bneeds?\s+(?:[\w-]+\s+){{0,2}}?(?:{_DELIVERABLE_NOUNS})\b", re.I
)
# A goal that names what is missing: "two mappers lack tests: ...", "cart.py has no tests"
# (not "the app lacks polish": what is missing is a deliverable, or the goal names files)
_LACKS = re.compile(
    r"\b(?:lacks?|lacking|(?:has|have)\s+no|(?:is|are)\s+(?:missing|untested|undocumented))\b",
    re.I,
)
_DELIVERABLES = rf"(?:{_DELIVERABLE_NOUNS}|readme|changelog|logging|validation)"
_MISSING_DELIVERABLE = re.compile(
    rf"\b(?:lacks?|lacking|(?:has|have)\s+no|without)\s+(?:any\s+)?(?:[\w-]+\s+)?"
    rf"{_DELIVERABLES}\b|\b{_DELIVERABLES}\s+(?:is|are)\s+missing\b|"
    r"\b(?:is|are)\s+(?:untested|undocumented)\b",
    re.I,
)
# "new components: Tabs, Accordion", "Ops asked for two more Grafana dashboards in …": the
# units to make, named after their kind
_NEW_UNITS = re.compile(
    rf"^\s*(?:(?:new|more|two|three|four|five|six)\s+)+(?:[\w-]+\s+)?(?:{UNIT_KINDS})\s*[:(,]"
    r"|\b(?:asked\s+for|asks\s+for|requested|wants?|needs?|would\s+like)\s+"
    rf"(?:(?:an?|some|new|more|two|three|four|five|six)\s+)+(?:[\w-]+\s+)?(?:{UNIT_KINDS})\b",
    re.I,
)
_CONCRETE_TOKEN = re.compile(
    r"`[^`]+`|\"[^\"]+\"|'[^']{2,}'|\b\w+[./_]\w+|\b\d+\b|\b[a-z]+[A-Z]\w*"
)

# Words that carry no target: "make it better", "clean up the code", "do the thing".
_GENERIC_WORDS = word_set(
    """a an the it its this that these those thing things stuff everything something all
    some any more code codebase quality project repo repository app application better
    faster cleaner nicer good great more less bit little overall general up from to of in
    on for with yesterday today again please now here there mess again just whole entire
    same way work works"""
)
_FILLER_WORDS = word_set(
    """please pls see look at this that here check pr issue mr thanks thx can could you
    would take a an the to it on for into solve resolve address handle implement do fix
    link ticket below above bug in from of"""
)


@dataclass(frozen=True, slots=True)
class Vagueness:
    reason: str
    interpretation: str
    # How sure the reading is that the goal is vague: a bare link or a two-word goal is
    # certain; "no concrete change named" is a judgement about wording.
    certainty: float


def _sentences(prose: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_BREAK.split(prose) if s.strip()]


def _is_question(sentence: str) -> bool:
    polite = _POLITE_REQUEST.match(sentence)
    if polite and polite.group(1).lower() in ACTION_VERBS:
        return polite.group(1).lower() in WEAK_VERBS and not _has_concrete_target(sentence)
    return sentence.rstrip().endswith("?") or bool(_QUESTION_START.match(sentence))


def _has_concrete_target(sentence: str) -> bool:
    if _CONCRETE_TOKEN.search(sentence):
        return True
    content = [
        w
        for w in words(sentence)
        if w not in _GENERIC_WORDS and w not in WEAK_VERBS and w not in ACTION_VERBS
    ]
    return len(content) >= 1


def _clauses_and_their_parts(sentence: str) -> list[str]:
    """The sentence's clauses, and the parts of each around a dash: "- a.md — document X"
    acts in its second part, "make it faster — the greet function in app.py" in the whole."""
    found = []
    for clause in re.split(r"[,;:]", sentence):
        found.append(clause)
        parts = _DASH.split(clause)
        if len(parts) > 1:
            found.extend(parts)
    return found


def _has_directive(prose: str) -> bool:
    for sentence in _sentences(prose):
        if _is_question(sentence):
            continue
        if FAILURE.search(sentence) or _DESIRED_BEHAVIOUR.search(sentence):
            return True
        for clause in _clauses_and_their_parts(sentence):
            verb = verb_of(clause)
            if verb is None:
                continue
            if verb not in WEAK_VERBS or _has_concrete_target(clause):
                return True
        if _MODAL_DIRECTIVE.search(sentence) and _has_concrete_target(sentence):
            return True
        if (_DELIVERABLE.match(sentence) or _NEEDS_DELIVERABLE.search(sentence)) and (
            _has_concrete_target(sentence)
        ):
            return True
        if _LACKS.search(sentence) and (
            _MISSING_DELIVERABLE.search(sentence) or _CONCRETE_TOKEN.search(prose)
        ):
            return True
        if _NEW_UNITS.search(sentence):
            return True
        # Reported requests: "the reviewer asked to move X", "we want to add Y".
        infinitives = (m.group(1).lower() for m in _INFINITIVE.finditer(sentence))
        if any(v in ACTION_VERBS for v in infinitives) and _has_concrete_target(sentence):
            return True
    return False


def _short_ref(url: str) -> str:
    """``owner/repo#N`` for forge links, the link itself otherwise."""
    m = re.search(
        r"://[^/]+/([^/]+)/([^/]+)/(?:-/)?(?:pull|pulls|issues|merge_requests)/(\d+)", url
    )
    return f"{m.group(1)}/{m.group(2)}#{m.group(3)}" if m else url


def _link_interpretation(url: str) -> str:
    kind = url_kind(url)
    ref = _short_ref(url)
    if kind == "pull":
        return (
            f"Address the open review feedback on pull request {ref} only, on top of that "
            "pull request's changes; change nothing else."
        )
    if kind == "issue":
        return (
            f"Fix only what issue {ref} describes, with the smallest change that resolves it; "
            "change nothing else."
        )
    if kind == "ci":
        return (
            f"Make the failing check in CI run {url} pass with the smallest fix to the code or "
            "test it points at; change nothing else."
        )
    if kind == "commit":
        return (
            f"Fix only a clear defect introduced by commit {url}, with the smallest change; "
            "change nothing else."
        )
    return f"Make only the change the linked page ({url}) clearly asks for, as small as possible; change nothing else."


_PERF = re.compile(r"\b(?:fast\w*|slow\w*|perf\w*|speed\w*|sluggish|latency|lag\w*)\b", re.I)
_CLEANUP = re.compile(
    r"\b(?:clean\w*|tidy|refactor\w*|better|quality|mess\w*|improve\w*|polish|nicer|clunky)\b",
    re.I,
)
_TESTS = re.compile(r"\btests?\b|\bspecs?\b|\bci\b", re.I)
_FIX = re.compile(r"\bfix(?!ture)\w*\b|\brepair\b|\bbroken\b", re.I)


def _wording_interpretation(goal: str) -> str:
    if _FIX.search(goal) and _TESTS.search(goal):
        return "Make the currently failing tests pass with the smallest fix; change nothing else."
    if _FIX.search(goal):
        return (
            "Fix only the most evident existing failure (a failing test, build or lint error) "
            "with the smallest change; change nothing else."
        )
    if _PERF.search(goal):
        return (
            "Find the single most obvious slowdown and remove it without changing behaviour; "
            "change nothing else."
        )
    if _CLEANUP.search(goal):
        where = " in the tests" if _TESTS.search(goal) else ""
        return f"Make one small, behaviour-preserving cleanup{where} in the most obvious spot; change nothing else."
    if _TESTS.search(goal):
        return "Make the existing test suite pass with the smallest fix; if it already passes, change nothing."
    quoted = " ".join(goal.split())[:120]
    return f'Read "{quoted}" as one small change at its most obvious target; change nothing else.'


def _question_interpretation(goal: str) -> str:
    quoted = " ".join(goal.split())[:160]
    return (
        f'Investigate "{quoted}" and explain the answer; change code only if one small fix '
        "for exactly that is evident, and nothing else."
    )


def assess(goal: str) -> Vagueness | None:
    """Why ``goal`` is vague and its smallest safe reading, or None when it is concrete."""
    if not goal.strip():
        return Vagueness("empty goal", "No goal was given: change nothing.", 0.95)
    word_count = len(goal.split())  # on the whole goal: bounding must not add words
    text = bounded(goal.strip())
    urls = find_urls(text)
    prose = without_urls(text)
    content = [w for w in words(prose) if w not in _FILLER_WORDS]
    if urls and not content:
        kind = url_kind(urls[0])
        noun = {"pull": "pull request", "issue": "issue", "ci": "CI run", "commit": "commit"}
        what = noun.get(kind, "page")
        article = "an" if what[0] in "aeiou" else "a"
        return Vagueness(
            f"a bare link to {article} {what} with no instruction",
            _link_interpretation(urls[0]),
            0.9,
        )
    if word_count < MIN_WORDS:
        interpretation = _link_interpretation(urls[0]) if urls else _wording_interpretation(text)
        return Vagueness("under four words: too short to plan from", interpretation, 0.9)
    if split_trace(text).trace_lines or _has_directive(prose):
        return None
    sentences = _sentences(prose)
    if sentences and all(_is_question(s) for s in sentences):
        return Vagueness("a question, not an instruction", _question_interpretation(text), 0.8)
    if urls:
        return Vagueness(
            "a link without a concrete instruction", _link_interpretation(urls[0]), 0.75
        )
    return Vagueness("no concrete change named", _wording_interpretation(text), 0.7)
