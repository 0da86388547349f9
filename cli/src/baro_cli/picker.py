"""The mode picker: the intake's suggestion preselected; Enter accepts, arrows move."""

from __future__ import annotations

from baro_shared import schemas as s

MODES: tuple[s.Mode, ...] = ("focused", "sequential", "parallel")
DESCRIPTIONS = {
    "focused": "one story, one agent (bugfixes, follow-ups, one surface)",
    "sequential": "ordered steps, one agent at a time",
    "parallel": "independent units side by side (costs more tokens, saves wall-clock)",
}


def estimate_text(decision: s.IntakeDecision, mode: s.Mode) -> str:
    for est in decision.estimates:
        if est.mode == mode and est.samples:
            tokens = f"~{est.tokens:,} tokens" if est.tokens is not None else "tokens unknown"
            wall = f"~{est.wall_s:.0f}s" if est.wall_s is not None else "time unknown"
            return (
                f"{tokens}, {wall} (from {est.samples} past run{'s' if est.samples != 1 else ''})"
            )
    return "cost unknown (no past runs of this mode here)"


def pick_mode(decision: s.IntakeDecision) -> s.Mode | None:
    """Ask on the terminal; None when the user cancels (Esc or Ctrl-C)."""
    import questionary
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
    from prompt_toolkit.keys import Keys

    choices = [
        questionary.Choice(
            title=f"{m:<10} {DESCRIPTIONS[m]} — {estimate_text(decision, m)}", value=m
        )
        for m in MODES
    ]
    header = (
        f"baro suggests: {decision.mode} ({decision.confidence:.0%} confident) — {decision.reason}"
    )
    if decision.vague:
        header += f"\n  ⚠ vague goal, read as: {decision.interpretation}"
    question = questionary.select(
        header,
        choices=choices,
        default=next(c for c in choices if c.value == decision.mode),
        instruction="(Enter accepts, arrows move, Esc cancels)",
    )
    escape = KeyBindings()

    @escape.add(Keys.Escape, eager=True)
    def _cancel(event) -> None:  # type: ignore[no-untyped-def]
        event.app.exit(exception=KeyboardInterrupt, style="class:aborting")

    app = question.application
    app.key_bindings = (
        merge_key_bindings([app.key_bindings, escape]) if app.key_bindings else escape
    )
    try:
        return question.unsafe_ask()
    except KeyboardInterrupt:
        return None
