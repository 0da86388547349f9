"""The embedded nats-server of `baro up`/`baro run` takes only clients holding its per-run
token; the user's own CLI on the machine finds the token, nobody else sees it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
import pytest

from baro_cli.stack import EmbeddedStore, LocalStack
from baro_shared.embedded import CLIENT_TOKEN_FILE
from baro_shared.settings import Settings

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")


@dataclass
class Up:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    store: Path
    url: str

    @property
    def token(self) -> str:
        return (self.store / CLIENT_TOKEN_FILE).read_text().strip()


@pytest.fixture(scope="module")
def baro_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp_path = tmp_path_factory.mktemp("up")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BARO_", "NATS_"))}
    env.update(
        BARO_STATE_DIR=str(tmp_path / "state"),
        BARO_CACHE_DIR=str(tmp_path / "cache"),
        BARO_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [BARO, "up"], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    url = ""
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline and not url:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if line.startswith("baro is up: NATS at "):
            url = line.split(" at ", 1)[1].split()[0]
    assert url, "".join(lines)
    try:
        yield Up(proc, env, tmp_path / "state" / "nats", url)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _try(url: str, **auth: str) -> str:
    """What a client gets: "connected" (and a working publish) or the error."""
    try:
        nc = await nats.connect(
            url, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0, **auth
        )
    except Exception as exc:  # the refusal is what is checked
        return f"refused: {exc!r}"
    try:
        await nc.publish("baro.cmd.runner", b"{}")
        await nc.flush(timeout=3)
        return "connected"
    finally:
        await nc.close()


def test_the_embedded_server_takes_only_its_own_token(baro_up: Up) -> None:
    token = baro_up.token
    assert len(token) >= 40
    assert asyncio.run(_try(baro_up.url)).startswith("refused")
    assert asyncio.run(_try(baro_up.url, token="guess")).startswith("refused")
    assert asyncio.run(_try(baro_up.url, user="baro", password=token)).startswith("refused")
    assert asyncio.run(_try(baro_up.url, token=token)) == "connected"


def test_the_token_is_readable_by_the_user_only_and_on_no_command_line(baro_up: Up) -> None:
    token = baro_up.token
    for path in (baro_up.store, baro_up.store / CLIENT_TOKEN_FILE, baro_up.store / "nats.conf"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    seen = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for what in ("cmdline", "environ"):
            try:
                if token.encode() in (proc / what).read_bytes():
                    seen.append(f"{proc.name}/{what}")
            except OSError:
                continue
    assert seen == []


def test_the_monitoring_port_does_not_give_the_token_away(baro_up: Up) -> None:
    """The server's HTTP monitoring port (loopback, no authentication, as nats-server has
    none for it) shows names and counts, never the credential."""
    ports = json.loads(next((baro_up.store / "ports").glob("*.ports")).read_text())
    monitor = ports["monitoring"][0]
    for endpoint in ("varz", "connz?subs=1&auth=1", "subsz?subs=1", "accountz",
                     "jsz?accounts=1&streams=1&consumers=1&config=1"):  # fmt: skip
        with urllib.request.urlopen(f"{monitor}/{endpoint}", timeout=10) as resp:
            assert baro_up.token not in resp.read().decode(), endpoint


@pytest.mark.parametrize("how", ["found by the CLI", "BARO_NATS_URL exported"])
def test_the_users_own_cli_finds_the_server_and_its_token(baro_up: Up, how: str) -> None:
    env = dict(baro_up.env)
    if how == "BARO_NATS_URL exported":
        env["BARO_NATS_URL"] = baro_up.url  # what `baro up` suggests
    listed = subprocess.run([BARO, "runs"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert f"no runs on {baro_up.url}" in listed.stdout


async def test_a_private_store_stays_where_agents_cannot_look(tmp_path: Path) -> None:
    """A second `baro run` while the machine's store is taken gets a store of its own:
    inside the state directory (hidden from agents), not in the shared /tmp."""
    settings = Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    holder = EmbeddedStore(settings)
    assert holder.acquire() is not None
    try:
        stack = LocalStack(settings, services={})
        async with stack:
            assert stack.nats is not None and stack.nats.store_dir is not None
            private = stack.nats.store_dir
            assert private.parent == settings.state_dir and private != holder.root
            assert (private / "nats.conf").stat().st_mode & 0o077 == 0
        assert not private.exists()
    finally:
        holder.release()
