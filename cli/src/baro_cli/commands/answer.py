"""`baro answer RUN`: answer the questions of a run waiting in awaiting_answers.

The run was submitted to ask (``baro run --clarify ask`` with no terminal, or the API with
clarify 'ask'); its questions are on its record. The answers come from
``--answers FILE`` (the format of ``baro run --answers``), from ``--answer ID=TEXT``, or,
at a terminal with neither, are asked one by one. The run is then decided again on the
clarified goal and goes on to planning.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from baro_cli.app import app, cluster_settings, fail
from baro_cli.questions import (
    TerminalAnswers,
    answers_from_mapping,
    read_answers_file,
)
from baro_cli.validate import UserError
from baro_intake import api_runs
from baro_shared import schemas as s
from baro_shared.bus import Bus, BusUnavailable, bus_problem
from baro_shared.settings import Settings


@app.command()
def answer(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run's id (printed at submit).")],
    answers_file: Annotated[
        Path | None,
        typer.Option(
            "--answers",
            metavar="FILE",
            help='JSON object of question id (or 1-based position) to answer: {"target": "..."}.',
        ),
    ] = None,
    answer_items: Annotated[
        list[str] | None,
        typer.Option("--answer", metavar="ID=TEXT", help="One answer; repeat for more."),
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option(help="NATS of the run (default: BARO_NATS_URL, else this machine's baro)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Answer a run's questions (Enter skips one at a terminal); the run goes on."""
    settings = cluster_settings(nats_url)
    try:
        given = _given(answers_file, answer_items or [])
        run_id = run_id.strip()
        if not run_id:
            raise UserError("the run id is empty: pass the id baro printed when the run started")
        answered, skipped = asyncio.run(_answer(settings, run_id, given))
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    except BusUnavailable as exc:
        raise fail(bus_problem(exc, "pass --nats-url with the NATS the run is on"), 2) from None
    if as_json:
        typer.echo(json.dumps({"run_id": run_id, "answered": answered, "skipped": skipped}))
    else:
        typer.echo(f"run {run_id}: answered {answered}, skipped {skipped}; it goes on to planning")


def _given(answers_file: Path | None, items: list[str]) -> dict[str, str] | None:
    """The answers given on the command line, or None to ask at the terminal."""
    if answers_file is None and not items:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise UserError("no answers given: pass --answers FILE or --answer ID=TEXT")
        return None
    given = read_answers_file(answers_file) if answers_file is not None else {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(
                f"--answer {item!r} is not ID=TEXT (e.g. --answer target=api/search.py)"
            )
        given[key.strip()] = text
    return given


async def _answer(settings: Settings, run_id: str, given: dict[str, str] | None) -> tuple[int, int]:
    bus = await Bus.open(settings, "baro-answer", ensure=False)
    try:
        got = await bus.get_record(run_id)
        if got is None:
            raise UserError(f"no run {run_id!r} on NATS at {settings.nats_url}: check the id")
        record = got[0]
        clarification = record.clarification
        if record.state != "awaiting_answers" or clarification is None:
            raise UserError(f"run {run_id} is {record.state}: it waits for no answers", 1)
        questions = clarification.questions
        answers = _answers(questions, given)
        if answers is None:
            raise UserError("cancelled: no answers were sent", 130)
        try:
            await api_runs.answer(bus, record, answers, "cli")
        except (api_runs.Conflict, api_runs.UnknownQuestion) as exc:
            raise UserError(str(exc), 1) from None
        answered = sum(1 for a in answers if a.text)
        return answered, len(questions) - answered
    finally:
        await bus.close()


def _answers(
    questions: list[s.Question], given: dict[str, str] | None
) -> list[s.GivenAnswer] | None:
    if given is None:
        return TerminalAnswers(by="cli").answer(questions)
    ids = {q.id for q in questions} | {str(n) for n in range(1, len(questions) + 1)}
    unknown = sorted(set(given) - ids)
    if unknown:
        raise UserError(
            f"the run has no question {unknown[0]!r}: its questions are "
            + ", ".join(q.id for q in questions)
        )
    return answers_from_mapping(given, questions)
