"""The shape of a goal: small-change kinds, ordered steps, shared and independent surfaces."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from baro_shared.goals.text import (
    ACTION_VERBS,
    CLAUSE_BREAK,
    FAILURE,
    SENTENCE_BREAK,
    clauses,
    negated,
    parse_count,
    verb_of,
    word_set,
)

# ------------------------------------------------------------------ small-change shapes

SMALL_SHAPES = ("follow-up", "rename", "typo", "error-message", "bump")

_SHAPE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "follow-up",
        re.compile(
            r"\bfollow[- ]?up\b|\breview(?:er|ers)?\b[^.\n]{0,40}\b(?:comments?|feedback|said|"
            r"asked|suggest\w*|wants?|notes?)\b|\bcode\s+review\b|\baddress(?:ing)?\s+(?:the\s+|"
            r"all\s+|my\s+)?(?:review|comments?|feedback)\b|\breview\s+(?:comments?|feedback|on)\b|"
            r"\b(?:pr|pull\s+request|mr|merge\s+request)\s*#?\s*\d+|(?<![\w&])#\d+\b|"
            r"\bsuggestions?\s+from\b|\bcomments?\s+from\s+@",
            re.I,
        ),
    ),
    (
        "rename",
        re.compile(
            r"\brenam\w*\b|(?<![\w/])s/[^/\s]+/[^/\s]*/|\bmove\s+(?:the\s+)?\S+(?:\s+\S+){0,3}?\s+"
            r"(?:from\s+\S+\s+)?(?:to|into)\s+\S+/",
            re.I,
        ),
    ),
    ("typo", re.compile(r"\btypos?\b|\bspelling\b|\bmisspel\w*|\bcopyright\b|\bwording\b", re.I)),
    (
        "error-message",
        re.compile(
            r"\berror\s+(?:message|text|string)s?\b|\b(?:show|print|say|display)s?\s+"
            r"['\"][^'\"]{3,}['\"]\s+instead\b",
            re.I,
        ),
    ),
    (
        "bump",
        re.compile(
            r"\b(?:bump|upgrade|downgrade)\w*\b|\bpin\b|\bdependabot\b|\block\s?file\b|"
            r"\blatest\s+(?:major\s+|minor\s+|patch\s+)?versions?\b|\bsecurity\s+advisory\b|"
            r"\b(?:update|move)\b[^.\n]{0,40}\bto\s+v?\d+(?:\.\d+)+\b|"
            r"(?<![\w-])[a-z][\w-]*\s*(?:[<>]=?|==|~=)\s*\d",
            re.I,
        ),
    ),
    ("bugfix", re.compile(r"\bfix(?:es|ed|ing)?\b", re.I)),
)
# "call it from useAuth.ts when a request returns 401", "show a toast if the upload fails":
# a failure named as the condition of a new behaviour is not a bug report
_FAILURE_CONDITION = re.compile(r"\b(?:when|whenever|if|unless|until|once|in\s+case)\b", re.I)
_BUG_WORK = frozenset({"fix", "debug", "repair", "investigate", "diagnose"})


def _reports_failure(prose: str) -> bool:
    """Whether the goal reports a failure: one it names that is not the condition of an
    action in the same clause ("show a toast when the upload fails" asks for behaviour;
    "if the cache is stale, fetch fails" reports a bug)."""
    for sentence in SENTENCE_BREAK.split(prose):
        failures = list(FAILURE.finditer(sentence))
        if not failures:
            continue
        if {verb_of(c) for c in clauses(sentence)} & _BUG_WORK:
            return True
        starts = [0, *(m.end() for m in CLAUSE_BREAK.finditer(sentence))]
        for failure in failures:
            clause_start = starts[bisect.bisect_right(starts, failure.start()) - 1]
            clause = sentence[clause_start : failure.start()]
            if verb_of(clause) is None or not _FAILURE_CONDITION.search(clause):
                return True
    return False


_REPRO = re.compile(
    r"\bsteps?\s+to\s+reproduce\b|\brepro(?:duction)?\s+steps\b|\bto\s+reproduce\b|"
    r"\b(?:expected|actual)(?:\s+(?:result|behaviou?r))?\s*:",
    re.I,
)


def is_bug_reproduction(prose: str) -> bool:
    """Numbered "steps to reproduce" describe a bug, not a plan."""
    return _REPRO.search(prose) is not None


# what a goal leads with, not what one of its later steps touches: "Implement Display for
# Token, then use it in the error messages" is a feature, not an error-message edit
_LEADING_ONLY = frozenset({"error-message"})


def small_change_shapes(prose: str) -> tuple[str, ...]:
    """Every small-change kind the goal reads as, in order of precedence."""
    lead = next(iter(clauses(prose)), "")
    return tuple(
        name
        for name, pattern in _SHAPE_PATTERNS
        if pattern.search(lead if name in _LEADING_ONLY else prose)
        or (name == "bugfix" and _reports_failure(prose))
    )


# ------------------------------------------------------------------ shared / independent

_SHARED = re.compile(
    r"\bthe\s+same\s+(?:[\w`'\"-]+\s+){0,2}?(?:file|module|schema|class|function|helper|flag|"
    r"option|message|text|string|error|component|table|config|code|place|interface|handler|"
    r"page|struct|format|formatting|output|logic|implementation|migration|base)s?\b(?![ \t]+as\b)|\b(?:a\s+single|one\s+(?:shared\s+)?)(?:file|module|schema|migration|"
    r"helper|class|function|table|component|place|struct|message|commit|interface|handler|"
    r"config)\b(?![ \t]+(?:each|per)\b)|\b(?:they|all|which|that|these)\s+(?:all\s+)?share\b|\bshared\s+(?:by|between|"
    r"across|among)\b|\bshares?\s+(?:the|a|one|an)\b|\bsplit\s+\S+\s+into\b|\binto\s+one\b|"
    r"\bthere\s+once\b|\ball\s+(?:live|are|sit)\s+in\b|\bin\s+one\s+place\b",
    re.I,
)
ALREADY_EXISTS = re.compile(r"\balready\s+exists?\b|\bread[- ]only\b|\bunchanged\b", re.I)
_INDEPENDENT = re.compile(
    r"\beach\b|\bevery\s+one\s+of\b|\b(?:per|every)\s+(?:module|file|package|service|page|unit|command|"
    r"endpoint|flow|script|resource|directory)\b|\b(?:its|their)\s+own\b|\bseparate(?:ly)?\b|"
    r"\bindependent(?:ly)?\b|\bunrelated\b|\bin\s+any\s+order\b|\bin\s+parallel\b|"
    r"\bdo(?:n'?t|\s+not)\s+depend\s+on\s+each\s+other\b|\bone\s+[\w-]+(?:\s+[\w-]+)?\s+(?:each|per)\b",
    re.I,
)


def shared_surface_cue(prose: str) -> str | None:
    """The phrase that says the work shares one write surface, if the goal has one.

    A shared surface that already exists and is only read ("the interface they implement
    already exists") does not count.
    """
    for sentence in SENTENCE_BREAK.split(prose):
        match = next(
            (m for m in _SHARED.finditer(sentence) if not negated(sentence, m.start())), None
        )
        if match and not ALREADY_EXISTS.search(sentence):
            return match.group(0)
    return None


_UNNAMED_REPETITION = re.compile(
    r"\b(?:each\s+of\s+the|every|all(?:\s+the|\s+our)?)\s+(?:[\w-]+\s+)?(?:service|package|"
    r"module|endpoint|command|page|script|file|component|app|plugin|adapter|crate|library|"
    r"handler|controller|route|test)s?\b",
    re.I,
)


def unnamed_repetition(prose: str) -> str | None:
    """ "every service", "all the modules": work over units the goal does not name."""
    match = _UNNAMED_REPETITION.search(prose)
    return match.group(0) if match else None


def independence_cue(prose: str) -> str | None:
    match = _INDEPENDENT.search(prose)
    return match.group(0) if match else None


# ------------------------------------------------------------------ ordered steps

# "first in packages/core, then …, and last packages/cli" (not "and last year's report")
_AND_LAST = r"and\s+last(?:ly)?\b(?!\s+(?:year|week|month|night|day|time|one|release|version|commit|run)s?\b)"
_ORDERING = re.compile(
    r"""
      \bthen\b
    | \b"""
    + _AND_LAST
    + r"""
    | \bfinally\b | \blastly\b | \bafterwards?\b | \bafter\s+that\b | \bat\s+the\s+end\b
    | \bon\s+top\b
    | \bonce\s+(?:it|that|this|they|we|you|those|these|the\s+[\w-]+\s+(?:is|are|has|have|exists?))\b
    | \b(?:when|once)\s+(?:that|this|it)(?:'s|\s+is)\s+(?:done|in|finished|merged|working|ready|landed)\b
    | \bonce\s+(?:done|finished|merged)\b
    | (?:^|[.;:!?]|\s[—\u2013-])[ \t]*(?:first(?:ly)?|to\s+start)\b
    | \b(?:start|begin)\s+(?:with|by)\b
    | (?<![\w-])[\w-]+\s+first\s*(?:[,;]|\.(?:\s|$)|$)
    | \bbuilds?\s+on\b
    | \bdepends?\s+on\s+(?:the\s+)?(?:previous|earlier|first|prior|last|step)
    | (?:^|[.;:!?])[ \t]*after\s+[\w-]+ing\b
    | \bbefore\s+(?:we|you|[\w-]+ing)\b
    | \bin\s+(?:two|three|four|five|six|[2-9])\s+(?:steps|stages|phases|parts|passes)\b
    | \bstep\s+(?:one|two|three|four|five|six|[1-9])\b
    | \bnext\s*[,.;:]
    | \bin\s+(?:that|this|the\s+(?:given|listed|same))\s+order\b
    """,
    re.X | re.I | re.M,
)
_WORD = re.compile(r"[^\W_]")
_NUMBERED_ITEM = re.compile(
    r"^[ \t]*(?:\d{1,2}[.)]|step\s+\d{1,2}\s*[:.)-]?)[ \t]+(.+)$", re.I | re.M
)
_INLINE_NUMBER = re.compile(
    r"(?:^|[\s(:;])(?:(\d{1,2})\s*[.)]|step\s+(\d{1,2}|one|two|three|four|five|six|seven|eight)"
    r"\s*[.):,]?)\s+(?=[A-Za-z`'\"])",
    re.I,
)
# "After adding the option, ..." is itself a step; "Before touching the export, ..." is a
# condition on the step it leads into.
_ORDERED_GERUND = re.compile(r"^\s*(?:after|once)\s+[a-z]+ing\b", re.I)
_BULLET_ITEM = re.compile(r"^[ \t]*[-*•][ \t]+(.+)$", re.M)
_STARTS_WITH_NAME = re.compile(r"^[`'\"]?[\w.-]*[/.`]|^(?:GET|POST|PUT|PATCH|DELETE)\s+/")
_HEAD = re.compile(r"^[^:\n]*?(?::|\.(?=\s)|\n)")


# "2. src/hooks/useAuth.ts: catch it and clear the session": a step led by its file
_LED_BY_NAME = re.compile(r"[`'\"]?[\w./-]+[`'\"]?(?:[ \t]*:|[ \t]+[—\u2013-])[ \t]+(\S+)\s+\S")


def _steps_by_file(items: Sequence[str]) -> bool:
    """Numbered items each led by the file it changes and then a different action are
    steps ("1. client.ts: surface 401s … 2. useAuth.ts: catch it …"); the same action on
    each ("1. packages/core: add a README") makes them units."""
    led = [_LED_BY_NAME.match(item.strip()) for item in items]
    if not all(led):
        return False
    actions = {m.group(1).lower() for m in led if m is not None}
    return len(actions) == len(items)


@dataclass(frozen=True, slots=True)
class Steps:
    markers: tuple[str, ...]  # ordering words found ("then", "finally", ...)
    numbered: tuple[str, ...]  # numbered items that are steps, not named units
    parts: tuple[str, ...]  # the text of each step, in order (the head left out)
    head: str | None  # the feature the steps build ("Add webhook notifications:")

    @property
    def ordered(self) -> bool:
        return bool(self.markers) or len(self.numbered) >= 2

    @property
    def listed(self) -> bool:
        """Three or more actions under a feature head, with no stated order."""
        return not self.ordered and self.head is not None and len(self.parts) >= 3

    @property
    def count(self) -> int:
        return len(self.parts)

    def summaries(self) -> list[str]:
        return [_summary(item) for item in self.parts]


_SUMMARY_LEAD = re.compile(
    r"^(?:[-*•>—\u2013#\s]|\[[ xX]?\]|"
    + _AND_LAST
    + r"|and\b|then\b|also\b|finally\b|lastly\b|next\b|is\b|afterwards?\b|"
    r"after\s+that\b|first(?:ly)?\b)+",
    re.I,
)


def _summary(item: str, limit: int = 60) -> str:
    text = _SUMMARY_LEAD.sub("", " ".join(item.split())).rstrip(" .;,")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _inline_numbered(prose: str) -> tuple[tuple[str, ...], int]:
    """Items of an inline "1) ... 2) ..." or "Step 1: ... Step 2: ..." sequence, and where
    the first one starts."""
    hits = list(_INLINE_NUMBER.finditer(prose))
    items: list[str] = []
    first = -1
    expected = 1
    for i, hit in enumerate(hits):
        number = hit.group(1) or hit.group(2)
        if (1 if number.lower() == "one" else parse_count(number)) != expected:
            continue
        end = hits[i + 1].start() if i + 1 < len(hits) else len(prose)
        items.append(prose[hit.end() : end].strip())
        if expected == 1:
            first = hit.start()
        expected += 1
    return (tuple(items), first) if len(items) >= 2 else ((), -1)


_STEP_BREAK = re.compile(
    r"[;,\n]|\.(?=\s|$)|:(?=\s)|\s[—\u2013]\s"
    r"|(?<!\bonly)(?<!\s)\s+(?=(?:and\s+|only\s+)?(?:then|finally|afterwards|after\s+that|lastly)\b)"
    r"|(?<!\s)\s+(?=" + _AND_LAST + ")"
    r"|(?<!\s)\s+(?=and\s+(?:" + "|".join(sorted(ACTION_VERBS)) + r")\b)",
    re.I,
)
_STEP_OPENER = re.compile(
    r"^(?:"
    + _AND_LAST
    + r"|(?:and\s+)?(?:(?:start|begin)\s+(?:by|with)|to\s+start|(?:only\s+)?then|finally|lastly|next|"
    r"after\s+that|afterwards)\b)",
    re.I,
)
_CONDITION = re.compile(
    r"^(?:and\s+)?(?:once|when|whenever|if|unless|while|after|before|as\s+soon\s+as)\b", re.I
)
_STEP_NOTE = re.compile(
    r"\b(?:each|every|builds?\s+on|previous|in\s+(?:this\s+)?order|depends?\s+on|one\s+after)\b",
    re.I,
)
# "We need to move to pyproject.toml. First port the metadata, ...": the steps start after
# the sentence, which is what they build
_FIRST_LEAD = re.compile(r"^(?:first(?:ly)?|to\s+start|(?:start|begin)\s+(?:by|with))\b", re.I)
_IN_STEPS = re.compile(r"\bin\s+\w+\s+(?:steps|stages|phases|parts|passes)\b", re.I)
_HEAD_LINE = re.compile(r"^([^\n:]{1,120}):[ \t]*(?:\n|(?=\S))")
_HEAD_SENTENCE = re.compile(r"^((?:[^\n.!?]|\.(?=\w)){1,80})[.!?](?:\s+|$)")  # "setup.py" goes on
_HEAD_DASH = re.compile(
    r"^([^\n]{1,160}?)[ \t][—\u2013-][ \t]+(?=(?:first(?:ly)?|to\s+start|(?:start|begin)\s+(?:by|with))\b)",
    re.I,
)
_LINE_ITEM = re.compile(r"^[ \t]*(?:[-*•]|\d{1,2}[.)])[ \t]+(.+)$", re.M)


def _starts_step(clause: str) -> bool:
    return bool(
        verb_of(clause) or _ORDERED_GERUND.match(clause) or _STEP_OPENER.match(clause.strip())
    )


# "if the cache is stale": a word after these is a noun (or an infinitive), not an action
_NOT_BEFORE_A_VERB = word_set(
    "the a an this that these those its their our my your all every each some any no to of "
    "for in on with by"
)


def _acts_after_condition(clause: str) -> bool:
    """ "after it exists add the invoices endpoint": a condition with its own action (a
    verb with something after it), not only a condition for the next clause."""
    if not _CONDITION.match(clause):
        return False
    words = [w.lower() for w in clause.split()]
    return any(
        words[i] in ACTION_VERBS and words[i - 1] not in _NOT_BEFORE_A_VERB
        for i in range(2, len(words) - 1)
    )


def _clause_steps(body: str) -> list[str]:
    """The actions of a run of prose, in order: a clause that starts with an action verb
    (or an ordering word and one) starts a step; others belong to the step before them, or
    (a condition like "once it exists") to the step after."""
    steps: list[str] = []
    prefix = ""
    for raw in _STEP_BREAK.split(body):
        clause = raw.strip(" \t,;:.")
        if not clause:
            continue
        if _starts_step(clause) or _acts_after_condition(clause):
            steps.append(f"{prefix}, {clause}" if prefix else clause)
            prefix = ""
        elif _CONDITION.match(clause):
            prefix = f"{prefix}, {clause}" if prefix else clause
        elif steps and not _STEP_NOTE.search(clause):
            steps[-1] = f"{steps[-1]}, {clause}"
        elif not steps:
            steps.append(f"{prefix}, {clause}" if prefix else clause)
            prefix = ""
    if prefix:  # "…, and once that works remove the float helpers": a step of its own
        steps.append(prefix)
    return [text for text in map(step_text, steps) if text]


_STEP_LEAD = re.compile(
    r"^(?:(?:"
    + _AND_LAST
    + r"|and|(?:only\s+)?then|also|first(?:ly)?|next|finally|lastly|afterwards?|after\s+that|"
    r"to\s+start|is)"
    r"\b[,:]?\s*|\[[ xX]?\]\s*)+",
    re.I,
)
_STEP_TAIL = re.compile(
    r"(?:[\s,;]+(?:and|then|or|afterwards|next|first|at\s+the\s+end))+$|[\s,;:.]+$", re.I
)


def step_text(text: str) -> str:
    """One step as it reads on its own: no joiners ("and then ...") at either end."""
    text = " ".join(text.split())
    text = _STEP_LEAD.sub("", text)
    previous = None
    while previous != text:
        previous, text = text, _STEP_TAIL.sub("", text)
    return text


def _split_head(prose: str) -> tuple[str | None, str]:
    """A feature head before the steps ("Add webhook notifications: ...", "Add avatars. ...")."""
    text = prose.strip()
    line = _HEAD_LINE.match(text)
    if line and (not _ORDERING.search(line.group(1)) or _IN_STEPS.search(line.group(1))):
        return line.group(1).strip(), text[line.end() :]
    dash = _HEAD_DASH.match(text)  # "Port the upload to gcs.py — first extract it, then …"
    if dash and not _ORDERING.search(dash.group(1)):
        return dash.group(1).strip(), text[dash.end() :]
    sentence = _HEAD_SENTENCE.match(text)
    if sentence and len(sentence.group(1).split()) <= 8 and not _ORDERING.search(sentence.group(1)):
        rest = text[sentence.end() :]
        opens = not _STEP_LEAD.match(rest) or _FIRST_LEAD.match(rest)
        if opens and len(_clause_steps(rest)) >= 2:
            return sentence.group(1).strip(), rest
    return None, text


def _step_parts(
    prose: str, numbered: tuple[str, ...], first_number: int
) -> tuple[str | None, tuple[str, ...]]:
    if len(numbered) >= 2:
        head = prose[:first_number].strip(" \t\n:") if first_number > 0 else ""
        return head or None, _worded(step_text(item) for item in numbered)
    head, body = _split_head(prose)
    bullets = _LINE_ITEM.findall(body)
    if len(bullets) >= 2:
        return head, _worded(step_text(b) for b in bullets if any(map(_starts_step, clauses(b))))
    return head, _worded(_clause_steps(body))


def _worded(steps: Iterable[str]) -> tuple[str, ...]:
    """The steps that say something: "1. ," or a lone "-" is not a step."""
    return tuple(step for step in steps if _WORD.search(_summary(step)))


# "…, then add a test for it": the change's own test, not a step of its own
_ITS_TEST = re.compile(
    r"^(?:(?:add|write)\s+(?:an?\s+)?(?:(?:unit|regression)\s+)?tests?\s+(?:for|covering)\s+"
    r"(?:it|this|that|them|the\s+(?:change|fix))|test\s+(?:it|this|that|them)|"
    # "then extend tests/test_items.py to cover it and the happy path"
    r"(?:extend|update|adjust)\s+(?:the\s+)?(?:tests?|[\w./-]*test[\w./-]*)\s+to\s+(?:cover|test)\s+"
    r"(?:it|this|that|them|the\s+(?:change|fix))\b.*)$",
    re.I,
)


def _with_its_tests(parts: tuple[str, ...]) -> tuple[str, ...]:
    """A step that only tests the step before it is part of that step."""
    folded: list[str] = []
    for part in parts:
        if folded and _ITS_TEST.match(_summary(part)):
            folded[-1] = f"{folded[-1].rstrip(' .,;')}, {part.strip()}"
        else:
            folded.append(part)
    return tuple(folded)


def ordered_steps(prose: str) -> Steps:
    markers = tuple(m.group(0).strip(" \t.,;:—\u2013-").lower() for m in _ORDERING.finditer(prose))
    line_hits = list(_NUMBERED_ITEM.finditer(prose))
    if len(line_hits) >= 2:
        numbered_all = tuple(m.group(1) for m in line_hits)
        first_number = line_hits[0].start()
        # what follows the list ("Keep each step small.") goes with its last step, as a
        # clause that starts no step goes with the step before it
        tail = " ".join(prose[line_hits[-1].end() :].split())
        if tail:
            numbered_all = (*numbered_all[:-1], f"{numbered_all[-1]}. {tail}")
    else:
        numbered_all, first_number = _inline_numbered(prose)
    numbered_all = tuple(item for item in numbered_all if _WORD.search(_summary(item)))
    numbered = tuple(item for item in numbered_all if not _STARTS_WITH_NAME.match(item.strip()))
    if _steps_by_file(numbered_all):
        numbered = numbered_all
    elif len(numbered) != len(numbered_all):
        numbered = ()  # a numbered list of names is a list of units, not steps
    head, parts = _step_parts(prose, numbered, first_number)
    return Steps(markers, numbered, _with_its_tests(parts), head)
