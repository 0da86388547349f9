"""The scripted agent's `probe` step: what a hostile agent would try to get at baro's
secrets and bus, recorded rather than judged (a test decides what must not be there).

- every visible process: its ``cmdline``, ``environ`` and whether its memory can be read;
- the given paths (baro's state and cache directories, the user's repository): every file
  readable below them, with its start;
- every TCP port listening on the machine's loopback (from ``/proc/net/tcp``): a NATS
  server announces itself on connect; one that wants credentials is tried without any,
  then with every credential-looking value found above, each time subscribing to and
  publishing on ``baro.>``. Servers that want no credentials are only looked at (they are
  not baro's embedded server, which always wants them, and may belong to someone else).

Standard library only, loaded only by scripts with a `probe` step. See
docs/scripted-agent.md.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from typing import Any

MAX_FILES = 400
FILE_HEAD = 4096
MAX_PORTS = 200
MAX_CANDIDATES = 24
CONNECT_S = 0.3
BANNER_S = 0.5
REPLY_S = 1.5
_SECRET_NAME = re.compile(r"(?i)(TOKEN|PASSWORD|PASS|SECRET|KEY|CREDS?|NATS)")
_ASSIGNMENT = re.compile(r"""(?im)^\s*([A-Za-z_][\w.]*)\s*[=:]\s*["']?([^"'\s}]{8,})""")


def probe(paths: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "identity": {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "pid": os.getpid(),
            "cwd": os.getcwd(),
        },
        "processes": [_process(pid) for pid in _pids()],
        "paths": {path: _read_tree(path) for path in paths},
    }
    texts = [dict(os.environ)] + [p["environ"] for p in report["processes"] if p["environ"]]
    candidates = _candidates(texts, report["paths"])
    report["candidates"] = len(candidates)
    report["ports"] = [_port(port, candidates) for port in _listening_ports()]
    return report


# --------------------------------------------------------------------------- /proc


def _pids() -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    except OSError:
        return []


def _read(path: str, limit: int = 1 << 20) -> str | None:
    try:
        with open(path, "rb") as file:
            return file.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _process(pid: int) -> dict[str, Any]:
    base = f"/proc/{pid}"
    environ = _read(f"{base}/environ")
    cmdline = _read(f"{base}/cmdline")
    return {
        "pid": pid,
        "cmdline": cmdline.replace("\0", " ").strip() if cmdline is not None else None,
        "environ": dict(entry.split("=", 1) for entry in environ.split("\0") if "=" in entry)
        if environ is not None
        else None,
        "memory": _memory(base),
    }


def _memory(base: str) -> str:
    """ "readable" when a mapped page of the process could be read, else why not."""
    maps = _read(f"{base}/maps")
    if maps is None:
        return "maps unreadable"
    for line in maps.splitlines():
        span, perms = line.split()[:2]
        if perms.startswith("r"):
            start = int(span.split("-")[0], 16)
            try:
                fd = os.open(f"{base}/mem", os.O_RDONLY)
            except OSError as exc:
                return f"mem: {exc.strerror}"
            try:
                os.pread(fd, 64, start)
                return "readable"
            except OSError as exc:
                return f"mem: {exc.strerror}"
            finally:
                os.close(fd)
    return "no readable mapping"


# --------------------------------------------------------------------------- files


def _read_tree(root: str) -> dict[str, Any]:
    if not os.path.lexists(root):
        return {"exists": False}
    files: dict[str, str | None] = {}
    if os.path.isfile(root):
        files[root] = _read(root, FILE_HEAD)
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if len(files) >= MAX_FILES:
                break
            path = os.path.join(folder, name)
            files[path] = _read(path, FILE_HEAD)
    return {"exists": True, "entries": sorted(os.listdir(root)) if os.path.isdir(root) else [],
            "files": files}  # fmt: skip


def _candidates(environs: list[dict[str, str]], trees: dict[str, Any]) -> list[str]:
    """Values that look like credentials, from every environment and file read."""
    found: list[str] = []
    for env in environs:
        found += [value for name, value in env.items() if _SECRET_NAME.search(name)]
    for tree in trees.values():
        for path, text in (tree.get("files") or {}).items():
            if not text:
                continue
            if "token" in os.path.basename(path).lower() and len(text.strip()) >= 8:
                found.append(text.strip())
            found += [
                value for name, value in _ASSIGNMENT.findall(text) if _SECRET_NAME.search(name)
            ]
    unique = [value for value in dict.fromkeys(found) if 8 <= len(value) <= 512]
    return unique[:MAX_CANDIDATES]


# --------------------------------------------------------------------------- network


def _listening_ports() -> list[int]:
    ports: set[int] = set()
    for table, loopbacks in (
        ("/proc/net/tcp", ("0100007F", "00000000")),
        (
            "/proc/net/tcp6",
            ("00000000000000000000000001000000", "00000000000000000000000000000000"),
        ),
    ):
        text = _read(table) or ""
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # LISTEN
                address, port = fields[1].split(":")
                if address in loopbacks:
                    ports.add(int(port, 16))
    return sorted(ports)[:MAX_PORTS]


def _port(port: int, candidates: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"port": port}
    banner = _banner(port)
    if not banner.startswith("INFO "):
        entry["kind"] = "other"
        return entry
    try:
        info = json.loads(banner[5:].splitlines()[0])
    except ValueError:
        info = {}
    entry.update(kind="nats", server_name=info.get("server_name"),
                 auth_required=bool(info.get("auth_required")))  # fmt: skip
    if entry["auth_required"]:
        tries: list[tuple[str, dict[str, Any]]] = [("none", {})]
        for index, value in enumerate(candidates):
            tries.append((f"candidate {index} as token", {"auth_token": value}))
            tries.append((f"candidate {index} as password", {"user": "baro", "pass": value}))
        entry["attempts"] = [{"with": label, **_attempt(port, auth)} for label, auth in tries]
    return entry


def _banner(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_S) as sock:
            sock.settimeout(BANNER_S)
            return sock.recv(4096).decode("utf-8", "replace")
    except OSError:
        return ""


def _attempt(port: int, auth: dict[str, Any]) -> dict[str, Any]:
    """Connect, subscribe to baro.>, publish, ping: "accepted" when the server answered
    the ping without an error."""
    connect = {"verbose": False, "pedantic": False, "name": "probe", "lang": "python",
               "version": "0", "protocol": 1, **auth}  # fmt: skip
    wire = (
        f"CONNECT {json.dumps(connect)}\r\nSUB baro.> 1\r\n"
        "PUB baro.cmd.probe 5\r\nprobe\r\nPING\r\n"
    )
    reply = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_S) as sock:
            sock.settimeout(REPLY_S)
            sock.recv(4096)  # INFO
            sock.sendall(wire.encode())
            deadline = time.monotonic() + REPLY_S
            while time.monotonic() < deadline and b"PONG" not in reply and b"-ERR" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        reply += f" ({exc})".encode()
    text = reply.decode("utf-8", "replace")
    accepted = "PONG" in text and "-ERR" not in text
    return {"accepted": accepted, "reply": text[:300]}
