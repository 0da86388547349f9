"""`baro doctor` and the checks `baro run` makes first: each CLI missing or present, its
credentials missing or set (named, never shown), a custom endpoint, NATS, baro's folders.

"Present" here is the scripted agent standing in for Claude Code (it has Claude Code's
command line and answers --version); the real CLIs at their tested versions are checked in
the contract tier (tests/cli_contract/test_doctor.py).
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baro_cli.main import app
from baro_shared.backends import PROVIDER_KEYS
from baro_shared.embedded import EmbeddedNats
from tests.conftest import make_repo, run_baro, run_git, snapshot

BIN = Path(sys.executable).parent
SCRIPTED = str(BIN / "baro-scripted-agent")
SECRET = "sk-ant-doctor-0123456789abcdefghij"
CREDENTIAL_VARS = {
    *PROVIDER_KEYS.values(),
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CODEX_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
}


BACKENDS = ("claude", "codex", "opencode", "pi")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No agent CLI and no key, whatever this machine has; baro's folders in ``tmp_path``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CREDENTIAL_VARS and not k.startswith("BARO_")
    }
    env.update(
        {
            "BARO_CACHE_DIR": str(tmp_path / "cache"),
            "BARO_STATE_DIR": str(tmp_path / "state"),
            **{f"BARO_{cli.upper()}_BIN": str(tmp_path / "missing" / cli) for cli in BACKENDS},
        }
    )
    env.update(extra)
    return env


def baro_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_baro(*args, env=env, timeout=120)


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`baro doctor ARGS` in this process (the environment is exactly ``env``)."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    result = CliRunner().invoke(app, ["doctor", *args], env=overrides)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        ["baro", "doctor", *args], result.exit_code, result.stdout, result.stderr
    )


def checks(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str | None]]:
    return {c["name"]: c for c in json.loads(out.stdout)["checks"]}


def test_nothing_installed_fails_on_the_chosen_backend_with_the_fix(tmp_path: Path) -> None:
    out = baro_process(clean_env(tmp_path), "doctor")
    assert out.returncode == 1
    text = out.stdout
    assert (
        "FAIL  the claude CLI is not installed: npm install -g @anthropic-ai/claude-code@" in text
    )
    assert (
        "FAIL  claude: neither ANTHROPIC_API_KEY nor CLAUDE_CODE_OAUTH_TOKEN is set: "
        "export ANTHROPIC_API_KEY=..." in text
    )
    for other in ("codex", "opencode", "pi"):  # not chosen: reported, not failed
        assert f"--    {other}: not installed" in text
    assert "ok    git 2." in text and "ok    embedded nats-server" in text
    assert "cannot run here yet" in text.splitlines()[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_missing_cli_fails_only_when_it_is_the_chosen_one(
    tmp_path: Path, backend: str
) -> None:
    out = doctor(clean_env(tmp_path), "--backend", backend, "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["ok"] is False and report["backend"] == backend
    by_name = checks(out)
    assert by_name[backend]["status"] == "fail"
    assert "npm install -g " in (by_name[backend]["fix"] or "")
    assert f"BARO_{backend.upper()}_BIN" in (by_name[backend]["fix"] or "")
    assert by_name[f"{backend} credentials"]["status"] == "fail"
    for other in set(BACKENDS) - {backend}:
        assert by_name[other]["status"] == "skip"


def test_a_present_cli_with_its_key_is_ready_and_the_key_is_never_shown(tmp_path: Path) -> None:
    env = clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED, ANTHROPIC_API_KEY=SECRET)
    out = doctor(env)
    assert out.returncode == 0, out.stdout
    assert "ok    claude: ANTHROPIC_API_KEY set" in out.stdout
    # a present CLI at another version than the tested one is a warning with the pin
    assert "warn  claude 0.1.0 at" in out.stdout and "tested with 2.1.332" in out.stdout
    assert out.stdout.splitlines()[-1] == "ready: baro run --backend claude can run here"
    as_json = doctor(env, "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["ok"] is True
    for text in (out.stdout, out.stderr, as_json.stdout, as_json.stderr):
        assert SECRET not in text


def test_a_present_cli_without_credentials_fails_naming_the_variables(tmp_path: Path) -> None:
    out = doctor(clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED), "--json")
    assert out.returncode == 1
    by_name = checks(out)
    assert by_name["claude"]["status"] == "warn"  # found, another version
    cred = by_name["claude credentials"]
    assert cred["status"] == "fail"
    assert "ANTHROPIC_API_KEY" in (cred["detail"] or "")
    assert "CLAUDE_CODE_OAUTH_TOKEN" in (cred["detail"] or "")
    assert "a login stored by the CLI is not used" in (cred["fix"] or "")


def test_the_oauth_token_counts_for_claude(tmp_path: Path) -> None:
    env = clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED, CLAUDE_CODE_OAUTH_TOKEN=SECRET)
    by_name = checks(doctor(env, "--json"))
    assert by_name["claude credentials"]["status"] == "ok"
    assert by_name["claude credentials"]["detail"] == "claude: CLAUDE_CODE_OAUTH_TOKEN set"


def test_codex_takes_openai_key_and_opencode_wants_the_models_provider(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path,
        BARO_CODEX_BIN=SCRIPTED,
        BARO_OPENCODE_BIN=SCRIPTED,
        OPENAI_API_KEY=SECRET,
    )
    codex = checks(doctor(env, "--backend", "codex", "--json"))
    assert codex["codex credentials"]["status"] == "ok"
    opencode = doctor(env, "--backend", "opencode", "--model", "anthropic/claude-x", "--json")
    assert opencode.returncode == 1
    cred = checks(opencode)["opencode credentials"]
    assert cred["status"] == "fail" and cred["detail"] == "opencode: ANTHROPIC_API_KEY is not set"
    any_provider = checks(doctor(env, "--backend", "opencode", "--json"))
    assert any_provider["opencode credentials"]["status"] == "ok"  # a provider key is there


@pytest.fixture
def http_endpoint() -> Iterator[str]:
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_custom_endpoint_is_probed(tmp_path: Path, http_endpoint: str) -> None:
    base = clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED)
    up = checks(doctor({**base, "BARO_CLAUDE_BASE_URL": http_endpoint}, "--json"))
    assert up["claude endpoint"]["status"] == "ok"
    assert up["claude credentials"]["status"] == "ok"  # a custom endpoint may take no key
    dead = f"http://127.0.0.1:{closed_port()}"
    out = doctor({**base, "BARO_CLAUDE_BASE_URL": dead}, "--json")
    assert out.returncode == 1
    down = checks(out)["claude endpoint"]
    assert down["status"] == "fail" and f"BARO_CLAUDE_BASE_URL={dead} is not reachable" in (
        down["detail"] or ""
    )
    assert "unset BARO_CLAUDE_BASE_URL" in (down["fix"] or "")


def test_nats_given_is_checked_for_reach(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    env = clean_env(tmp_path)
    ok = checks(doctor(env, "--backend", "scripted", "--nats-url", nats_server.url, "--json"))
    assert ok["nats"]["status"] == "ok"
    gone = doctor(
        env, "--backend", "scripted", "--nats-url", f"nats://127.0.0.1:{closed_port()}", "--json"
    )
    assert gone.returncode == 1
    assert checks(gone)["nats"]["status"] == "fail"
    assert "cannot reach NATS" in (checks(gone)["nats"]["detail"] or "")


def test_an_unwritable_state_dir_fails_with_the_setting_to_change(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    env = clean_env(tmp_path, BARO_STATE_DIR=str(blocker / "state"))
    out = doctor(env, "--backend", "scripted", "--json")
    assert out.returncode == 1
    state = checks(out)["state dir"]
    assert state["status"] == "fail" and "BARO_STATE_DIR" in (state["fix"] or "")


def test_the_scripted_backend_needs_no_credentials(tmp_path: Path) -> None:
    out = doctor(clean_env(tmp_path), "--backend", "scripted")
    assert out.returncode == 0, out.stdout
    assert "ready: baro run --backend scripted can run here" in out.stdout


def test_an_unknown_backend_is_one_line(tmp_path: Path) -> None:
    out = doctor(clean_env(tmp_path), "--backend", "nope")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "baro: unknown backend 'nope': choose one of claude, codex, opencode, pi, scripted"
    ]


# ------------------------------------------------------------------ baro run checks first


def baro_run(env: dict[str, str], repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_baro("run", "fix the typo in a.txt", "--yes", *args, env=env, cwd=repo)


def test_baro_run_stops_in_one_line_before_submitting(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"}, dirty=True)
    before = snapshot(repo)
    missing_key = baro_run(clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED), repo)
    assert missing_key.returncode == 2
    assert missing_key.stderr.strip().splitlines() == [
        "baro: claude: neither ANTHROPIC_API_KEY nor CLAUDE_CODE_OAUTH_TOKEN is set: "
        "export ANTHROPIC_API_KEY=... (or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`) "
        "in the shell that runs baro (a login stored by the CLI is not used)"
    ]
    missing_cli = baro_run(clean_env(tmp_path), repo, "--backend", "pi")
    assert missing_cli.returncode == 2
    assert len(missing_cli.stderr.strip().splitlines()) == 1
    assert "the pi CLI is not installed: npm install -g @earendil-works/pi-coding-agent@1.6.0" in (
        missing_cli.stderr
    )
    assert snapshot(repo) == before
    assert run_git(repo, "for-each-ref", "refs/baro") == ""
    assert not (tmp_path / "state" / "nats").exists()  # no server was started
