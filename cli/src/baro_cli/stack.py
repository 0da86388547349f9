"""The whole stack in one process: an embedded nats-server plus the five services."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import logging
import os
from pathlib import Path
from typing import IO

from pydantic import SecretStr

from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats, new_token, publish_client_token
from baro_shared.service import Host, Service, ServiceFactory
from baro_shared.settings import Settings

log = logging.getLogger(__name__)


def _imported_on_start(module: str) -> ServiceFactory:
    """A factory that imports its service module only when the service starts.

    A service module registers its Prometheus series at import, so ``baro service NAME``
    exposes on /metrics only what NAME owns (plus the shared bus series).
    """

    async def create(bus: Bus, settings: Settings) -> Service:
        factory: ServiceFactory = importlib.import_module(module).create
        return await factory(bus, settings)

    return create


SERVICES: dict[str, ServiceFactory] = {
    "conductor": _imported_on_start("baro_conductor.service"),
    "intake": _imported_on_start("baro_intake.service"),
    "planner": _imported_on_start("baro_planner.service"),
    "agent-runner": _imported_on_start("baro_runner.service"),
    "merger": _imported_on_start("baro_merger.service"),
}


class EmbeddedStore:
    """The embedded server's JetStream store: one per machine, kept between runs.

    Runs on this machine share it (so past runs inform intake estimates and an interrupted
    run can be resumed by ``baro up``). When another baro process holds it, this one uses a
    private temporary store instead.
    """

    def __init__(self, settings: Settings) -> None:
        self.root = settings.state_dir / "nats"
        self._lock: IO[str] | None = None

    def acquire(self) -> Path | None:
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / "lock", "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock = fh
        return self.root

    def release(self) -> None:
        if self._lock:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def clients_of(settings: Settings, nats: EmbeddedNats, token: str) -> tuple[Settings, Path]:
    """The settings of this embedded server's clients (its token handed over in-process,
    never through the environment) and the token file the user's CLI finds it in."""
    assert nats.store_dir is not None
    token_file = publish_client_token(nats.store_dir, token)
    return settings.model_copy(
        update={
            "nats_url": nats.url,
            "nats_token": SecretStr(token),
            "nats_user": None,
            "nats_password": None,
            "nats_creds": None,
        }
    ), token_file


class LocalStack:
    """``async with LocalStack(settings) as settings:`` — NATS and every service, running."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: dict[str, ServiceFactory] | None = None,
        persistent: bool = True,
        serve_http: bool = False,
    ) -> None:
        self.settings = settings
        self.services = services if services is not None else SERVICES
        self.persistent = persistent
        self.serve_http = serve_http
        self.nats: EmbeddedNats | None = None
        self.store = EmbeddedStore(settings)
        self.host: Host | None = None
        self.token_file: Path | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Settings:
        store_dir = self.store.acquire() if self.persistent else None
        token = new_token()
        self.nats = EmbeddedNats(
            store_dir=store_dir, sync_always=self.settings.embedded_sync_always, token=token
        )
        await asyncio.to_thread(self.nats.start)
        settings = self._clients_of(self.nats, token)
        self.settings = settings
        self.host = Host(self.services, settings, serve_http=self.serve_http, handle_signals=False)
        self._task = asyncio.create_task(self.host.run())
        started = asyncio.create_task(self.host.started.wait())
        done, _ = await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            started.cancel()
            await self.__aexit__(None, None, None)
            self._task.result()  # re-raise why the services did not start
        return settings

    def _clients_of(self, nats: EmbeddedNats, token: str) -> Settings:
        settings, self.token_file = clients_of(self.settings, nats, token)
        return settings

    async def __aexit__(self, *exc: object) -> None:
        if self.host:
            self.host.stop()
        if self._task:
            with contextlib.suppress(BaseException):
                await self._task
        if self.nats:
            await asyncio.to_thread(self.nats.stop)
        self.store.release()
