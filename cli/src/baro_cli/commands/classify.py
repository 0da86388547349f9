"""`baro classify`: the intake's decision for a goal, without running anything."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from baro_cli import validate
from baro_cli.app import app, fail, load_settings, setup_logging
from baro_cli.picker import estimate_json
from baro_cli.terminal import safe
from baro_cli.validate import UserError
from baro_intake.decide import decide
from baro_shared import schemas as s
from baro_shared.settings import Settings

INTAKE_CHOICES: tuple[str, ...] = get_args(s.IntakeStrategy)
EXIT_INTERRUPTED = 130


@app.command()
def classify(
    goal: Annotated[
        str, typer.Argument(help="The goal, or - to read goals from stdin, one per line.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per goal, one per line.")
    ] = False,
    intake: Annotated[
        str,
        typer.Option(
            help="offline (classifier only), llm (ask the backend), or auto (ask it when the "
            "classifier is unsure)."
        ),
    ] = "offline",
    backend: Annotated[
        str | None,
        typer.Option(help="Agent CLI asked by --intake llm/auto (default BARO_BACKEND)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model passed to the agent CLI.")] = None,
    script: Annotated[
        Path | None, typer.Option(help="Script for the scripted test/demo agent (JSON file).")
    ] = None,
) -> None:
    """Show the mode baro would pick for GOAL (with confidence and reason); runs nothing."""
    settings = load_settings()
    setup_logging(settings, quiet=True)
    try:
        name = _checked_backend(intake, backend or settings.backend, settings)
        agent_script = validate.agent_script(script)
        validate.model_name(model)
        goals = _goals(goal)
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    try:
        asyncio.run(
            _classify_all(goals, settings, intake, name, model, agent_script, as_json, goal == "-")
        )
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _checked_backend(intake: str, backend: str, settings: Settings) -> str:
    if intake not in INTAKE_CHOICES:
        raise UserError(f"unknown intake {intake!r}: choose one of {', '.join(INTAKE_CHOICES)}")
    validate.backend_name(backend)
    if intake == "llm":  # auto simply stays offline when the CLI is missing
        validate.backend(backend, settings, local=True)
    return backend


def _goals(goal: str) -> Iterable[str]:
    if goal != "-":
        return [validate.goal_text(goal)]
    if sys.stdin.isatty():
        raise UserError("GOAL is -, but nothing is piped in: pipe goals in, one per line")
    return _stdin_goals()


def _stdin_goals() -> Iterable[str]:
    for line in sys.stdin:
        text = line.strip()
        if text:
            yield text


async def _classify_all(
    goals: Iterable[str],
    settings: Settings,
    intake: str,
    backend: str,
    model: str | None,
    agent_script: str | None,
    as_json: bool,
    many: bool,
) -> None:
    for goal in goals:
        decided = await decide(
            goal,
            settings,
            strategy=intake,  # type: ignore[arg-type]
            backend=backend,
            model=model,
            agent_script=agent_script,
        )
        if as_json:
            print(json.dumps(decision_json(goal, decided.decision), ensure_ascii=False), flush=True)
        else:
            _render(goal, decided.decision, with_goal=many)
            sys.stdout.flush()


def decision_json(goal: str, decision: s.IntakeDecision) -> dict[str, Any]:
    """Every field of the decision, defaults included (unlike the bus encoding)."""
    tokens = decision.tokens
    return {
        "goal": goal,
        "mode": decision.mode,
        "confidence": decision.confidence,
        "reason": decision.reason,
        "vague": decision.vague,
        "interpretation": decision.interpretation,
        "caps": {
            "max_stories": decision.caps.max_stories,
            "parallelism": decision.caps.parallelism,
        },
        "source": decision.source,
        "evidence": list(decision.evidence),
        "tokens": {
            "input": tokens.input,
            "cached_input": tokens.cached_input,
            "output": tokens.output,
            "reasoning": tokens.reasoning,
        },
        "estimates": [estimate_json(e) for e in decision.estimates],
        "latency_ms": decision.latency_ms,
        "questions": [q.text for q in decision.questions],
    }


def _render(goal: str, decision: s.IntakeDecision, *, with_goal: bool) -> None:
    out = safe(sys.stdout).write
    if with_goal:
        out(f"goal: {goal[:100]}\n")
    out(f"{decision.mode} ({decision.confidence:.0%} confident) — {decision.reason}\n")
    if decision.vague:
        out(f"  vague goal, read as: {decision.interpretation}\n")
    caps = decision.caps
    if decision.mode == "parallel":
        out(f"  caps: up to {caps.max_stories} stories, {caps.parallelism} at once\n")
    elif decision.mode == "sequential":
        out(f"  caps: up to {caps.max_stories} stories, one at a time\n")
    for question in decision.questions:
        out(f"  ? {question.text}\n")
    if decision.evidence:
        out(f"  evidence: {'; '.join(decision.evidence)}\n")
    tokens = decision.tokens
    cost = f", {tokens.total} tokens" if tokens.is_known() else ""
    out(f"  decided by {decision.source} in {decision.latency_ms or 0:.1f} ms{cost}\n")
    if with_goal:
        out("\n")
