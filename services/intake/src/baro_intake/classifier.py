"""The offline intake: goal -> focused, sequential or parallel, with a reason and caps.

Deterministic, zero tokens, a fraction of a millisecond for ordinary goals. The rules,
in order:

1. Vague goals (empty, under four words, a bare link, a question, no concrete target)
   are focused and flagged, with the smallest safe reading written out.
2. A pasted error or stack trace is one bug: focused.
3. Parallel needs proof: at least two *named* units in an enumeration, no shared write
   surface, no ordering, not a mechanical or follow-up edit, and either an explicit
   independence cue ("each", "its own", "independent") or real per-unit work.
4. Ordered steps ("first ... then ...", "1. 2. 3.") over shared code are sequential,
   unless the goal is a small change (bugfix, follow-up, rename, typo, bump) that
   merely mentions an order.
5. Everything else is focused: when unsure, one agent.

Confidence reflects how direct the evidence is, so a wrong answer tends to come with a
lower number than a right one (the labelled goal set in tests/intake measures this).
"""

from __future__ import annotations

from dataclasses import dataclass

from baro_intake.caps import caps_for
from baro_intake.vagueness import assess
from baro_shared.goals.shape import (
    SMALL_SHAPES,
    Steps,
    is_bug_reproduction,
    shared_surface_cue,
    small_change_shapes,
    unnamed_repetition,
)
from baro_shared.goals.split import GoalSplit, split_prose
from baro_shared.goals.text import (
    HEAVY_VERBS,
    LIGHT_VERBS,
    bounded,
    clauses,
    find_urls,
    spell,
    split_trace,
    url_kind,
    verb_of,
    without_urls,
)
from baro_shared.goals.units import NamedUnits, mentioned_paths
from baro_shared.schemas import Caps, IntakeDecision, Mode

MAX_EVIDENCE = 16

_SHAPE_REASONS = {
    "follow-up": "a follow-up on existing work or review feedback: one focused change",
    "rename": "a rename or move is one coherent change across its call sites",
    "typo": "a typo or wording fix: one small edit",
    "error-message": "an error-message change: one small edit",
    "bump": "a dependency bump and the fixes it needs: one focused change",
    "bugfix": "a bug report: one focused fix",
}
_SHAPE_CONFIDENCE = {
    "follow-up": 0.9,
    "rename": 0.85,
    "typo": 0.85,
    "error-message": 0.85,
    "bump": 0.85,
    "bugfix": 0.8,
}


@dataclass(frozen=True, slots=True)
class GoalReading:
    """Everything the rules look at, read once from the goal."""

    prose: str
    error_line: str | None
    has_trace: bool
    urls: tuple[str, ...]
    shapes: tuple[str, ...]
    split: GoalSplit
    shared_cue: str | None
    head_verb: str | None
    paths: tuple[str, ...]

    @property
    def units(self) -> NamedUnits:
        return self.split.units

    @property
    def steps(self) -> Steps:
        return self.split.steps

    @property
    def independence_cue(self) -> str | None:
        return self.split.cue


def read_goal(goal: str) -> GoalReading:
    split = split_trace(bounded(goal))
    urls = tuple(find_urls(split.prose))
    prose = without_urls(split.prose)
    shapes = small_change_shapes(prose)
    if any(url_kind(u) == "pull" for u in urls) and "follow-up" not in shapes:
        shapes = ("follow-up", *shapes)
    head_verb = next((v for v in map(verb_of, clauses(prose)) if v), None)
    structure = split_prose(prose)
    units = structure.units
    shared_cue = shared_surface_cue(prose)
    if shared_cue is None and units.count >= 2 and units.shared_file:
        shared_cue = f"all in {units.shared_file}"
    return GoalReading(
        prose=prose,
        error_line=split.error_line,
        has_trace=bool(split.trace_lines),
        urls=urls,
        shapes=shapes,
        split=structure,
        shared_cue=shared_cue,
        head_verb=head_verb,
        paths=tuple(mentioned_paths(prose)),
    )


# --------------------------------------------------------------------------- decisions


def _decision(
    mode: Mode,
    confidence: float,
    reason: str,
    evidence: list[str],
    caps: Caps | None = None,
    *,
    vague: bool = False,
    interpretation: str | None = None,
) -> IntakeDecision:
    return IntakeDecision(
        mode=mode,
        confidence=round(min(1.0, max(0.0, confidence)), 2),
        reason=" ".join(reason.split()),
        vague=vague,
        interpretation=interpretation,
        caps=caps or caps_for(mode, 1),
        source="offline",
        evidence=evidence[:MAX_EVIDENCE],
    )


def _context_evidence(reading: GoalReading) -> list[str]:
    found: list[str] = []
    if reading.error_line:
        found.append(reading.error_line[:120])
    found.extend(reading.urls)
    found.extend(reading.paths)
    return found


def _mechanical(reading: GoalReading) -> bool:
    """One light edit over every unit ("remove the unused imports from a, b and c"); a list
    of unrelated tasks is mechanical only when each of them is."""
    if reading.units.kind == "tasks":
        return all(verb_of(part.text) in LIGHT_VERBS for part in reading.split.parts)
    return reading.head_verb in LIGHT_VERBS


