"""A story's workspace setup from .baro.toml [setup], on real git clones."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from baro_runner import workspace
from baro_shared import schemas as s
from baro_shared.processes import run_in_group
from tests.conftest import ends_within, make_repo, run_git, snapshot

BASE_FILES = {
    "app.py": "print('app')\n",
    "package.json": '{"name": "app"}\n',
    "package-lock.json": '{"lockfileVersion": 3}\n',
    ".gitignore": "*.log\n",
}


def user_repo(tmp_path: Path, baro_toml: str | None, **extra: str) -> Path:
    files = dict(BASE_FILES)
    if baro_toml is not None:
        files[".baro.toml"] = baro_toml
    files.update(extra)
    repo = make_repo(tmp_path / "user", files)
    (repo / ".env").write_text("API_URL=http://localhost\nSECRET=abc\n")  # never committed
    (repo / "config").mkdir()
    (repo / "config" / "local.json").write_text('{"debug": true}\n')
    return repo


async def prepared(tmp_path: Path, repo: Path) -> tuple[workspace.Workspace, str]:
    head = run_git(repo, "rev-parse", "HEAD")
    source = s.RepoSource(kind="path", location=str(repo), commit=head)
    ws = await workspace.prepare(
        tmp_path / "ws" / "run" / "S1-1", source, head, sources=tmp_path / "sources"
    )
    return ws, head


def source_of(repo: Path) -> s.RepoSource:
    return s.RepoSource(kind="path", location=str(repo))


async def test_copies_and_setup_outputs_stay_out_of_the_story_commit(tmp_path: Path) -> None:
    toml = (
        "[setup]\n"
        'copy = [".env", "config/"]\n'
        'command = "mkdir -p node_modules/dep && echo built > node_modules/dep/index.js '
        '&& echo regenerated > package-lock.json && echo setup says hello"\n'
    )
    repo = user_repo(tmp_path, toml)
    before = snapshot(repo)
    ws, head = await prepared(tmp_path, repo)

    report = await workspace.setup(ws, source_of(repo), head)

    assert report is not None and report.ok
    assert report.copied == [".env", "config/local.json"]
    assert (ws.repo / ".env").read_text() == (repo / ".env").read_text()
    assert report.exit_code == 0 and "setup says hello" in report.output
    assert report.excluded == ["node_modules/"]
    assert report.restored == ["package-lock.json"]
    assert (ws.repo / "package-lock.json").read_text() == BASE_FILES["package-lock.json"]
    assert (ws.repo / "node_modules/dep/index.js").exists(), "setup outputs stay for the agent"
    assert run_git(ws.repo, "status", "--porcelain", "--untracked-files=all") == ""
    summary = report.summary()
    assert "copied 2 file(s) (.env, config/local.json)" in summary
    assert (
        "exit code 0" in summary
        and "put back tracked files it changed: package-lock.json" in summary
    )

    # the agent's own work is all the story's commit holds
    (ws.repo / "app.py").write_text("print('fixed')\n")
    (ws.repo / "config" / "local.json").write_text('{"debug": false}\n')
    change = await workspace.commit_result(ws, head, "fix app")
    assert change.changed_files == ["app.py"]
    assert snapshot(repo) == before, "the user's working tree is only read"


async def test_without_a_setup_table_nothing_happens(tmp_path: Path) -> None:
    repo = user_repo(tmp_path, '[verify]\ncommand = "true"\n')
    ws, head = await prepared(tmp_path, repo)
    assert await workspace.setup(ws, source_of(repo), head) is None
    assert not (ws.repo / ".env").exists()
    exclude = ws.repo / ".git" / "info" / "exclude"
    assert not exclude.exists() or "baro" not in exclude.read_text()


async def test_the_setup_comes_from_the_run_base_not_from_the_story_base(tmp_path: Path) -> None:
    """A dependency's story wrote a .baro.toml; the next story's setup ignores it."""
    repo = user_repo(tmp_path, '[setup]\ncommand = "echo from the base > base-setup.txt"\n')
    run_base = run_git(repo, "rev-parse", "HEAD")
    (repo / ".baro.toml").write_text('[setup]\ncopy = [".env"]\ncommand = "env > leaked-env.txt"\n')
    run_git(repo, "commit", "-q", "-am", "a story's .baro.toml")
    story_base = run_git(repo, "rev-parse", "HEAD")
    source = s.RepoSource(kind="path", location=str(repo), commit=story_base)
    ws = await workspace.prepare(
        tmp_path / "ws" / "run" / "S2-1", source, story_base, sources=tmp_path / "sources"
    )

    report = await workspace.setup(ws, source_of(repo), story_base, config_commit=run_base)

    assert report is not None and report.command == "echo from the base > base-setup.txt"
    assert (ws.repo / "base-setup.txt").exists()
    assert not (ws.repo / "leaked-env.txt").exists() and not (ws.repo / ".env").exists()
    assert report.copied == []


async def test_a_failing_command_fails_with_its_output(tmp_path: Path) -> None:
    toml = '[setup]\ncommand = "echo installing; echo npm ERR! missing peer >&2; exit 3"\n'
    repo = user_repo(tmp_path, toml)
    ws, head = await prepared(tmp_path, repo)
    with pytest.raises(workspace.SetupFailed) as caught:
        await workspace.setup(ws, source_of(repo), head)
    message = str(caught.value)
    assert message.startswith("setup command `echo installing;")
    assert "failed with exit code 3" in message
    assert "npm ERR! missing peer" in message and "installing" in message


async def test_a_hanging_command_times_out_and_leaves_nothing_running(tmp_path: Path) -> None:
    toml = '[setup]\ncommand = "sleep 300 & echo $! > bg.pid; sleep 300"\ntimeout = 1\n'
    repo = user_repo(tmp_path, toml)
    ws, head = await prepared(tmp_path, repo)
    with pytest.raises(workspace.SetupFailed, match=r"timed out after 1s"):
        await workspace.setup(ws, source_of(repo), head)
    child = int((ws.repo / "bg.pid").read_text())
    gone = await asyncio.to_thread(ends_within, child, 30.0)
    assert gone, "the setup's background process outlived it"


async def test_a_cancelled_setup_leaves_nothing_running(tmp_path: Path) -> None:
    """A runner stopping mid-setup (its task cancelled) takes the command's whole group."""
    toml = '[setup]\ncommand = "sleep 300 & echo $! > bg.pid; sleep 300"\n'
    repo = user_repo(tmp_path, toml)
    ws, head = await prepared(tmp_path, repo)
    task = asyncio.create_task(workspace.setup(ws, source_of(repo), head))
    deadline = time.monotonic() + 30
    while not (ws.repo / "bg.pid").exists() or not (ws.repo / "bg.pid").read_text():
        assert time.monotonic() < deadline and not task.done(), "the command started"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int((ws.repo / "bg.pid").read_text())
    assert await asyncio.to_thread(ends_within, child, 30.0), "the background process lived on"


