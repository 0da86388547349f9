"""`baro run`: submit a goal and follow it to a delivered branch."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from baro_cli import runflow, validate
from baro_cli.app import MODE_CHOICES, app, fail, load_settings, setup_logging
from baro_cli.validate import UserError
from baro_shared import schemas as s
from baro_shared.bus import Bus, BusUnavailable
from baro_shared.settings import Settings


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="What to change, in plain words.")],
    repo: Annotated[
        Path, typer.Option("--repo", help="The git repository (default: the current one).")
    ] = Path("."),
    backend: Annotated[
        str | None,
        typer.Option(help="Agent CLI: claude, codex, opencode, pi, or scripted (test/demo)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model passed to the agent CLI.")] = None,
    mode: Annotated[
        str, typer.Option(help="auto lets intake decide; or force focused/sequential/parallel.")
    ] = "auto",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Accept the suggested mode without the picker.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final summary as one JSON object.")
    ] = False,
    nats_url: Annotated[
        str | None, typer.Option(help="Use this NATS cluster instead of the embedded server.")
    ] = None,
    max_stories: Annotated[int | None, typer.Option(min=1, help="Hard cap on stories.")] = None,
    parallelism: Annotated[
        int | None, typer.Option(min=1, help="Hard cap on agents running at once.")
    ] = None,
    token_budget: Annotated[int | None, typer.Option(min=1, help="Per-story token budget.")] = None,
    story_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds one agent may run.")
    ] = 1800.0,
    stall_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds without agent output before it is stopped.")
    ] = 600.0,
    publish: Annotated[str, typer.Option(help="local (default), push, or pr.")] = "local",
    script: Annotated[
        Path | None, typer.Option(help="Script for the scripted test/demo agent (JSON file).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Run GOAL on a repository and deliver the result as a branch baro/<slug>."""
    settings = load_settings(nats_url)
    setup_logging(settings, quiet=True)
    try:
        request = build_request(
            goal,
            repo,
            backend or settings.backend,
            model,
            mode,
            yes,
            nats_url is not None,
            settings,
            max_stories,
            parallelism,
            token_budget,
            story_timeout,
            stall_timeout,
            publish,
            script,
        )
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    picker = None
    if request.confirm == "picker":
        from baro_cli.picker import pick_mode

        picker = pick_mode
    progress = runflow.Progress(sys.stderr, quiet=quiet)
    try:
        report = asyncio.run(_run(request, settings, progress, picker, embedded=nats_url is None))
    except BusUnavailable as exc:
        raise fail(
            f"{exc}: start NATS there, or omit --nats-url to use the embedded server", 2
        ) from None
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=None))
    else:
        runflow.render_summary(report, sys.stdout)
    raise typer.Exit(runflow.exit_code(report))


def build_request(
    goal: str,
    repo: Path,
    backend: str,
    model: str | None,
    mode: str,
    yes: bool,
    remote: bool,
    settings: Settings,
    max_stories: int | None,
    parallelism: int | None,
    token_budget: int | None,
    story_timeout: float,
    stall_timeout: float,
    publish: str,
    script: Path | None,
) -> s.RunSubmitted:
    text = validate.goal_text(goal)
    if mode not in MODE_CHOICES:
        raise UserError(f"unknown mode {mode!r}: choose one of {', '.join(MODE_CHOICES)}")
    if publish not in ("local", "push", "pr"):
        raise UserError(f"unknown publish policy {publish!r}: choose local, push or pr")
    validate.backend_name(backend)
    root, head = validate.repository(repo)
    validate.backend(backend, settings, local=not remote)
    agent_script = None
    if script is not None:
        try:
            agent_script = script.read_text()
            json.loads(agent_script)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot use the agent script {script}: {exc}") from None
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    confirm: s.Confirm = "picker" if (mode == "auto" and not yes and interactive) else "auto"
    return s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal=text,
        repo=s.RepoSource(kind="path", location=str(root), commit=head),
        mode_request=mode,  # type: ignore[arg-type]
        backend=backend,
        model=model,
        limits=s.Limits(
            max_stories=max_stories,
            parallelism=parallelism,
            token_budget=token_budget,
            story_timeout_s=story_timeout,
            stall_timeout_s=stall_timeout,
        ),
        confirm=confirm,
        publish=publish,  # type: ignore[arg-type]
        agent_script=agent_script,
        submitted_by=f"{os.environ.get('USER', 'user')}@cli",
    )


async def _run(
    request: s.RunSubmitted,
    settings: Settings,
    progress: runflow.Progress,
    picker: runflow.Picker | None,
    *,
    embedded: bool,
) -> runflow.RunReport:
    from baro_cli.stack import LocalStack

    interrupt = runflow.install_interrupt(asyncio.get_running_loop())
    if embedded:
        async with LocalStack(settings) as live:
            return await _submit_and_follow(request, live, progress, picker, interrupt)
    return await _submit_and_follow(request, settings, progress, picker, interrupt)


async def _submit_and_follow(
    request: s.RunSubmitted,
    settings: Settings,
    progress: runflow.Progress,
    picker: runflow.Picker | None,
    interrupt: asyncio.Event,
) -> runflow.RunReport:
    bus = await Bus.open(settings, "baro-cli")
    try:
        progress.line(f"run {request.run_id} submitted: {request.goal.splitlines()[0][:100]}")
        await runflow.submit(bus, request)
        return await runflow.follow(bus, request, progress, picker, interrupt=interrupt)
    finally:
        await bus.close()
