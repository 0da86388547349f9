"""The `baro` Typer application and what every command shares."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError

from baro_cli.terminal import printable
from baro_shared import inputs
from baro_shared.embedded import read_client_token
from baro_shared.processes import process_alive
from baro_shared.settings import Settings

app = typer.Typer(
    name="baro",
    help="Turn one coding goal into one clean branch, run by coding agents on a NATS JetStream bus.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# options shared by the commands that submit runs (run, submit)
MaxStoriesOption = Annotated[int | None, typer.Option(min=1, help="Hard cap on stories.")]
ParallelismOption = Annotated[
    int | None, typer.Option(min=1, help="Hard cap on agents running at once.")
]
TokenBudgetOption = Annotated[
    int | None, typer.Option(min=1, help="Token budget of one agent run of a story.")
]
RunTokenBudgetOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Token budget of the whole run (intake, planning and every agent): agents are "
        "stopped as it is reached and no further story starts. Default: "
        "BARO_RUN_TOKEN_BUDGET, else none.",
    ),
]
MaxAttemptsOption = Annotated[
    int,
    typer.Option(min=1, max=20, help="Agent runs a story may take in all (its retry budget)."),
]
RetryWindowOption = Annotated[
    float,
    typer.Option(
        "--retry-window",
        min=0,
        help="Seconds after a story's first failed attempt in which it may still be retried.",
    ),
]


def _seconds(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        return inputs.check_seconds("the value", value)
    except inputs.InputProblem as exc:
        raise typer.BadParameter(str(exc).removeprefix("the value is ")) from None


StoryTimeoutOption = Annotated[
    float | None,
    typer.Option(callback=_seconds, help="Seconds one agent may run (1 to 86400; default 1800)."),
]
ModelOption = Annotated[str | None, typer.Option(help="Model passed to the agent CLI.")]
GoalArgument = Annotated[
    str | None,
    typer.Argument(
        help="What to change, in plain words; - reads it from standard input.",
        show_default=False,
    ),
]
GoalFileOption = Annotated[
    Path | None,
    typer.Option("--goal-file", metavar="FILE", help="Read the goal from FILE (UTF-8 text)."),
]
ModeOption = Annotated[
    str, typer.Option(help="auto lets intake decide; or force focused/sequential/parallel.")
]
StallTimeoutOption = Annotated[
    float | None,
    typer.Option(
        callback=_seconds,
        help="Seconds without agent output before it is stopped (1 to 86400; default 600).",
    ),
]
SurfaceOption = Annotated[
    str | None,
    typer.Option(
        help="strict: a story that changes files outside its write surface is not integrated "
        "(re-run once, then failed); warn: integrated and reported. Default: .baro.toml "
        "[surface] policy, else strict for parallel runs, warn otherwise."
    ),
]

ReplanOption = Annotated[
    str | None,
    typer.Option(
        "--replan",
        metavar="on|off",
        help="on: a story that failed twice is split, rewritten or given up by a "
        "replanning question (at most 3 a run); default: on.",
    ),
]
ReviewOption = Annotated[
    str | None,
    typer.Option(
        "--review",
        metavar="on|off",
        help="on: a critic reviews each story with acceptance criteria against them "
        "(one question per attempt); default: on, off for the scripted backend.",
    ),
]
CheckpointOption = Annotated[
    bool | None,
    typer.Option(
        "--checkpoint/--no-checkpoint",
        help="A partial result (some stories failed, or the run's checks still fail) "
        "is delivered as baro/<slug>-checkpoint, marked partial and never published; "
        "--no-checkpoint: no branch (its work stays at refs/baro/<run>/integration). "
        "Default: on.",
    ),
]

SERVICE_NAMES = ("intake", "planner", "conductor", "agent-runner", "merger")
MODE_CHOICES = ("auto", "focused", "sequential", "parallel")


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"baro: {printable(message)}", err=True)
    return typer.Exit(code)


def setup_logging(settings: Settings, quiet: bool) -> None:
    level = logging.WARNING if quiet else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("nats").setLevel(logging.CRITICAL)


def load_settings(nats_url: str | None = None) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise fail(settings_errors(exc)) from None
    if nats_url:
        settings = settings.model_copy(update={"nats_url": nats_url})
    return settings


def settings_errors(exc: ValidationError) -> str:
    """Every invalid ``BARO_*`` variable with what is wrong with it, on one line (a user
    fixing them one run at a time would meet them one by one); values are not repeated,
    as some are secrets."""
    said = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        name = f"BARO_{str(loc[0]).upper()}" if loc else "a BARO_* setting"
        said.append(f"invalid {name}: {error['msg']}")
    return "; ".join(dict.fromkeys(said))


def embedded_url(settings: Settings) -> str | None:
    """The client URL of this machine's embedded server, while a `baro run`/`up` holds it."""
    ports = embedded_store(settings) / "ports"
    for path in sorted(ports.glob("*.ports")) if ports.is_dir() else []:
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            continue  # left by a server that was killed
        try:
            urls = json.loads(path.read_text()).get("nats") or []
        except (OSError, ValueError, AttributeError):
            continue
        if urls:
            return str(urls[0])
    return None


def embedded_store(settings: Settings) -> Path:
    return settings.state_dir / "nats"


def with_local_credentials(settings: Settings) -> Settings:
    """``settings`` with the embedded server's token when they point at this machine's
    embedded server and name no credentials of their own."""
    own = settings.nats_token or settings.nats_user or settings.nats_creds
    if own or settings.nats_url != embedded_url(settings):
        return settings
    token = read_client_token(embedded_store(settings))
    if token is None:
        return settings
    return settings.model_copy(update={"nats_token": SecretStr(token)})


def cluster_settings(nats_url: str | None) -> Settings:
    settings = load_settings(nats_url)
    setup_logging(settings, quiet=True)
    if nats_url is None and "BARO_NATS_URL" not in os.environ:
        local = embedded_url(settings)
        if local:
            settings = settings.model_copy(update={"nats_url": local})
    return with_local_credentials(settings)
