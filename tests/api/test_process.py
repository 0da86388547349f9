"""`baro service intake` serving the API as a real process: it stops cleanly on SIGTERM
with an event stream open, and a port in use is one line at start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from baro_shared.embedded import EmbeddedNats
from tests.api.conftest import TOKEN, stop, wait_ready
from tests.api.test_schemathesis import BIN
from tests.e2e.test_entrypoints import free_port

pytestmark = pytest.mark.slow


def service_env(nats_server: EmbeddedNats, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "BARO_NATS_URL": nats_server.url,
        "BARO_API_PORT": str(port),
        "BARO_API_TOKEN": TOKEN,
        "BARO_CACHE_DIR": str(tmp_path / "cache"),
        "BARO_STATE_DIR": str(tmp_path / "state"),
    }


def test_port_in_use_is_one_line(
    nats_server: EmbeddedNats, tmp_path: Path, taken_port: int
) -> None:
    out = subprocess.run(
        [str(BIN / "baro"), "service", "intake"],
        env=service_env(nats_server, tmp_path, taken_port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert f"cannot serve the HTTP API on 127.0.0.1:{taken_port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_sigterm_ends_open_event_streams_and_exits_cleanly(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "baro"), "service", "intake"],
        env=service_env(nats_server, tmp_path, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_ready(url, proc)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            body = {"goal": "fix x", "repo": {"kind": "url", "location": "file:///srv/x.git"}}
            run_id = client.post("/v1/runs", json=body).json()["run_id"]
            # nothing else runs, so the run stays submitted and its stream stays open
            lines = []
            with client.stream("GET", f"/v1/runs/{run_id}/events") as stream:
                for line in stream.iter_lines():
                    lines.append(line)
                    if line.startswith("event: run.submitted"):
                        proc.send_signal(signal.SIGTERM)
            # the loop above ends only because the server ended the stream
            assert any(line.startswith("data: ") for line in lines)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_streamed_body_is_cut_off_at_the_limit_while_it_arrives(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """A chunked upload (no Content-Length) of 256 MiB: answered 413 once the first MiB
    is passed, the rest never read into memory, /healthz answered meanwhile."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "baro"), "service", "intake"],
        env=service_env(nats_server, tmp_path, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        with httpx.Client(base_url=url, timeout=60) as client:
            before = peak_rss_kb(proc.pid)
            chunk = b"x" * (64 << 10)
            sent = 0
            head = (
                f"POST /v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(head.encode())
                try:
                    while sent < 256 << 20:
                        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        sent += len(chunk)
                        if sent == 4 << 20:  # well past the limit: the server is still there
                            assert client.get("/healthz").status_code == 200
                except OSError:
                    pass  # the server answered and closed the connection
                answer = sock.recv(4096).decode("latin-1")
            assert answer.startswith("HTTP/1.1 413"), answer[:200]
            assert "larger than 1048576 bytes" in answer
            assert sent < 256 << 20, "the server read the whole body"
            assert client.get("/healthz").status_code == 200
        grown_mb = (peak_rss_kb(proc.pid) - before) / 1024
        assert grown_mb < 32, f"the intake grew by {grown_mb:.0f} MB reading a refused body"
    finally:
        stop(proc)
