"""Hosting the HTTP API inside the intake service's process.

``with_api`` wraps the intake worker when ``BARO_API_PORT`` is set: the wrapped service
runs the worker and a uvicorn server on the same event loop and NATS connection. The
socket is bound before the service reports started, so a port in use is one clear error
at start instead of a server that silently is not there. Signals stay with the host
(baro_shared.service.Host): it calls ``stop()``, which ends the event streams, lets
in-flight requests finish (up to a few seconds) and stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import TYPE_CHECKING

from baro_shared.bus import Bus
from baro_shared.service import Service, StartupError
from baro_shared.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

SHORT_TOKEN = 16
GRACEFUL_SHUTDOWN_S = 5


class ApiUnavailable(StartupError):
    """The API's port could not be bound."""


def _server(config: uvicorn.Config) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield  # the host handles SIGTERM/SIGINT and calls stop()

    return Server(config)


class ApiHostedIntake:
    """The intake worker plus the HTTP API, as one service named ``intake``."""

    def __init__(self, inner: Service, bus: Bus, settings: Settings) -> None:
        # fastapi and uvicorn are imported only where the API is served
        import uvicorn

        from baro_intake.api import create_app

        self.inner = inner
        self.name = inner.name
        self.host = settings.api_host or settings.http_host
        self.stopping = asyncio.Event()
        self.sock = _bind(self.host, settings.api_port or 0)
        self.port: int = self.sock.getsockname()[1]
        app = create_app(bus, settings, ready=self.ready, stopping=self.stopping)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            server_header=False,
        )
        self.server = _server(config)
        if settings.api_token is None:
            log.warning(
                "HTTP API on %s:%d refuses /v1 requests: BARO_API_TOKEN is not set",
                self.host,
                self.port,
            )
        elif len(settings.api_token.get_secret_value()) < SHORT_TOKEN:
            log.warning(
                "BARO_API_TOKEN is shorter than %d characters: use a longer one", SHORT_TOKEN
            )
        log.info("HTTP API on http://%s:%d (OpenAPI at /openapi.json)", self.host, self.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def ready(self) -> bool:
        return self.inner.ready() and self.server.started

    def stop(self) -> None:
        self.stopping.set()
        self.server.should_exit = True
        self.inner.stop()

    async def run(self) -> None:
        serving = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        try:
            await self.inner.run()
        finally:
            self.stopping.set()
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
            self.sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets that say so, and without it a keep-alive response waits ~40 ms (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ApiUnavailable(
            f"cannot serve the HTTP API on {host}:{port} ({exc.strerror or exc}): "
            "free the port or set BARO_API_PORT"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def with_api(inner: Service, bus: Bus, settings: Settings) -> Service:
    """``inner`` itself when no API port is configured, else ``inner`` plus the API."""
    if settings.api_port is None:
        return inner
    return ApiHostedIntake(inner, bus, settings)
