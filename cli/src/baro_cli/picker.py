"""The mode picker: the intake's suggestion preselected; Enter accepts, arrows move.

It draws on stderr (where progress goes), so ``baro run --json > out.json`` keeps stdout
clean, and returns None when the user cancels with Esc or Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from baro_shared import schemas as s

MODES: tuple[s.Mode, ...] = ("focused", "sequential", "parallel")
DESCRIPTIONS: dict[s.Mode, str] = {
    "focused": "one story, one agent (bugfixes, follow-ups, one surface)",
    "sequential": "ordered steps, one agent at a time",
    "parallel": "independent units side by side (more tokens, less wall-clock)",
}
INSTRUCTION = "(Enter accepts, arrows move, Esc cancels)"
UNKNOWN = "cost unknown (no past runs like it here)"


def _tokens(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def estimate_json(estimate: s.Estimate) -> dict[str, Any]:
    """Every field, unknowns as null (the bus encoding leaves defaults out)."""
    return {
        "mode": estimate.mode,
        "samples": estimate.samples,
        "tokens": estimate.tokens,
        "wall_s": estimate.wall_s,
    }


def estimate_line(estimate: Mapping[str, Any] | s.Estimate) -> str:
    """'~12k tokens, ~1m20s (3 past runs)', or that the cost is unknown."""
    est = estimate if isinstance(estimate, Mapping) else estimate_json(estimate)
    samples = int(est.get("samples") or 0)
    if samples <= 0:
        return UNKNOWN
    tokens, wall = est.get("tokens"), est.get("wall_s")
    parts = [
        f"~{_tokens(int(tokens))} tokens" if tokens is not None else "tokens unknown",
        f"~{_duration(float(wall))}" if wall is not None else "time unknown",
    ]
    return f"{', '.join(parts)} ({samples} past run{'s' if samples != 1 else ''})"


def estimate_for(decision: s.IntakeDecision, mode: s.Mode) -> str:
    for est in decision.estimates:
        if est.mode == mode:
            return estimate_line(est)
    return UNKNOWN


def headline(decision: s.IntakeDecision) -> str:
    text = (
        f"baro suggests: {decision.mode} ({decision.confidence:.0%} confident) — {decision.reason}"
    )
    if decision.vague:
        text += f"\n  ⚠ vague goal, read as: {decision.interpretation}"
    return text


def choice_title(decision: s.IntakeDecision, mode: s.Mode) -> str:
    return f"{mode:<10} {DESCRIPTIONS[mode]} — {estimate_for(decision, mode)}"


def pick_mode(decision: s.IntakeDecision) -> s.Mode | None:
    """Ask on the terminal; None when the user cancels (Esc or Ctrl-C)."""
    import questionary
    from prompt_toolkit.output import create_output

    choices = [questionary.Choice(title=choice_title(decision, m), value=m) for m in MODES]
    question = questionary.select(
        headline(decision),
        choices=choices,
        default=next(c for c in choices if c.value == decision.mode),
        instruction=INSTRUCTION,
        output=create_output(stdout=sys.stderr),
    )
    try:
        chosen = ask_or_cancel(question)
    except (KeyboardInterrupt, EOFError):
        return None
    return chosen if chosen in MODES else None


def ask_or_cancel(question: Any) -> Any:
    """Ask a questionary question on which Esc cancels like Ctrl-C (KeyboardInterrupt)."""
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent, merge_key_bindings
    from prompt_toolkit.keys import Keys

    escape = KeyBindings()

    @escape.add(Keys.Escape, eager=True)
    def _cancel(event: KeyPressEvent) -> None:
        event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    app = question.application
    app.key_bindings = (
        merge_key_bindings([app.key_bindings, escape]) if app.key_bindings else escape
    )
    return question.unsafe_ask()
