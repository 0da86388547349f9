"""`baro doctor`: what this machine has for baro, and what to do about what it lacks."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from baro_cli import doctor, validate
from baro_cli.app import ModelOption, app, embedded_url, fail, load_settings, setup_logging
from baro_cli.validate import UserError

MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "--  "}


@app.command(name="doctor")
def doctor_command(
    backend: Annotated[
        str | None,
        typer.Option(help="The backend you mean to run (default: BARO_BACKEND, else claude)."),
    ] = None,
    model: ModelOption = None,
    nats_url: Annotated[
        str | None, typer.Option(help="Check this NATS instead of the embedded server.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check git, the agent CLIs and their credentials, NATS, baro's directories and disk.

    Exits 1 when something the chosen backend needs is missing; each failing line says
    what to do. Credentials are named, never shown.
    """
    settings = load_settings(nats_url)
    setup_logging(settings, quiet=True)
    chosen = backend or settings.backend
    try:
        validate.backend_name(chosen)
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    remote = nats_url is not None or "BARO_NATS_URL" in os.environ
    checks = doctor.diagnose(
        settings, chosen, model, remote=remote, local_url=None if remote else embedded_url(settings)
    )
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": not failed,
                    "backend": chosen,
                    "checks": [c.as_json() for c in checks],
                }
            )
        )
    else:
        typer.echo(f"baro doctor (backend: {chosen})")
        for check in checks:
            typer.echo(f"  {MARKS[check.status]}  {check.line()}")
        if failed:
            typer.echo(f"{len(failed)} problem(s): baro run --backend {chosen} cannot run here yet")
        else:
            typer.echo(f"ready: baro run --backend {chosen} can run here")
    raise typer.Exit(1 if failed else 0)
