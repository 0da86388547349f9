"""Reading a goal as text: pasted logs, links, clauses and the verbs that start them.

Everything here is a pure function of the goal string. The classifier reads at most
``MAX_GOAL_CHARS`` of a goal, its beginning and its end: a pasted log can be megabytes
long, and the shape of a run is decided by the words around it (often the first and the
last lines), not by its thousandth stack frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_GOAL_CHARS = 8_000
_HEAD_CHARS = 6_000


def bounded(goal: str) -> str:
    """The goal, or its head and tail when it is longer than ``MAX_GOAL_CHARS``."""
    if len(goal) <= MAX_GOAL_CHARS:
        return goal
    return goal[:_HEAD_CHARS] + "\n" + goal[len(goal) - (MAX_GOAL_CHARS - _HEAD_CHARS) :]


# --------------------------------------------------------------------------- pasted logs

# One line of a stack trace, a test runner's failure summary or a panic message.
_TRACE_MARKER = re.compile(
    r"""^\s*(?:
        Traceback\s\(most\srecent\scall\slast\)
      | File\s"[^"]*",\sline\s\d+
      | at\s\S[^\n]*(?:\(\S*:\d+(?::\d+)?\)|:\d+(?::\d+)?\)?)\s*$
      | (?:Uncaught\s+)?(?:[\w$]+\.)*[A-Z]\w*(?:Error|Exception|Warning)\b[^\n]*$
      | Exception\sin\sthread\b
      | (?:FAILED|ERROR)\s+\S+::
      | panic:
      | goroutine\s\d+\s\[
      | thread\s'[^'\n]*'\spanicked\b
      | \[signal\s
      | (?:left|right):\s
      | E\s{2,}\S
      | [^\s()]+\([^\n]*\b0x[0-9a-f]+
      | \S+\.(?:go|rs|py|js|ts|java|kt|rb|c|cc|cpp):\d+
    )""",
    re.X,
)
_INDENTED = re.compile(r"^(?:\s{2,}|\t)\S")
_ERROR_LINE = re.compile(
    r"^[ \t]*(?:Uncaught\s+)?(?:[\w$]+\.)*[A-Z]\w*(?:Error|Exception)\b[^\n]*$|^[ \t]*panic:[^\n]*$"
    r"|^[ \t]*thread\s'[^'\n]*'\spanicked\b[^\n]*$|^[ \t]*Exception\sin\sthread\b[^\n]*$"
    r"|^[ \t]*(?:FAILED|ERROR)\s+\S+::[^\n]*$",
    re.M,
)


@dataclass(frozen=True, slots=True)
class SplitGoal:
    """The goal cut into what a person wrote (prose) and what they pasted (trace)."""

    prose: str
    trace_lines: tuple[str, ...]
    error_line: str | None


def split_trace(text: str) -> SplitGoal:
    """Separate pasted stack traces and failure summaries from the prose around them.

    A trace block starts at a marker line and continues over indented lines (code
    excerpts and frames); a blank or unindented ordinary line ends it.
    """
    prose: list[str] = []
    trace: list[str] = []
    in_trace = False
    for line in text.splitlines():
        if _TRACE_MARKER.match(line):
            trace.append(line)
            in_trace = True
        elif in_trace and _INDENTED.match(line):
            trace.append(line)
        else:
            in_trace = False
            prose.append(line)
    error = _ERROR_LINE.search("\n".join(trace))
    return SplitGoal(
        prose="\n".join(prose),
        trace_lines=tuple(trace),
        error_line=error.group(0).strip() if error else None,
    )


# --------------------------------------------------------------------------- failures

# Words that describe something going wrong: a goal that says them reports a bug.
FAILURE = re.compile(
    r"\bbugs?\b|\bcrash\w*|\bfail(?:s|ed|ing|ure|ures)?\b|\bbroken\b|\bbreaks?\b|"
    r"\bregression\b|\bexception\b|\bpanic\w*|\bleak\w*|\bflaky\b|\bhangs?\b|\bhanging\b|"
    r"\bdeadlock\w*|\bwrong\b|\bincorrect\w*|\btruncat\w*|\bcorrupt\w*|\bgoes\s+blank\b|"
    r"\bshifted\b|\boff-by-one\b|\b(?:doesn'?t|does\s+not|isn'?t|won'?t|can'?t|cannot)\b|"
    r"\bdoes\s+nothing\b|\bnothing\s+happens\b|\bno\s+longer\b|\bstopped\s+working\b|"
    r"\bnot\s+working\b|\breturns?\s+(?:a\s+)?[45]\d\d\b|\b[45]\d\d\s+error\b|(?<!-)\b\w*error\b(?!-|"
    r"\s+(?:messages?|texts?|strings?|handl\w+|types?|codes?|pages?|boundar\w+|classes|shapes?|"
    r"formats?|responses?|objects?|reporting|tracking|budgets?|fields?)\b)|"
    r"\bsilently\b|\bsteps?\s+to\s+reproduce\b|\brepro(?:duction)?\s+steps\b|"
    r"\b(?:expected|actual)(?:\s+(?:result|behaviou?r))?\s*:",
    re.I,
)

# --------------------------------------------------------------------------- links

_URL = re.compile(r"\bhttps?://[^\s<>()\"'`]+", re.I)
_PR_URL = re.compile(r"/(?:pull|pulls|merge_requests|pull-requests)/(\d+)", re.I)
_ISSUE_URL = re.compile(r"/(?:issues|-/issues|work_items)/(\d+)", re.I)
_CI_URL = re.compile(r"/(?:actions/runs|pipelines|jobs|builds)/\d+", re.I)
_COMMIT_URL = re.compile(r"/commits?/[0-9a-f]{7,40}", re.I)


def find_urls(text: str) -> list[str]:
    return [m.group(0).rstrip(".,;:!?") for m in _URL.finditer(text)]


def without_urls(text: str) -> str:
    return _URL.sub(" ", text)


def url_kind(url: str) -> str:
    """``pull``, ``issue``, ``ci``, ``commit`` or ``page``."""
    if _PR_URL.search(url):
        return "pull"
    if _ISSUE_URL.search(url):
        return "issue"
    if _CI_URL.search(url):
        return "ci"
    if _COMMIT_URL.search(url):
        return "commit"
    return "page"


# --------------------------------------------------------------------------- verbs


def word_set(text: str) -> frozenset[str]:
    """A vocabulary written as one space-separated string."""
    return frozenset(text.split())


# Imperative verbs that start a piece of work. "Light" ones are mechanical edits that
# one agent does in minutes; spreading them over several agents only multiplies context.
LIGHT_VERBS = word_set(
    "replace remove delete drop rename move bump upgrade downgrade pin reformat format "
    "sort strip swap"
)
HEAVY_VERBS = word_set(
    "add write implement create build document translate port convert migrate test "
    "cover introduce generate scaffold design develop"
)
WEAK_VERBS = word_set(
    "make improve do fix clean tidy polish optimize optimise refactor handle look check "
    "review simplify speed rework redo update change"
)
ACTION_VERBS = (
    LIGHT_VERBS
    | HEAVY_VERBS
    | WEAK_VERBS
    | word_set(
        "address allow apply call compute configure deploy deprecate disable dispatch "
        "emit enable ensure expose extract fetch filter fill finish include increase "
        "inline install keep limit load log mark merge parse persist print publish put "
        "raise read record reduce register reload rewrite return run save scope send "
        "serialize set show split start stop store stream support switch thread track "
        "type use validate wire wrap append bound cache catch cap guard hide lint list "
        "normalize pass reject render restore retry skip throttle unify upload define "
        "declare connect hook plug mount embed attach refresh rebuild reorganize restructure "
        "sync verify release ship seed populate backfill expose give proofread edit reword "
        "rephrase annotate localize localise copy memoize memoise debounce paginate "
        "sanitize sanitise escape encode decode compress lazy-load prefetch reuse adopt "
        "integrate replicate reproduce containerize containerise dockerize dockerise "
        "instrument automate harden modularize modularise parallelize parallelise"
    )
)
# the blank after a sentence's end, or a line break ("Could you …? They're unrelated.")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
# a word that goes on as a file name, a path or an identifier is not a verb
_NAME_GOES_ON = re.compile(r"\.\w|[/_\w(`]")
# What registering new units is called: "register them", "include both in the app"
REGISTER_VERBS = r"(?:register|include|mount|wire(?:\s+up)?|hook\s+up|plug\s+in)"

# A class named in CamelCase, two words at least, with its last word: "OrderController"
# (controller), "CartTest" (test)
CLASS_NAME = re.compile(r"(?<![\w/.`-])`?((?:[A-Z][a-z0-9]+)+([A-Z][a-z]+))`?(?![\w/.-])")
# the class a test class is named for: "OrderTest", "OrderTests", "OrderSpec" -> "Order"
TESTED_CLASS = re.compile(r"([A-Z]\w*?)(?:Tests?|Spec)")

CLAUSE_BREAK = re.compile(r"[,;:!?\n]|\.(?=\s|$)|\s[—\u2013]\s")
_CLAUSE_LEAD = re.compile(
    r"^(?:\s|[-*•>—\u2013#]|\[[ xX]?\]|\d{1,2}[.)]|step\s+(?:\d+|one|two|three|four|five|six)\b|"
    r"and\b|(?:only\s+)?then\b|also\b|first(?:ly)?\b|next\b|finally\b|lastly\b|afterwards?\b|"
    r"after\s+that\b|please\b|now\b|just\b|we\s+(?:need|want)\s+to\b|"
    r"(?:can|could|would)\s+you\b|i'?d\s+like\s+(?:you\s+)?to\b|let'?s\b|"
    r"start\s+(?:by|with)\b)+",
    re.I,
)


_NEGATION_BEFORE = re.compile(
    r"\b(?:not|no|never|nothing|without|neither|nor|(?:do|does|did|wo|ca|is|are)n'?t)"
    r"\s+(?:[\w-]+\s+){0,2}$",
    re.I,
)


def negated(text: str, start: int) -> bool:
    """Whether the word at ``start`` is denied by a negation just before it ("they don't
    share code", "no tests for a.py or b.py")."""
    return bool(_NEGATION_BEFORE.search(text, max(0, start - 40), start))


def verb_of(clause: str) -> str | None:
    """The action verb a clause starts with ("then add a sender" -> "add"), if any."""
    rest = _CLAUSE_LEAD.sub("", clause.strip()).lstrip()
    word = _WORD.match(rest)
    if word is None or _NAME_GOES_ON.match(rest, word.end()):  # "format.ts and date.ts ..."
        return None
    verb = word.group(0).lower()
    if verb.startswith("re-"):
        verb = verb[3:]
    return verb if verb in ACTION_VERBS else None


def clauses(prose: str) -> list[str]:
    return [c.strip() for c in CLAUSE_BREAK.split(prose) if c.strip()]


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


# --------------------------------------------------------------------------- numbers

NUMBER_WORDS: dict[str, int] = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
}
_SPELLED = {n: w for w, n in NUMBER_WORDS.items()}


def spell(n: int) -> str:
    return _SPELLED.get(n, str(n))


def parse_count(token: str) -> int | None:
    token = token.lower()
    if token.isdigit():
        return int(token)
    return NUMBER_WORDS.get(token)


# --------------------------------------------------------------------------- languages

# The languages a goal names its translations by, with the code their files carry
# (README.de.md, locales/de.json).
LANGUAGE_CODES: dict[str, str] = {
    "arabic": "ar", "catalan": "ca", "chinese": "zh", "czech": "cs", "danish": "da",
    "dutch": "nl", "english": "en", "finnish": "fi", "french": "fr", "german": "de",
    "greek": "el", "hebrew": "he", "hindi": "hi", "hungarian": "hu", "indonesian": "id",
    "italian": "it", "japanese": "ja", "korean": "ko", "norwegian": "no", "polish": "pl",
    "portuguese": "pt", "romanian": "ro", "russian": "ru", "spanish": "es", "swedish": "sv",
    "thai": "th", "turkish": "tr", "ukrainian": "uk", "vietnamese": "vi",
}  # fmt: skip
