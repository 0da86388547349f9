"""Hostile agents against baro's secrets and bus.

`baro run` is started the way a user starts it (a shell inside the repository, canary
secrets in its environment). The scripted agent's `probe` step does what a hostile agent
would: reads every visible process's ``environ``, ``cmdline`` and memory, reads baro's
state and cache directories and the user's repository, and tries every NATS server on the
loopback with no credentials and with every credential-looking value it found. Its report
comes back on the result branch; nothing of baro's may be in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from baro_shared.embedded import CLIENT_TOKEN_FILE
from tests.conftest import make_repo, run_git, snapshot

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")
CANARIES = {
    "BARO_API_TOKEN": "canary-api-token-6b1f0c2e9d",
    "BARO_NATS_PASSWORD": "canary-nats-password-44e0a1",
    "GH_TOKEN": "canary-gh-token-9f3c7a55b2",
}
# the agent's own provider key (agents get it): one value the probe tries on the bus
PROVIDER_KEY = "sk-ant-provider-key-for-the-agent-0123"
REPORT = "probe.json"


@dataclass
class Probed:
    result: dict[str, Any]  # baro run --json
    stderr: str
    report: dict[str, Any]
    text: str  # the report as delivered
    token: str  # the embedded server's token of that run
    nats_port: int
    state: Path
    cache: Path
    repo: Path


def probe_run(
    tmp_path: Path, *, env: dict[str, str] | None = None, user: int | None = None
) -> Probed:
    """One `baro run` whose only story probes; ``user``: run baro as that uid (and gid)."""
    repo = make_repo(tmp_path / "user", {"app.py": "x = 1\n"})
    (repo / ".env").write_text("USER_SECRET=in-the-checkout\n")  # the user's, untracked
    # baro's own directories where a user has them: under ~ (~/.local/state/baro, ~/.cache/baro)
    home = tmp_path / "home"
    state, cache = home / ".local" / "state" / "baro", home / ".cache" / "baro"
    home.mkdir()
    script = tmp_path / "script.json"
    paths = [str(state), str(cache), str(repo), str(home)]
    script.write_text(json.dumps({"default": {"steps": [{"probe": REPORT, "paths": paths}]}}))
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("BARO_", "NATS_", "XDG_"))}
    run_env.update(
        CANARIES,
        ANTHROPIC_API_KEY=PROVIDER_KEY,
        PWD=str(repo),
        HOME=str(home),
        BARO_LOG_LEVEL="WARNING",
        **(env or {}),
    )
    command = [BARO, "run", "probe for secrets", "--backend", "scripted", "--script", str(script),
               "--mode", "focused", "--yes", "--json", "--quiet"]  # fmt: skip
    if user is not None:
        subprocess.run(["chown", "-R", f"{user}:{user}", str(tmp_path)], check=True)
        command = as_user(user, command, tmp_path / "way")
    before = snapshot(repo)
    done = subprocess.run(
        command, cwd=repo, env=run_env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "delivered", result
    assert snapshot(repo) == before, "the run changed the user's checkout"
    text = run_git(repo, "show", f"{result['branch']}:{REPORT}")
    log = (state / "nats" / "nats-server.log").read_text()
    ports = re.findall(r"Listening for client connections on 127\.0\.0\.1:(\d+)", log)
    return Probed(
        result=result,
        stderr=done.stderr,
        report=json.loads(text),
        text=text,
        token=(state / "nats" / CLIENT_TOKEN_FILE).read_text().strip(),
        nats_port=int(ports[-1]),
        state=state,
        cache=cache,
        repo=repo,
    )


def our_server(probed: Probed) -> dict[str, Any]:
    entries = [p for p in probed.report["ports"] if p["port"] == probed.nats_port]
    assert entries, f"the probe did not find the run's NATS server on port {probed.nats_port}"
    return entries[0]


def test_a_fenced_agent_reaches_no_secret_no_process_no_file_of_baro_and_not_the_bus(
    tmp_path: Path,
) -> None:
    probed = probe_run(tmp_path)
    report = probed.report

    # nothing of baro's anywhere in what the agent could read
    for value in [*CANARIES.values(), probed.token]:
        assert value not in probed.text

    # it sees only its own namespace: its init and itself, not baro, not the nats-server
    processes = report["processes"]
    assert len(processes) <= 3, [p["cmdline"] for p in processes]
    assert all(p["pid"] < 10 for p in processes)
    commands = " | ".join(p["cmdline"] or "" for p in processes)
    assert "nats-server" not in commands and " run probe" not in commands

    # baro's state, the other workspaces and the user's checkout are empty to it
    paths = report["paths"]
    assert paths[str(probed.state)]["entries"] == []
    assert paths[str(probed.repo)]["entries"] == [], "the user's repository is hidden"
    # of the cache: its own workspace, and the object directory of the source cache its
    # clone borrows from (read-only), nothing else of that cache
    assert paths[str(probed.cache)]["entries"] == ["sources", "workspaces"]
    own_workspace = str(Path(report["identity"]["cwd"]).parent)
    cache_files = list(paths[str(probed.cache)]["files"])
    borrowed = {
        str(Path(f).relative_to(probed.cache / "sources")).split("/objects/")[0]
        for f in cache_files
        if not f.startswith(own_workspace + "/")
    }
    assert len(borrowed) == 1 and next(iter(borrowed)).endswith(".git"), borrowed
    assert all(f.startswith(own_workspace + "/") or "/objects/" in f for f in cache_files), (
        cache_files
    )
    assert "in-the-checkout" not in probed.text

    # the bus: found, wants credentials, refuses every attempt (none, and every value found)
    server = our_server(probed)
    assert server["kind"] == "nats" and server["auth_required"] is True
    attempts = server["attempts"]
    assert attempts[0]["with"] == "none" and len(attempts) >= 3
    assert not [a for a in attempts if a["accepted"]], attempts
    assert all("Authorization Violation" in a["reply"] for a in attempts)
    # and the run says so
    assert probed.result["bus_refused"] >= len(attempts)
    assert f"baro: the bus refused {probed.result['bus_refused']} connections" in probed.stderr


def _closed_directory() -> tuple[Path, Path] | None:
    """The first directory on the way to this interpreter that other users may not enter
    (a machine's Python under /root at 0700), and the entry of it on that way."""
    real = Path(os.path.realpath(sys.executable))
    for directory in reversed(real.parents):
        if not os.stat(directory).st_mode & 0o001:
            return directory, directory / real.relative_to(directory).parts[0]
    return None


def as_user(user: int, command: list[str], aside: Path) -> list[str]:
    """``command`` run as ``user``. Where the interpreter lies under a directory only root
    may enter, the command runs in a mount namespace of its own in which that directory
    holds nothing but the way to the interpreter: the user reaches the interpreter baro
    starts its agents with, and nothing else there."""
    dropped = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    closed = _closed_directory()
    if closed is None:
        return dropped
    directory, entry = closed
    aside.mkdir()
    script = (
        'mount --bind "$1" "$3" && mount -t tmpfs -o mode=755 baro-way "$2" && '
        'mkdir "$1" && mount --move "$3" "$1" && shift 3 && exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            str(entry), str(directory), aside, *dropped]  # fmt: skip


def test_without_the_sandbox_a_non_root_agent_still_cannot_read_baros_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The layer under the sandbox (BARO_AGENT_SANDBOX=off, as where namespaces are not
    allowed): baro's processes are not dumpable, so an agent of the same (non-root) user
    can read neither their environment nor their memory, and the nats-server's own
    environment and command line hold nothing. Baro's files are readable then: that is the
    sandbox's part (docs/backends.md)."""
    if os.geteuid() == 0:
        # baro as an ordinary user: "nobody", in a directory it can reach (pytest's own
        # temporary directories are root's only); this test's git commands, as root, must
        # accept a checkout that nobody owns
        user: int | None = 65534
        tmp_path = Path(tempfile.mkdtemp(prefix="baro-as-nobody-"))
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
        monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
        monkeypatch.setenv("GIT_CONFIG_KEY_0", "safe.directory")
        monkeypatch.setenv("GIT_CONFIG_VALUE_0", "*")
    else:
        user = None
    probed = probe_run(tmp_path, env={"BARO_AGENT_SANDBOX": "off"}, user=user)
    processes = probed.report["processes"]
    baro = [p for p in processes if p["cmdline"] and " run probe for secrets" in p["cmdline"]]
    assert baro, "the baro process is visible without the sandbox"
    for process in baro:
        assert process["environ"] is None, "baro's environment is readable"
        assert process["memory"] != "readable", "baro's memory is readable"
    server = [p for p in processes if p["cmdline"] and "nats-server" in p["cmdline"]]
    assert server, "the nats-server is visible without the sandbox"
    secrets = [*CANARIES.values(), probed.token]
    seen_in_processes = json.dumps(processes)
    assert not [value for value in secrets if value in seen_in_processes]
