"""What an agent inherits: nothing that points it at the directory baro was started from
or at the user's repository, and none of baro's own variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baro_runner.backends import agent_command
from baro_runner.workspace import Workspace
from baro_shared import schemas as s
from baro_shared.backends import KNOWN_BACKENDS, agent_env
from baro_shared.settings import Settings


@pytest.fixture
def user_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shell inside the user's repository, its project virtualenv activated."""
    repo = tmp_path / "user"
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    monkeypatch.setenv("PWD", str(repo / "sub"))
    monkeypatch.setenv("OLDPWD", str(repo))
    monkeypatch.setenv("VIRTUAL_ENV", str(repo / ".venv"))
    monkeypatch.setenv("PATH", os.pathsep.join([str(repo / ".venv" / "bin"), "/usr/bin", "/bin"]))
    monkeypatch.setenv("PYTHONPATH", f"{repo / 'src'}{os.pathsep}/opt/lib")
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(repo))
    monkeypatch.setenv("GIT_COMMON_DIR", str(repo / ".git"))
    monkeypatch.setenv("BARO_NATS_TOKEN", "secret")
    monkeypatch.setenv("NATS_PASSWORD", "secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "the-agent-needs-this")
    return repo


def story(repo: Path) -> s.RunStory:
    return s.RunStory(
        run_id="r1",
        story=s.Story(id="S1", title="t"),
        attempt=1,
        goal="g",
        mode="focused",
        source=s.RepoSource(kind="path", location=str(repo), commit="0" * 40),
        base_commit="0" * 40,
        backend="scripted",
    )


@pytest.mark.parametrize("backend", KNOWN_BACKENDS)
def test_every_backend_works_in_its_workspace_not_where_baro_was_started(
    backend: str, user_repo: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "bin" / backend
    fake.parent.mkdir(exist_ok=True)
    fake.write_text("#!/bin/sh\n")
    settings = Settings(
        **{f"{backend}_bin": str(fake) for backend in ("claude", "codex", "opencode", "pi")},
        scripted_agent_bin=str(fake),
        model=None,
    )
    ws = Workspace(tmp_path / "ws")
    ws.repo.mkdir(parents=True)
    command = agent_command(backend, "do it", ws, story(user_repo), settings)

    env = command.env
    assert command.cwd == ws.repo
    assert env["PWD"] == env["OLDPWD"] == str(ws.repo)
    assert not [k for k in env if k.startswith(("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR"))]
    assert not [k for k in env if k.startswith("NATS_") or k in ("BARO_NATS_TOKEN",)]
    assert "VIRTUAL_ENV" not in env
    assert env["PATH"] == os.pathsep.join(["/usr/bin", "/bin"])
    assert env["PYTHONPATH"] == "/opt/lib"
    assert env["ANTHROPIC_API_KEY"] == "the-agent-needs-this"
    leaks = {k: v for k, v in env.items() if str(user_repo) in v}
    assert leaks == {}


def test_without_a_working_directory_no_stale_pwd_is_passed_on(user_repo: Path) -> None:
    env = agent_env()
    assert "PWD" not in env and "OLDPWD" not in env
    assert env["VIRTUAL_ENV"] == str(user_repo / ".venv")  # nothing to keep away from


def test_a_repository_reached_through_a_symlink_is_recognised(
    user_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "link"
    link.symlink_to(user_repo)
    monkeypatch.setenv("VIRTUAL_ENV", str(link / ".venv"))
    monkeypatch.setenv("PROJECT_ROOT", str(user_repo))
    monkeypatch.setenv("NEIGHBOUR", str(tmp_path / "user-other"))  # a prefix, not inside
    env = agent_env(workdir=tmp_path, away_from=link)
    assert "VIRTUAL_ENV" not in env and "PROJECT_ROOT" not in env
    assert env["NEIGHBOUR"] == str(tmp_path / "user-other")
