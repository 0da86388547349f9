"""The shape of a goal: small-change kinds, ordered steps, shared and independent surfaces."""

from __future__ import annotations

import re
from dataclasses import dataclass

from baro_intake.goal_text import FAILURE, clauses, parse_count, verb_of

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
            r"\b[a-z][\w-]*\s*(?:[<>]=?|==|~=)\s*\d",
            re.I,
        ),
    ),
    ("bugfix", re.compile(rf"\bfix(?:es|ed|ing)?\b|{FAILURE.pattern}", re.I)),
)


_REPRO = re.compile(
    r"\bsteps?\s+to\s+reproduce\b|\brepro(?:duction)?\s+steps\b|\bto\s+reproduce\b|"
    r"\b(?:expected|actual)(?:\s+(?:result|behaviou?r))?\s*:",
    re.I,
)


def is_bug_reproduction(prose: str) -> bool:
    """Numbered "steps to reproduce" describe a bug, not a plan."""
    return _REPRO.search(prose) is not None


def small_change_shapes(prose: str) -> tuple[str, ...]:
    """Every small-change kind the goal reads as, in order of precedence."""
    return tuple(name for name, pattern in _SHAPE_PATTERNS if pattern.search(prose))


# ------------------------------------------------------------------ shared / independent

_SHARED = re.compile(
    r"\bthe\s+same\s+(?:[\w`'\"-]+\s+){0,2}?(?:file|module|schema|class|function|helper|flag|"
    r"option|message|text|string|error|component|table|config|code|place|interface|handler|"
    r"page|struct|format|formatting|output|logic|implementation|migration|base)s?\b|\b(?:a\s+single|one\s+(?:shared\s+)?)(?:file|module|schema|migration|"
    r"helper|class|function|table|component|place|struct|message|commit|interface|handler|"
    r"config)\b(?![ \t]+(?:each|per)\b)|\b(?:they|all|which|that|these)\s+(?:all\s+)?share\b|\bshared\s+(?:by|between|"
    r"across|among)\b|\bshares?\s+(?:the|a|one|an)\b|\bsplit\s+\S+\s+into\b|\binto\s+one\b|"
    r"\bthere\s+once\b|\ball\s+(?:live|are|sit)\s+in\b|\bin\s+one\s+place\b",
    re.I,
)
_ALREADY_EXISTS = re.compile(r"\balready\s+exists?\b|\bread[- ]only\b|\bunchanged\b", re.I)
_INDEPENDENT = re.compile(
    r"\beach\b|\bevery\s+one\s+of\b|\bper\s+(?:module|file|package|service|page|unit|command|"
    r"endpoint|flow|script|resource|directory)\b|\b(?:its|their)\s+own\b|\bseparate(?:ly)?\b|"
    r"\bindependent(?:ly)?\b|\bunrelated\b|\bin\s+any\s+order\b|\bin\s+parallel\b|"
    r"\bdo(?:n'?t|\s+not)\s+depend\s+on\s+each\s+other\b|\bone\s+[\w-]+(?:\s+[\w-]+)?\s+(?:each|per)\b",
    re.I,
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n")


def shared_surface_cue(prose: str) -> str | None:
    """The phrase that says the work shares one write surface, if the goal has one.

    A shared surface that already exists and is only read ("the interface they implement
    already exists") does not count.
    """
    for sentence in _SENTENCE_BREAK.split(prose):
        match = _SHARED.search(sentence)
        if match and not _ALREADY_EXISTS.search(sentence):
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

_ORDERING = re.compile(
    r"""
      \bthen\b
    | \bfinally\b | \blastly\b | \bafterwards?\b | \bafter\s+that\b | \bat\s+the\s+end\b
    | \bon\s+top\b
    | \bonce\s+(?:it|that|this|they|we|you|those|these|the\s+[\w-]+\s+(?:is|are|has|have|exists?))\b
    | (?:^|[.;:!?]\s*)\s*(?:first(?:ly)?|to\s+start)\b
    | \b(?:start|begin)\s+(?:with|by)\b
    | \b[\w-]+\s+first\s*[,;]
    | \bbuilds?\s+on\b
    | \bdepends?\s+on\s+(?:the\s+)?(?:previous|earlier|first|prior|last|step)
    | (?:^|[.;:!?]\s*)after\s+[\w-]+ing\b
    | \bbefore\s+(?:we|you|[\w-]+ing)\b
    | \bin\s+(?:two|three|four|five|six|[2-9])\s+(?:steps|stages|phases|parts|passes)\b
    | \bstep\s+(?:one|two|three|four|five|six|[1-9])\b
    | \bnext\s*[,.;:]
    """,
    re.X | re.I | re.M,
)
_NUMBERED_ITEM = re.compile(
    r"^[ \t]*(?:\d{1,2}[.)]|step\s+\d{1,2}\s*[:.)-]?)[ \t]+(.+)$", re.I | re.M
)
_INLINE_NUMBER = re.compile(
    r"(?:^|[\s(:;])(?:(\d{1,2})\s*[.)]|step\s+(\d{1,2}|one|two|three|four|five|six|seven|eight)"
    r"\s*[.):,]?)\s+(?=[A-Za-z`'\"])",
    re.I,
)
# "After adding the option, ..." is itself a step.
_ORDERED_GERUND = re.compile(r"^\s*(?:after|before|once)\s+[a-z]+ing\b", re.I)
_BULLET_ITEM = re.compile(r"^[ \t]*[-*•][ \t]+(.+)$", re.M)
_STARTS_WITH_NAME = re.compile(r"^[`'\"]?[\w.-]*[/.`]|^(?:GET|POST|PUT|PATCH|DELETE)\s+/")
_HEAD = re.compile(r"^[^:\n]*?(?::|\.(?=\s)|\n)")


@dataclass(frozen=True, slots=True)
class Steps:
    markers: tuple[str, ...]  # ordering words found ("then", "finally", ...)
    numbered: tuple[str, ...]  # numbered items that are steps, not named units
    verb_clauses: tuple[str, ...]  # clauses that start with an action verb
    ordered_parts: tuple[str, ...]  # the text between ordering words ("a, then b, then c")
    listed_parts: int  # verb clauses (or bullet items) after a "feature:" head

    @property
    def ordered(self) -> bool:
        return bool(self.markers) or len(self.numbered) >= 2

    def _items(self) -> tuple[str, ...]:
        if len(self.numbered) >= 2:
            return self.numbered
        if self.markers and len(self.ordered_parts) > len(self.verb_clauses):
            return self.ordered_parts
        return self.verb_clauses

    @property
    def count(self) -> int:
        return len(self._items())

    def summaries(self) -> list[str]:
        return [_summary(item) for item in self._items()]


_SUMMARY_LEAD = re.compile(
    r"^(?:[-*•>—\u2013#\s]|\[[ xX]?\]|and\b|then\b|also\b|finally\b|lastly\b|next\b|is\b|afterwards?\b|"
    r"after\s+that\b|first(?:ly)?\b)+",
    re.I,
)


def _summary(item: str, limit: int = 60) -> str:
    text = _SUMMARY_LEAD.sub("", " ".join(item.split())).rstrip(" .;,")
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _inline_numbered(prose: str) -> tuple[str, ...]:
    """Items of an inline "1) ... 2) ..." or "Step 1: ... Step 2: ..." sequence."""
    hits = list(_INLINE_NUMBER.finditer(prose))
    items: list[str] = []
    expected = 1
    for i, hit in enumerate(hits):
        number = hit.group(1) or hit.group(2)
        if (1 if number.lower() == "one" else parse_count(number)) != expected:
            continue
        end = hits[i + 1].start() if i + 1 < len(hits) else len(prose)
        items.append(prose[hit.end() : end].strip())
        expected += 1
    return tuple(items) if len(items) >= 2 else ()


def ordered_steps(prose: str) -> Steps:
    markers = tuple(m.group(0).strip(" .,;:").lower() for m in _ORDERING.finditer(prose))
    line_items = [m.group(1) for m in _NUMBERED_ITEM.finditer(prose)]
    numbered_all = tuple(line_items) if len(line_items) >= 2 else _inline_numbered(prose)
    numbered = tuple(item for item in numbered_all if not _STARTS_WITH_NAME.match(item.strip()))
    verb_clauses = tuple(c for c in clauses(prose) if verb_of(c) or _ORDERED_GERUND.match(c))
    ordered_parts = tuple(
        part.strip(" ,;:.\n") for part in _ORDERING.split(prose) if len(part.split()) >= 2
    )

    listed_parts = 0
    head = _HEAD.match(prose)
    if head and verb_of(head.group(0)):
        rest = prose[head.end() :]
        bullets = _BULLET_ITEM.findall(rest)
        if len(bullets) >= 2:
            listed_parts = sum(1 for b in bullets if verb_of(b))
        else:
            listed_parts = sum(1 for c in clauses(rest) if verb_of(c))
    return Steps(markers, numbered, verb_clauses, ordered_parts, listed_parts)
