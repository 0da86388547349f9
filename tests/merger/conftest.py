"""Real git repositories in temp dirs for the merger's git core."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from baro_merger.integration import PreparedRun, prepare_run
from baro_shared.gitutil import git_env
from baro_shared.schemas import RepoSource

TEST_IDENTITY = {
    "GIT_AUTHOR_NAME": "user",
    "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "user",
    "GIT_COMMITTER_EMAIL": "user@example.com",
}


@dataclass(frozen=True)
class StoryResult:
    bundle: Path
    base: str
    head: str


class GitBench:
    """Builds repositories and plays the runner's part (a workspace, a commit, a bundle)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "cache" / "integration"

    def git(self, cwd: Path, *args: str, input: bytes | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            capture_output=True,
            env=git_env(TEST_IDENTITY),
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode()}")
        return proc.stdout.decode().strip()

    def make_repo(self, name: str, files: dict[str, str]) -> Path:
        repo = self.root / name
        repo.mkdir(parents=True)
        self.git(repo, "init", "--quiet", "--initial-branch=main")
        self.commit(repo, files, "initial")
        return repo

    def commit(self, repo: Path, files: dict[str, str | None], message: str) -> str:
        write_files(repo, files)
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
        return self.git(repo, "rev-parse", "HEAD")

    def story(
        self, integration_repo: Path, start: str, files: dict[str, str | None]
    ) -> StoryResult:
        """What a runner hands back: a bundle of start..head with ``files`` changed."""
        workspace = self.root / "workspaces" / uuid.uuid4().hex[:10]
        workspace.mkdir(parents=True)
        self.git(workspace, "init", "--quiet", "--initial-branch=work")
        self.git(workspace, "fetch", "--quiet", str(integration_repo), start)
        self.git(workspace, "checkout", "--quiet", "--detach", start)
        write_files(workspace, files)
        self.git(workspace, "add", "-A")
        self.git(workspace, "commit", "--quiet", "--allow-empty", "-m", "agent work")
        self.git(workspace, "branch", "baro-story")
        head = self.git(workspace, "rev-parse", "HEAD")
        bundle = self.root / "bundles" / f"{workspace.name}.bundle"
        bundle.parent.mkdir(exist_ok=True)
        self.git(workspace, "bundle", "create", "--quiet", str(bundle), "baro-story", f"^{start}")
        return StoryResult(bundle, start, head)

    async def prepare(self, run_id: str, source_repo: Path) -> PreparedRun:
        return await prepare_run(
            self.cache, run_id, RepoSource(kind="path", location=str(source_repo))
        )

    def show(self, repo: Path, rev: str, path: str) -> str | None:
        proc = subprocess.run(
            ["git", "cat-file", "blob", f"{rev}:{path}"], cwd=repo, capture_output=True, check=False
        )
        return proc.stdout.decode() if proc.returncode == 0 else None

    def files_at(self, repo: Path, rev: str) -> list[str]:
        return self.git(repo, "ls-tree", "-r", "--name-only", rev).splitlines()

    def snapshot(self, repo: Path) -> dict[str, object]:
        return snapshot_of(repo)


def write_files(repo: Path, files: dict[str, str | None]) -> None:
    for name, content in files.items():
        target = repo / name
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def snapshot_of(repo: Path) -> dict[str, object]:
    """Everything of the user's checkout that delivery must leave exactly as it was."""
    git_dir = repo / ".git"

    def digest(path: Path) -> str | None:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

    def run(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=repo, capture_output=True, check=True
        ).stdout.decode()

    # hash the index before anything runs git status (which could refresh it)
    state: dict[str, object] = {
        "index": digest(git_dir / "index"),
        "HEAD file": (git_dir / "HEAD").read_text(),
        "config": (git_dir / "config").read_text(),
        "logs/HEAD": digest(git_dir / "logs" / "HEAD"),
        "stash log": digest(git_dir / "logs" / "refs" / "stash"),
    }
    state["working files"] = {
        str(p.relative_to(repo)): digest(p)
        for p in sorted(repo.rglob("*"))
        if ".git" not in p.relative_to(repo).parts and p.is_file()
    }
    state["status"] = run("status", "--porcelain=v2", "--branch", "--untracked-files=all")
    state["stash list"] = run("stash", "list")
    state["HEAD"] = run("rev-parse", "HEAD")
    state["user refs"] = [
        line
        for line in run("for-each-ref", "--format=%(refname) %(objectname)").splitlines()
        if not line.startswith(("refs/baro/", "refs/heads/baro/"))
    ]
    return state


@pytest.fixture
def bench(tmp_path: Path) -> GitBench:
    return GitBench(tmp_path)


@pytest.fixture(autouse=True)
def _no_global_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own git config must not change what the tests see."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
