"""`baro service`, `baro up`, `baro demo`: running baro's own processes."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from baro_cli import runflow
from baro_cli.app import (
    SERVICE_NAMES,
    app,
    fail,
    load_settings,
    setup_logging,
    with_local_credentials,
)
from baro_shared.bus import BusUnavailable, bus_problem
from baro_shared.service import StartupError
from baro_shared.settings import Settings


@app.command()
def service(
    name: Annotated[
        str, typer.Argument(help="intake, planner, conductor, agent-runner or merger.")
    ],
    nats_url: Annotated[str | None, typer.Option(help="NATS URL (default: BARO_NATS_URL).")] = None,
) -> None:
    """Run one service in the foreground (what a container runs)."""
    if name not in SERVICE_NAMES:
        raise fail(f"unknown service {name!r}: choose one of {', '.join(SERVICE_NAMES)}")
    settings = with_local_credentials(load_settings(nats_url))
    setup_logging(settings, quiet=False)
    from baro_cli.stack import SERVICES
    from baro_shared.service import Host

    try:
        asyncio.run(Host({name: SERVICES[name]}, settings).run())
    except BusUnavailable as exc:
        raise fail(
            bus_problem(exc, "is NATS running? set BARO_NATS_URL or --nats-url"), 2
        ) from None
    except StartupError as exc:
        raise fail(str(exc), 2) from None


@app.command()
def up(
    nats_url: Annotated[
        str | None, typer.Option(help="Use this NATS instead of starting an embedded one.")
    ] = None,
    cluster: Annotated[
        int,
        typer.Option(
            help="Start a JetStream cluster of this many nats-servers on this machine "
            "(3 or 5; every stream replicated on all of them) instead of one server.",
        ),
    ] = 1,
) -> None:
    """Run the whole stack in the foreground (embedded NATS unless --nats-url)."""
    if cluster not in (1, 3, 5):
        raise fail(f"--cluster {cluster}: a JetStream cluster needs 3 or 5 servers (1 is none)")
    if cluster > 1 and nats_url is not None:
        raise fail("pass --nats-url (use that NATS) or --cluster (start one here), not both")
    settings = load_settings(nats_url)
    setup_logging(settings, quiet=False)
    try:
        if cluster > 1:
            asyncio.run(_up_cluster(settings, cluster))
        else:
            asyncio.run(_up(settings, embedded=nats_url is None))
    except BusUnavailable as exc:
        raise fail(bus_problem(exc, "is NATS running there?"), 2) from None
    except StartupError as exc:
        raise fail(str(exc), 2) from None


async def _up_cluster(settings: Settings, size: int) -> None:
    from baro_cli.stack import LocalCluster

    stop = runflow.install_interrupt(asyncio.get_running_loop())
    local = LocalCluster(settings, size, serve_http=True)
    async with local as live:
        assert local.nats is not None
        typer.echo(
            f"baro is up on a {size}-server JetStream cluster, every stream at R{size} "
            "(a temporary store: its runs go when it stops; Ctrl-C stops)",
            err=True,
        )
        for node in local.nats.nodes:
            typer.echo(f"  {node.server_name}: {node.url} (pid {node.pid})", err=True)
        typer.echo(f"  export BARO_NATS_URL={live.nats_url}", err=True)
        typer.echo(f"  export BARO_NATS_TOKEN=$(cat {local.token_file})", err=True)
        await stop.wait()


async def _up(settings: Settings, *, embedded: bool) -> None:
    from baro_cli.stack import SERVICES, LocalStack
    from baro_shared.service import Host

    if not embedded:
        await Host(SERVICES, settings).run()
        return
    stop = runflow.install_interrupt(asyncio.get_running_loop())
    local = LocalStack(
        settings,
        serve_http=True,
        command="baro up",
        on_note=lambda text: typer.echo(f"baro: {text}", err=True),
    )
    async with local as live:
        typer.echo(f"baro is up: NATS at {live.nats_url} (Ctrl-C stops)", err=True)
        typer.echo(f"  export BARO_NATS_URL={live.nats_url}", err=True)
        typer.echo(
            "  baro commands on this machine find its token themselves; other clients: "
            f"BARO_NATS_TOKEN from {local.token_file}",
            err=True,
        )
        await stop.wait()


@app.command()
def demo(
    keep: Annotated[
        bool, typer.Option(help="Keep the sample repository (its path is printed).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Create a small sample repository and run a goal on it with the scripted test/demo agent."""
    from baro_cli.demo import run_demo

    raise typer.Exit(run_demo(keep=keep, as_json=as_json))
