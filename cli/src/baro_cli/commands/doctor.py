"""`baro doctor`: what this machine has for baro, and what to do about what it lacks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from baro_cli import defaults, doctor, validate
from baro_cli.app import ModelOption, app, embedded_url, fail, load_settings, setup_logging
from baro_cli.validate import UserError
from baro_shared.defaults import Resolved
from baro_shared.settings import Settings

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
    repo: Annotated[
        Path,
        typer.Option(
            "--repo", help="Show the defaults and commit identity of this repository's runs."
        ),
    ] = Path("."),
) -> None:
    """Check git, the agent CLIs and their credentials, NATS, baro's directories and disk,
    who delivered commits would be by, and show the defaults a run here gets and where each
    comes from.

    Exits 1 when something the chosen backend needs is missing; each failing line says
    what to do. Credentials are named, never shown.
    """
    settings = load_settings(nats_url)
    setup_logging(settings, quiet=True)
    root, head = _repository(repo)
    chosen_defaults, defaults_problem = _defaults(root, head, backend, model, settings)
    chosen = backend or str(chosen_defaults["backend"].value)
    try:
        validate.backend_name(chosen)
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    remote = nats_url is not None or "BARO_NATS_URL" in os.environ
    checks = doctor.diagnose(
        settings, chosen, model, remote=remote, local_url=None if remote else embedded_url(settings)
    )
    checks.append(doctor.identity_check(root, settings))
    if defaults_problem is not None:
        checks.append(doctor.Check("defaults", "fail", defaults_problem))
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": not failed,
                    "backend": chosen,
                    "checks": [c.as_json() for c in checks],
                    "defaults": [
                        msgspec.to_builtins(r.as_setting()) for r in chosen_defaults.values()
                    ],
                }
            )
        )
    else:
        typer.echo(f"baro doctor (backend: {chosen})")
        for check in checks:
            typer.echo(f"  {MARKS[check.status]}  {check.line()}")
        typer.echo("defaults (flag > environment > .baro.toml > built-in):")
        for resolved in chosen_defaults.values():
            typer.echo(f"  {resolved.name:<14} {resolved.shown():<24} {resolved.where}")
        if failed:
            typer.echo(f"{len(failed)} problem(s): baro run --backend {chosen} cannot run here yet")
        else:
            typer.echo(f"ready: baro run --backend {chosen} can run here")
    raise typer.Exit(1 if failed else 0)


def _repository(repo: Path) -> tuple[Path | None, str | None]:
    """The repository's top level and HEAD; (None, None) outside a repository."""
    try:
        return validate.repository(repo)
    except UserError:
        return None, None


def _defaults(
    root: Path | None, head: str | None, backend: str | None, model: str | None, settings: Settings
) -> tuple[dict[str, Resolved], str | None]:
    """The defaults of a run in ``root`` at ``head`` (none of its file outside a
    repository), and the problem with its .baro.toml [defaults], if any."""
    flags = {"backend": backend, "model": model}
    try:
        return defaults.choose(flags, settings, root, head), None
    except UserError as exc:
        return defaults.choose(flags, settings, None, None), str(exc)
