"""The whole stack in one process: an embedded nats-server plus the five services."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import SecretStr

from baro_shared.bus import Bus
from baro_shared.embedded import (
    AUTH_REFUSED,
    SERVER_LOG,
    EmbeddedNats,
    NatsCluster,
    new_token,
    publish_client_token,
)
from baro_shared.processes import process_alive
from baro_shared.service import Host, Service, ServiceFactory
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

# the command name of a process that holds this machine's store only while it reads it
# (``baro runs``/``status``/``logs``/``watch`` with no baro serving it, 0.2 to 0.4 s)
READER = "baro reading its runs"
# how long a start waits for such a reader to let go before it gives up on the store
READER_WAIT_S = 10.0


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


@dataclass(frozen=True)
class StoreHolder:
    """Who holds this machine's embedded store: the baro process that took it and its
    nats-server (which keeps the lock while it runs, even when that process is gone)."""

    pid: int | None
    command: str
    server_pid: int | None

    @property
    def baro_alive(self) -> bool:
        return process_alive(self.pid)

    @property
    def server_alive(self) -> bool:
        return process_alive(self.server_pid)

    def describe(self) -> str:
        if self.baro_alive:
            return f"{self.command} (pid {self.pid})"
        if self.server_alive:
            return (
                f"a nats-server (pid {self.server_pid}) left running by {self.command} "
                f"(pid {self.pid}, no longer running)"
            )
        return f"a baro process (pid {self.pid or 'unknown'})"


class StoreHeld(RuntimeError):
    def __init__(self, holder: StoreHolder | None) -> None:
        self.holder = holder
        who = holder.describe() if holder else "another baro process"
        super().__init__(f"{who} holds this machine's run store")


class EmbeddedStore:
    """The embedded server's JetStream store: one per machine, kept between runs.

    Runs on this machine share it (past runs inform intake estimates, an interrupted run
    can be resumed). One process at a time holds it, by an exclusive lock on
    ``<state>/nats/lock`` that its nats-server inherits: the store stays held for as long
    as that server runs, even if the process that started it was killed. The lock file
    names the holder (JSON: ``pid``, ``command``, ``server_pid``).
    """

    def __init__(self, settings: Settings) -> None:
        self.root = settings.state_dir / "nats"
        self._lock: IO[str] | None = None
        self._owner: dict[str, object] = {}

    @property
    def lock_path(self) -> Path:
        return self.root / "lock"

    def inherited_fds(self) -> tuple[int, ...]:
        """What a server on the store keeps open: the lock, while this process holds it."""
        return (self._lock.fileno(),) if self._lock else ()

    def acquire(self, command: str = "baro") -> Path | None:
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        self._lock = fh
        self._owner = {"pid": os.getpid(), "command": command, "server_pid": None}
        self._write()
        return self.root

    async def acquire_after_readers(
        self, command: str = "baro", wait_s: float = READER_WAIT_S
    ) -> Path | None:
        """:meth:`acquire`, waiting up to ``wait_s`` while the holder is a reader (it lets
        go in a moment) or is only now taking the store (its name not written yet). Any
        other holder, and a reader still there after ``wait_s``: None at once."""
        deadline = time.monotonic() + wait_s
        while True:
            root = self.acquire(command)
            if root is not None:
                return root
            holder = self.holder()
            brief = holder is None or holder.pid is None or holder.command == READER
            if not brief or time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)

    def record_server(self, pid: int | None) -> None:
        self._owner["server_pid"] = pid
        self._write()

    def _write(self) -> None:
        if self._lock is None:
            return
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(json.dumps(self._owner))
        self._lock.flush()

    def holder(self) -> StoreHolder | None:
        """Who holds the store; None when nobody does (or it does not exist yet)."""
        if self._lock is not None:
            return _holder_from(json.dumps(self._owner))
        if not self.lock_path.exists():
            return None
        with self.lock_path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                return _holder_from(handle.read())
            fcntl.flock(handle, fcntl.LOCK_UN)
        return None

    def release(self) -> None:
        if self._lock:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _holder_from(text: str) -> StoreHolder:
    text = text.strip()
    if text.isdigit():  # written by an older baro: the pid alone
        return StoreHolder(int(text), "baro", None)
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}

    def pid(key: str) -> int | None:
        value = data.get(key)
        return value if isinstance(value, int) else None

    return StoreHolder(pid("pid"), str(data.get("command") or "baro"), pid("server_pid"))


def clients_of(
    settings: Settings, nats: EmbeddedNats | NatsCluster, token: str
) -> tuple[Settings, Path]:
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


async def serve(host: Host) -> asyncio.Task[None]:
    """Run ``host`` in a task and return it once its services have started, or once it
    ended without starting them (the task is then done; its result says why)."""
    task = asyncio.create_task(host.run())
    started = asyncio.create_task(host.started.wait())
    done, _ = await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        started.cancel()
    return task


async def unserve(host: Host | None, task: asyncio.Task[None] | None) -> None:
    """Stop what ``serve`` started and wait for it to end."""
    if host:
        host.stop()
    if task:
        with contextlib.suppress(BaseException):
            await task


def _hidden_from_agents(settings: Settings) -> Path:
    """Where a private store goes when the machine's is taken: inside the state directory,
    which agents never see (a temporary directory's would be in their /tmp)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return settings.state_dir


class LocalStack:
    """``async with LocalStack(settings) as settings:`` — NATS and every service, running.

    ``persistent``: on this machine's store when it is free, or once a command reading it
    lets go (``READER_WAIT_S`` at most). When another process holds it,
    ``require_store`` raises :class:`StoreHeld`; otherwise the stack runs on a temporary
    store of its own and ``on_note`` hears one line saying so.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        services: dict[str, ServiceFactory] | None = None,
        persistent: bool = True,
        serve_http: bool = False,
        command: str = "baro",
        require_store: bool = False,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.services = services if services is not None else SERVICES
        self.persistent = persistent
        self.serve_http = serve_http
        self.command = command
        self.require_store = require_store
        self.on_note = on_note
        self.nats: EmbeddedNats | None = None
        self.store = EmbeddedStore(settings)
        self.shared = False  # running on this machine's store
        self.host: Host | None = None
        self.token_file: Path | None = None
        self._task: asyncio.Task[None] | None = None
        self._log_from = 0

    async def __aenter__(self) -> Settings:
        store_dir = (
            await self.store.acquire_after_readers(self.command) if self.persistent else None
        )
        if self.persistent and store_dir is None:
            holder = self.store.holder()
            if self.require_store:
                raise StoreHeld(holder)
            if self.on_note is not None:
                self.on_note(private_store_note(holder, self.command))
        self.shared = store_dir is not None
        token = new_token()
        self.nats = EmbeddedNats(
            store_dir=store_dir,
            sync_always=self.settings.embedded_sync_always,
            token=token,
            inherit_fds=self.store.inherited_fds(),
            scratch_parent=_hidden_from_agents(self.settings),
        )
        # launched from this thread, which lives as long as the stack: the server gets the
        # parent-death signal when it ends (a kill -9 of this process included)
        try:
            self.nats.launch()
            self._log_from = self.nats.log_size_at_launch
            self.store.record_server(self.nats.pid)
            await asyncio.to_thread(self.nats.wait_ready)
        except BaseException:
            self.nats.stop()
            self.store.release()
            raise
        settings = self._clients_of(self.nats, token)
        self.settings = settings
        self.host = Host(self.services, settings, serve_http=self.serve_http, handle_signals=False)
        self._task = await serve(self.host)
        if self._task.done():
            await self.__aexit__(None, None, None)
            self._task.result()  # re-raise why the services did not start
        return settings

    def refused_connections(self) -> int:
        """Connections the server refused since this stack started it, for a missing or
        wrong credential: some process on this machine (an agent, a script) tried the bus
        without baro's token. Counted from the server's own log."""
        if self.nats is None or self.nats.store_dir is None:
            return 0
        try:
            with open(self.nats.store_dir / SERVER_LOG, "rb") as log:
                log.seek(self._log_from)
                return sum(1 for line in log if AUTH_REFUSED in line)
        except OSError:
            return 0

    def _clients_of(self, nats: EmbeddedNats, token: str) -> Settings:
        settings, self.token_file = clients_of(self.settings, nats, token)
        return settings

    async def __aexit__(self, *exc: object) -> None:
        await unserve(self.host, self._task)
        if self.nats:
            await asyncio.to_thread(self.nats.stop)
        self.store.release()


def private_store_note(holder: StoreHolder | None, command: str) -> str:
    """The one line a stack on a temporary store prints (the machine's store is held)."""
    who = holder.describe() if holder else "another baro process"
    if command == "baro up":
        return (
            f"{who} holds this machine's run store: this baro up runs on a temporary store "
            "of its own (stop that process to serve the machine's store)"
        )
    return (
        f"{who} holds this machine's run store: this run uses a temporary store of its own, "
        "so it cannot be resumed if this process is killed"
    )


class LocalCluster:
    """``async with LocalCluster(settings, 3) as settings:`` — a JetStream cluster of
    ``size`` nats-servers on this machine (loopback routes, a store each, in a temporary
    directory that goes when it stops), every stream and bucket at ``size`` replicas, and
    the five services connected to all members. What ``baro up --cluster N`` runs: a way
    to try baro on a cluster, and to kill one of its servers and watch runs go on."""

    def __init__(
        self,
        settings: Settings,
        size: int,
        *,
        services: dict[str, ServiceFactory] | None = None,
        serve_http: bool = False,
    ) -> None:
        self.settings = settings
        self.size = size
        self.services = services if services is not None else SERVICES
        self.serve_http = serve_http
        self.nats: NatsCluster | None = None
        self.host: Host | None = None
        self.token_file: Path | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Settings:
        self._tmp = tempfile.TemporaryDirectory(prefix="baro-cluster-")
        token = new_token()
        self.nats = NatsCluster(
            Path(self._tmp.name),
            size=self.size,
            token=token,
            sync_always=self.settings.embedded_sync_always,
        )
        try:
            await asyncio.to_thread(self.nats.start)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        settings, self.token_file = clients_of(self.settings, self.nats, token)
        self.settings = settings.model_copy(update={"replicas": self.size})
        self.host = Host(
            self.services, self.settings, serve_http=self.serve_http, handle_signals=False
        )
        self._task = await serve(self.host)
        if self._task.done():
            await self.__aexit__(None, None, None)
            self._task.result()  # re-raise why the services did not start
        return self.settings

    async def __aexit__(self, *exc: object) -> None:
        await unserve(self.host, self._task)
        if self.nats:
            await asyncio.to_thread(self.nats.stop)
        if self._tmp:
            self._tmp.cleanup()