async def test_what_is_not_copied_says_why(tmp_path: Path) -> None:
    toml = '[setup]\ncopy = ["app.py", "missing.env", "outside-link", "*.local"]\n'
    repo = user_repo(tmp_path, toml)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not the repository's\n")
    (repo / "outside-link").symlink_to(outside)
    (repo / "a.local").write_text("x\n")
    ws, head = await prepared(tmp_path, repo)
    report = await workspace.setup(ws, source_of(repo), head)
    assert report is not None
    assert report.copied == ["a.local"]
    assert report.not_copied == [
        "app.py: tracked in the repository (the workspace has the committed version)",
        f"missing.env: not found in {repo}",
        "outside-link: a link to outside the repository",
    ]
    assert (ws.repo / "app.py").read_text() == BASE_FILES["app.py"]
    assert not (ws.repo / "outside-link").exists()


async def test_copy_needs_a_local_source(tmp_path: Path) -> None:
    repo = user_repo(tmp_path, '[setup]\ncopy = [".env"]\n')
    ws, head = await prepared(tmp_path, repo)
    bundle = s.RepoSource(kind="bundle", location="runs/x/source.bundle")
    report = await workspace.setup(ws, bundle, head)
    assert report is not None and report.copied == []
    assert report.not_copied == [
        ".env: the run's source is not a local path, so there is no working tree to copy from"
    ]


async def test_an_invalid_file_fails_the_setup(tmp_path: Path) -> None:
    repo = user_repo(tmp_path, '[setup]\ncopy = ["../../etc/passwd"]\n')
    ws, head = await prepared(tmp_path, repo)
    failure = r"\.baro\.toml at [0-9a-f]{12}: \[setup\] copy: .*leaves"
    with pytest.raises(workspace.SetupFailed, match=failure):
        await workspace.setup(ws, source_of(repo), head)


async def test_a_setup_that_commits_is_refused(tmp_path: Path) -> None:
    toml = (
        '[setup]\ncommand = "git -c user.name=x -c user.email=x@x commit -q --allow-empty -m x"\n'
    )
    repo = user_repo(tmp_path, toml)
    ws, head = await prepared(tmp_path, repo)
    with pytest.raises(workspace.SetupFailed, match="must not commit"):
        await workspace.setup(ws, source_of(repo), head)


def test_exclude_lines_match_exactly_one_path() -> None:
    assert workspace._anchored(".env") == "/.env"
    assert workspace._anchored("build/") == "/build/"
    assert workspace._anchored("odd name[1]*.txt") == "/odd\\ name\\[1\\]\\*.txt"
    assert workspace._anchored("#notes!") == "/\\#notes\\!"


async def test_a_cancel_while_the_command_is_starting_takes_its_group(tmp_path: Path) -> None:
    """The command runs before asyncio has connected its pipes: a cancel in that window
    (a loaded runner stopping) still kills what the command started, not only its leader."""
    pid_file = tmp_path / "bg.pid"
    script = f"sleep 300 & echo $! > {pid_file}; sleep 300"
    task = asyncio.create_task(
        run_in_group(
            ["sh", "-c", script], cwd=tmp_path, env=dict(os.environ), timeout=60, keep_chars=100
        )
    )
    for _ in range(2):  # the process is forked; its pipes are not connected yet
        await asyncio.sleep(0)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the command started"
        time.sleep(0.05)  # noqa: ASYNC251  (the loop held on purpose: the start is not done)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    child = int(pid_file.read_text())
    assert await asyncio.to_thread(ends_within, child, 30.0), "the background process lived on"
