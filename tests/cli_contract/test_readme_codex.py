"""README's `baro run GOAL --repo ~/src/app --backend codex --parallelism 3`, as written,
with the real Codex against the scripted model server (the rest of README's commands run
in tests/readme/test_readme.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_contract.conftest import BACKENDS
from tests.cli_contract.model_server import Script, ScriptedModelServer
from tests.cli_contract.test_started_in_the_repository import baro_env
from tests.conftest import make_repo, run_git
from tests.readme.test_readme import CLI_TIER, USING_IT, WHERE, Shell

pytestmark = [pytest.mark.cli, pytest.mark.timeout(600)]

LINE = USING_IT[2]


def test_the_readme_codex_line_runs_with_the_real_codex(
    model_server: ScriptedModelServer, credentials: dict[str, str], tmp_path: Path
) -> None:
    assert WHERE[LINE] == CLI_TIER
    model_server.reset(Script(target="hello.txt", content="hello from codex\n"))
    shell = Shell(tmp_path)
    app = make_repo(shell.home / "src" / "app", {"app.py": "print('hello')\n"})
    path = shell.env["PATH"]  # baro's own bin first
    shell.env.update(baro_env(tmp_path, model_server, app))
    shell.env["PATH"] = f"{path}:{shell.env['PATH']}"
    shell.env["HOME"] = str(shell.home)
    shell.env["BARO_MODEL"] = BACKENDS["codex"].model
    shell.placeholders["GOAL"] = "create hello.txt containing a greeting"
    elsewhere = make_repo(tmp_path / "elsewhere", {"x.txt": "x\n"})
    shell.cwd = elsewhere  # --repo names the repository, wherever the shell is
    done = shell.run(LINE, timeout=540)  # exactly as README writes it
    assert done.returncode == 0, done.stderr[-3000:]
    assert ": delivered" in done.stdout.splitlines()[1], done.stdout
    branches = run_git(app, "branch", "--list", "baro/*", "--format=%(refname:short)").split()
    assert branches == ["baro/create-hello-txt-containing-a-greeting"]
    assert run_git(app, "show", f"{branches[0]}:hello.txt") == "hello from codex"
    assert run_git(elsewhere, "branch", "--list", "baro/*") == ""
    assert {e.api for e in model_server.exchanges} == {"responses"}, "Codex did the work"
