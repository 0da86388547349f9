"""The whole stack in one process: an embedded nats-server plus the five services."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from baro_conductor.service import create as create_conductor
from baro_intake.service import create as create_intake
from baro_merger.service import create as create_merger
from baro_planner.service import create as create_planner
from baro_runner.service import create as create_runner
from baro_shared.embedded import EmbeddedNats
from baro_shared.service import Host, ServiceFactory
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

SERVICES: dict[str, ServiceFactory] = {
    "conductor": create_conductor,
    "intake": create_intake,
    "planner": create_planner,
    "agent-runner": create_runner,
    "merger": create_merger,
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
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Settings:
        store_dir = self.store.acquire() if self.persistent else None
        self.nats = EmbeddedNats(store_dir=store_dir)
        await asyncio.to_thread(self.nats.start)
        settings = self.settings.model_copy(update={"nats_url": self.nats.url})
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

    async def __aexit__(self, *exc: object) -> None:
        if self.host:
            self.host.stop()
        if self._task:
            with contextlib.suppress(BaseException):
                await self._task
        if self.nats:
            await asyncio.to_thread(self.nats.stop)
        self.store.release()
