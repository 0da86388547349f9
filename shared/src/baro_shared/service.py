"""Hosting services: one or many in a process, with health/metrics and graceful shutdown.

A service is anything with ``name``, ``run()``, ``stop()`` and ``ready()``. ``baro service
NAME`` hosts one (what a container runs); ``baro up`` and ``baro run`` host all five on one
event loop, each with its own NATS connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from baro_shared import metrics, usertools
from baro_shared import schemas as s
from baro_shared.backends import baro_installation, sandbox_unavailable
from baro_shared.bus import ACK, Bus, Delivery, Outcome, Worker, process_name
from baro_shared.childwatch import watch_children_by_pidfd
from baro_shared.health import HealthServer
from baro_shared.inputs import command_problem
from baro_shared.processes import interruption
from baro_shared.redact import install_log_redaction
from baro_shared.settings import Settings

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    async def run(self) -> None: ...

    def stop(self) -> None: ...

    def ready(self) -> bool: ...


ServiceFactory = Callable[[Bus, Settings], Awaitable[Service]]

# the services that start agent CLIs (stories, one-shot questions)
AGENT_STARTING_SERVICES = {"agent-runner", "intake", "planner"}


def announce_sandbox(settings: Settings) -> None:
    """Say once, at start, whether agents run fenced in (and try the fence, so the first
    agent does not wait for that)."""
    # tried over baro's folders as every story's fence has them: a fence that hides no
    # folder (they are made later) is another fence, tried again at the first story
    for folder in (settings.state_dir, settings.cache_dir):
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
    reason = sandbox_unavailable(settings)
    if reason is None:
        baro_installation()  # what every fence keeps read-only, worked out once
        log.info("agents run sandboxed: no other process, no baro state or cache visible")
    elif settings.agent_sandbox == "require":
        log.error("agents cannot run sandboxed (%s): every story will fail", reason)
    elif settings.agent_sandbox == "auto":
        log.warning(
            "agents run without the sandbox (%s): they can read what this user can read "
            "(docs/backends.md, The agent sandbox)",
            reason,
        )


# commands that only keep work reachable: they run for an interrupted run too
KEEPS_WORK = (s.ArchiveAttempt, s.CleanupRun)


class StartupError(RuntimeError):
    """A service cannot start for a reason its operator must fix (a port in use, a bad
    setting); the message is one line saying what and what to do."""


class CommandService:
    """A worker service: one durable pull consumer on its command subject, one handler.

    Subclasses set ``name``, ``consumer`` and ``slots`` (messages handled at once) and
    implement ``handle``. A command for an interrupted run (its owning process is gone)
    is acknowledged without being handled: ``baro resume`` sends again what it needs.
    """

    name: str
    consumer: str
    slots: int = 4
    heartbeat_s: float = 10.0

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.worker = Worker(
            bus,
            self.consumer,
            s.command_decoder,
            self._handle_unless_interrupted,
            slots=self.slots,
            heartbeat_s=self.heartbeat_s,
            service=self.name,
            check=command_problem,
        )

    def ready(self) -> bool:
        return self.bus.nc.is_connected and self.worker.ready.is_set()

    def stop(self) -> None:
        self.worker.stop()

    async def run(self) -> None:
        await self.worker.run()

    async def handle(self, delivery: Delivery[s.Command]) -> Outcome:
        raise NotImplementedError

    async def _handle_unless_interrupted(self, delivery: Delivery[s.Command]) -> Outcome:
        cmd = delivery.message
        if not isinstance(cmd, KEEPS_WORK):
            got = await self.bus.get_record(cmd.run_id)
            if got is not None and interruption(got[0]) is not None:
                log.info(
                    "skipping %s of run %s: the run is interrupted",
                    cmd.__struct_config__.tag,
                    cmd.run_id,
                )
                return ACK
        return await self.handle(delivery)


class Host:
    """Runs services until ``stop()`` (or SIGTERM/SIGINT when ``handle_signals``)."""

    def __init__(
        self,
        factories: dict[str, ServiceFactory],
        settings: Settings,
        *,
        serve_http: bool = True,
        handle_signals: bool = True,
    ) -> None:
        self.factories = factories
        self.settings = settings
        self.serve_http = serve_http
        self.handle_signals = handle_signals
        self.services: list[Service] = []
        self.buses: list[Bus] = []
        self.http: HealthServer | None = None
        self.started = asyncio.Event()
        self._stop = asyncio.Event()

    def ready(self) -> bool:
        return bool(self.services) and all(svc.ready() for svc in self.services)

    def stop(self) -> None:
        self._stop.set()

    async def start(self) -> None:
        install_log_redaction()
        # the tools and git config baro uses on the user's behalf, as they are before any
        # agent of this process starts (``baro_shared.usertools``)
        await asyncio.to_thread(usertools.settle)
        if AGENT_STARTING_SERVICES & set(self.factories):
            await asyncio.to_thread(announce_sandbox, self.settings)
        first = True
        for name, factory in self.factories.items():
            bus = await Bus.open(self.settings, process_name(name), ensure=first)
            first = False
            self.buses.append(bus)
            self.services.append(await factory(bus, self.settings))
        if self.serve_http:
            self.http = HealthServer(self.settings.http_host, self.settings.http_port, self.ready)
            port = await self.http.start()
            log.info("health and metrics on http://%s:%d", self.settings.http_host, port)

    async def run(self) -> None:
        """Start everything, run until stopped, then shut down in order."""
        watch_children_by_pidfd()
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.start()
            tasks = [asyncio.create_task(self._run_one(svc)) for svc in self.services]
            self.started.set()
            stopper = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for svc in self.services:
                svc.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            stopper.cancel()
        finally:
            if self.handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    with contextlib.suppress(Exception):
                        loop.remove_signal_handler(sig)
            if self.http:
                await self.http.stop()
            for bus in self.buses:
                await bus.close()

    async def _run_one(self, svc: Service) -> None:
        metrics.service_up.labels(service=svc.name).set(1)
        try:
            await svc.run()
        except Exception:
            log.exception("service %s crashed", svc.name)
            self._stop.set()
            raise
        finally:
            metrics.service_up.labels(service=svc.name).set(0)