def _parallel(reading: GoalReading) -> IntakeDecision | None:
    """Parallel only for a goal the planner splits into independent units (the same
    reading, ``baro_shared.goals.split``), and only when splitting pays."""
    units = reading.units
    if reading.split.kind != "units":
        return None
    if _mechanical(reading) or any(s in SMALL_SHAPES for s in reading.shapes):
        return None
    is_bug = "bugfix" in reading.shapes
    count_stated = units.count in units.stated_counts
    heavy = reading.head_verb in HEAVY_VERBS
    if not (reading.independence_cue or (not is_bug and (heavy or count_stated))):
        return None
    confidence = 0.55
    confidence += 0.2 if reading.independence_cue else 0.0
    confidence += 0.1 if count_stated else 0.0
    confidence += 0.05 if units.count >= 3 else 0.0
    confidence += 0.05 if heavy else 0.0
    confidence -= 0.1 if is_bug else 0.0
    reason = f"{spell(units.count)} named {units.kind} with no shared write surface"
    if reading.independence_cue:
        reason += f' ("{reading.independence_cue}")'
    registering = 1 if reading.split.registers else 0
    if registering:
        reason += f"; one more story may register the new {units.kind}"
    return _decision(
        "parallel",
        min(confidence, 0.95),
        reason,
        list(units.labels),
        caps_for("parallel", units.count, after=registering),
    )


def _sequential(reading: GoalReading) -> IntakeDecision | None:
    """Sequential only for a goal the planner splits into steps."""
    steps = reading.steps
    if reading.split.kind != "steps":
        return None
    small = [s for s in reading.shapes if s in SMALL_SHAPES]
    if "follow-up" in small or is_bug_reproduction(reading.prose):
        return None
    strongly_ordered = len(steps.numbered) >= 3 or len(steps.markers) >= 2
    if (small or "bugfix" in reading.shapes) and not (strongly_ordered and steps.count >= 3):
        return None
    penalty = 0.1 if small or "bugfix" in reading.shapes else 0.0
    if steps.ordered and steps.count >= 2:
        if len(steps.numbered) >= 2:
            how = "numbered steps"
            confidence = 0.85
        else:
            shown = ", ".join(dict.fromkeys(steps.markers))
            how = f'steps in order ("{shown}")'
            confidence = 0.85 if len(steps.markers) >= 2 else 0.75
        reason = f"{spell(steps.count)} {how} that build on shared code"
        return _decision(
            "sequential",
            confidence - penalty,
            reason,
            steps.summaries(),
            caps_for("sequential", steps.count),
        )
    if steps.listed:
        reason = (
            f"one feature in {spell(steps.count)} parts over shared code; "
            "no independent write surfaces shown"
        )
        return _decision(
            "sequential",
            0.6 - penalty,
            reason,
            steps.summaries(),
            caps_for("sequential", steps.count),
        )
    return None


def _focused(reading: GoalReading) -> IntakeDecision:
    evidence = _context_evidence(reading)
    units = reading.units
    competing = units.count >= 2 or reading.steps.ordered
    if units.count >= 2 and reading.shared_cue:
        reason = f'{spell(units.count)} named {units.kind} share one write surface ("{reading.shared_cue}")'
        return _decision("focused", 0.8, reason, evidence)
    shape = next((s for s in reading.shapes), None)
    if shape is not None:
        confidence = _SHAPE_CONFIDENCE[shape] - (0.1 if competing else 0.0)
        return _decision("focused", confidence, _SHAPE_REASONS[shape], evidence)
    if reading.shared_cue:
        return _decision(
            "focused",
            0.8,
            f'the changes share one write surface ("{reading.shared_cue}")',
            evidence,
        )
    if units.count >= 2 and _mechanical(reading):
        reason = (
            f'a mechanical edit ("{reading.head_verb}") over {spell(units.count)} {units.kind}: '
            f"one agent is cheaper than {spell(units.count)}"
        )
        return _decision("focused", 0.75, reason, evidence)
    if units.count >= 2 and reading.split.refused:
        reason = f"{spell(units.count)} named {units.kind}, but {reading.split.refused}: one agent"
        return _decision("focused", 0.6, reason, evidence)
    if units.count >= 2:
        reason = (
            f"{spell(units.count)} named {units.kind}, but nothing shows they are independent: "
            "focused to be safe"
        )
        return _decision("focused", 0.55, reason, evidence)
    repeated = unnamed_repetition(reading.prose)
    if repeated:
        reason = f'the work repeats over "{repeated}" but names none of them: one agent'
        return _decision("focused", 0.6, reason, evidence)
    if reading.steps.count >= 3:
        reason = "several changes with no stated order or independent units: one agent to be safe"
        return _decision("focused", 0.55, reason, evidence)
    return _decision(
        "focused", 0.7, "one change to one surface; no ordered steps or independent units", evidence
    )


def _decide(goal: str) -> IntakeDecision:
    vagueness = assess(goal)
    if vagueness is not None:
        return _decision(
            "focused",
            vagueness.certainty,
            f"vague goal ({vagueness.reason}): taking the smallest safe reading",
            find_urls(bounded(goal)),
            vague=True,
            interpretation=vagueness.interpretation,
        )
    reading = read_goal(goal)
    if reading.has_trace:
        error = f" ({reading.error_line[:60]})" if reading.error_line else ""
        return _decision(
            "focused",
            0.9,
            f"a pasted error{error} points at one failure: one focused fix",
            _context_evidence(reading),
        )
    return _parallel(reading) or _sequential(reading) or _focused(reading)


def classify(goal: str) -> IntakeDecision:
    """Decide the shape of a run offline. Never raises; the same goal, the same answer."""
    try:
        return _decide(goal if isinstance(goal, str) else "")
    except Exception:  # a classifier bug must not stop a run: fall back to the safe shape
        return _decision(
            "focused", 0.3, "the goal could not be read; defaulting to one focused agent", []
        )
