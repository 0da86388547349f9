"""Publishing a delivered branch: real git remotes, a fake `gh` and a fake GitHub API."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from baro_merger.publish import github_repository, publish, strip_credentials
from baro_shared import redact

from .conftest import GitBench, snapshot_of

TOKEN = "ghp_" + "Z" * 36  # shaped like a real token, so any leak is caught by the eye too
BRANCH = "baro/fix-it"

FAKE_GH = """#!/bin/sh
# a stand-in for the GitHub CLI: records what it was asked, answers like gh does
log="{log}"
printf '%s\\n' "$*" >> "$log.args"
case "$1 $2" in
  "auth status") exit {auth_code};;
  "pr create")
    cat > "$log.body"
    {pr_create}
    ;;
esac
exit 1
"""


@pytest.fixture
def path_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding git, sh and cat only (no gh unless a test puts one there)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "cat"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    for name in ("GH_TOKEN", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    redact.refresh()
    return bin_dir


def fake_gh(bin_dir: Path, log: Path, *, auth_code: int = 0, pr_create: str = "") -> Path:
    script = bin_dir / "gh"
    script.write_text(
        FAKE_GH.format(
            log=log,
            auth_code=auth_code,
            pr_create=pr_create or 'echo "https://github.com/acme/app/pull/7"; exit 0',
        )
    )
    script.chmod(0o755)
    return script


def user_repo_with_branch(bench: GitBench) -> Path:
    repo = bench.make_repo("user", {"app.py": "print(1)\n"})
    bench.git(repo, "branch", BRANCH)
    return repo


def github_remote(bench: GitBench, repo: Path) -> Path:
    """origin is https://github.com/acme/app.git, which git rewrites to a local bare repo."""
    bare = bench.root / "remote.git"
    bench.git(bench.root, "init", "--quiet", "--bare", str(bare))
    bench.git(repo, "remote", "add", "origin", "https://github.com/acme/app.git")
    bench.git(repo, "config", f"url.{bare}.insteadOf", "https://github.com/acme/app.git")
    bench.git(repo, "push", "--quiet", "origin", "main")
    bench.git(repo, "fetch", "--quiet", "origin")
    bench.git(repo, "remote", "set-head", "origin", "main")
    return bare


async def test_local_policy_does_nothing(bench: GitBench, path_bin: Path) -> None:
    repo = user_repo_with_branch(bench)
    result = await publish(repo, BRANCH, "local", title="t", body="b")
    assert (result.published, result.note, result.pr_url) == ("local", None, None)


async def test_no_remote_is_one_quiet_line(bench: GitBench, path_bin: Path) -> None:
    repo = user_repo_with_branch(bench)
    before = snapshot_of(repo)
    result = await publish(repo, BRANCH, "pr", title="t", body="b")
    assert result.published == "local" and result.pr_url is None
    assert (
        result.note
        == f"{BRANCH} is in your repository only: it has no remote, so nothing was published"
    )
    assert "token" not in result.note.lower() and "push" not in result.note.lower()
    assert snapshot_of(repo) == before


async def test_several_remotes_without_origin_publish_nothing(
    bench: GitBench, path_bin: Path
) -> None:
    repo = user_repo_with_branch(bench)
    bench.git(repo, "remote", "add", "a", str(bench.root / "a.git"))
    bench.git(repo, "remote", "add", "b", str(bench.root / "b.git"))
    result = await publish(repo, BRANCH, "push", title="t", body="b")
    assert result.published == "local"
    assert result.note is not None and "several remotes (a, b)" in result.note


async def test_https_remote_without_credentials_tries_nothing(
    bench: GitBench, path_bin: Path
) -> None:
    repo = user_repo_with_branch(bench)
    # unroutable on purpose: an attempt would hang or fail loudly, not return at once
    bench.git(repo, "remote", "add", "origin", "https://192.0.2.1/acme/app.git")
    result = await publish(repo, BRANCH, "pr", title="t", body="b")
    assert result.published == "local"
    assert result.note is not None
    assert "no credentials for origin (https://192.0.2.1/acme/app.git)" in result.note
    assert "nothing was published" in result.note
    assert bench.git(repo, "for-each-ref", "refs/remotes/") == ""


async def test_push_to_a_local_remote(bench: GitBench, path_bin: Path) -> None:
    repo = user_repo_with_branch(bench)
    bare = bench.root / "remote.git"
    bench.git(bench.root, "init", "--quiet", "--bare", str(bare))
    bench.git(repo, "remote", "add", "origin", str(bare))
    hooks = repo / ".git" / "hooks"
    (hooks / "pre-push").write_text('#!/bin/sh\necho hook ran > "$GIT_DIR/../hook-ran"\nexit 1\n')
    (hooks / "pre-push").chmod(0o755)
    before = snapshot_of(repo)
    result = await publish(repo, BRANCH, "push", title="t", body="b")
    assert result.published == "pushed", result.note
    assert result.note == f"pushed {BRANCH} to origin ({bare})"
    assert bench.git(bare, "rev-parse", BRANCH) == bench.git(repo, "rev-parse", BRANCH)
    assert not (repo / "hook-ran").exists(), "the user's hooks must not run"
    after = snapshot_of(repo)
    head = bench.git(repo, "rev-parse", BRANCH)
    # the only change: git's record of what the remote now has
    assert after.pop("user refs") == [
        *before.pop("user refs"),
        f"refs/remotes/origin/{BRANCH} {head}",
    ]
    assert after == before


async def test_a_rejected_push_is_one_line_and_keeps_the_branch(
    bench: GitBench, path_bin: Path
) -> None:
    repo = user_repo_with_branch(bench)
    bare = bench.root / "remote.git"
    bench.git(bench.root, "init", "--quiet", "--bare", str(bare))
    bench.git(repo, "remote", "add", "origin", str(bare))
    other = bench.commit(bench.make_repo("other", {"x": "1"}), {"y": "2"}, "unrelated")
    bench.git(bench.root / "other", "push", "--quiet", str(bare), f"{other}:refs/heads/{BRANCH}")
    result = await publish(repo, BRANCH, "push", title="t", body="b")
    assert result.published == "local"
    assert result.note is not None
    assert result.note.startswith(f"{BRANCH} is in your repository only: pushing it to origin")
    assert "\n" not in result.note
    assert bench.git(repo, "rev-parse", "--verify", BRANCH)


async def test_pull_request_through_gh(bench: GitBench, path_bin: Path, tmp_path: Path) -> None:
    repo = user_repo_with_branch(bench)
    bare = github_remote(bench, repo)
    log = tmp_path / "gh"
    fake_gh(path_bin, log)
    body = "## Stories\n\n| story | status |\n|---|---|\n| S1 | integrated |\n"
    result = await publish(
        repo, BRANCH, "pr", title="Fix it", body=body, source_ref="refs/heads/main"
    )
    assert result.published == "pr", result.note
    assert result.pr_url == "https://github.com/acme/app/pull/7"
    assert result.note == (
        f"pushed {BRANCH} to origin (https://github.com/acme/app.git) "
        "and opened https://github.com/acme/app/pull/7"
    )
    assert bench.git(bare, "rev-parse", BRANCH) == bench.git(repo, "rev-parse", BRANCH)
    calls = Path(f"{log}.args").read_text().splitlines()
    assert calls[-1] == (
        f"pr create --repo acme/app --head {BRANCH} --title Fix it --body-file - --base main"
    )
    assert Path(f"{log}.body").read_text() == body


async def test_an_open_pull_request_is_reused(
    bench: GitBench, path_bin: Path, tmp_path: Path
) -> None:
    repo = user_repo_with_branch(bench)
    github_remote(bench, repo)
    exists = (
        f'echo \'a pull request for branch "{BRANCH}" into branch "main" already exists:\' >&2; '
        "echo https://github.com/acme/app/pull/3 >&2; exit 1"
    )
    fake_gh(path_bin, tmp_path / "gh", pr_create=exists)
    result = await publish(repo, BRANCH, "pr", title="t", body="b")
    assert result.published == "pr"
    assert result.pr_url == "https://github.com/acme/app/pull/3"
    assert result.note is not None and "updates the open pull request" in result.note


async def test_gh_errors_are_redacted(
    bench: GitBench, path_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = user_repo_with_branch(bench)
    github_remote(bench, repo)
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    redact.refresh()
    leak = f'echo "HTTP 401: Bad credentials (token {TOKEN})" >&2; exit 1'
    fake_gh(path_bin, tmp_path / "gh", pr_create=leak)
    result = await publish(repo, BRANCH, "pr", title="t", body="b")
    assert result.published == "pushed"
    assert result.note is not None and "gh could not open the pull request" in result.note
    assert TOKEN not in result.note and "Bad credentials" in result.note


async def test_unauthenticated_gh_and_no_token_push_without_a_pr(
    bench: GitBench, path_bin: Path, tmp_path: Path
) -> None:
    repo = user_repo_with_branch(bench)
    github_remote(bench, repo)
    fake_gh(path_bin, tmp_path / "gh", auth_code=1)
    result = await publish(repo, BRANCH, "pr", title="t", body="b")
    assert result.published == "pushed"
    assert result.note is not None and "no pull request was opened" in result.note
    assert not Path(f"{tmp_path / 'gh'}.body").exists()


class FakeGitHub:
    """Just enough of the GitHub REST API: the repository, and creating / listing PRs."""

    def __init__(self, existing: bool = False) -> None:
        self.requests: list[tuple[str, str, str | None, Any]] = []
        self.existing = existing
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, self.headers.get("Authorization"), None))
                if self.path == "/repos/acme/app":
                    self._reply(200, {"default_branch": "main"})
                elif self.path.startswith("/repos/acme/app/pulls?"):
                    self._reply(200, [{"html_url": "https://github.com/acme/app/pull/5"}])
                else:
                    self._reply(404, {"message": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                fake.requests.append(
                    ("POST", self.path, self.headers.get("Authorization"), payload)
                )
                if fake.existing:
                    self._reply(422, {"message": "Validation Failed"})
                else:
                    self._reply(201, {"html_url": "https://github.com/acme/app/pull/9"})

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch, path_bin: Path) -> Iterator[None]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    redact.refresh()
    yield
    redact.refresh()


@pytest.mark.parametrize("existing", [False, True])
async def test_pull_request_through_the_rest_api(
    bench: GitBench, token_env: None, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    repo = user_repo_with_branch(bench)
    bare = github_remote(bench, repo)
    bench.git(repo, "remote", "set-head", "origin", "--delete")
    with FakeGitHub(existing=existing) as api:
        monkeypatch.setenv("GITHUB_API_URL", api.url)
        result = await publish(repo, BRANCH, "pr", title="Fix it", body="the body")
    assert bench.git(bare, "rev-parse", BRANCH) == bench.git(repo, "rev-parse", BRANCH)
    assert result.published == "pr", result.note
    assert result.pr_url == (
        "https://github.com/acme/app/pull/5" if existing else "https://github.com/acme/app/pull/9"
    )
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth, _ in api.requests)
    posted = [payload for method, _, _, payload in api.requests if method == "POST"]
    assert posted == [{"title": "Fix it", "head": BRANCH, "base": "main", "body": "the body"}]
    assert result.note is not None and TOKEN not in result.note


def test_github_repository_from_remote_urls() -> None:
    for url in (
        "https://github.com/acme/app.git",
        "https://x-access-token:abc@github.com/acme/app",
        "git@github.com:acme/app.git",
        "ssh://git@github.com/acme/app.git",
    ):
        parsed = github_repository(url)
        assert parsed is not None and parsed.slug == "acme/app", url
    enterprise = github_repository("https://git.example.com/team/tool.git")
    assert enterprise is not None and enterprise.slug == "git.example.com/team/tool"
    assert enterprise.api_base({}) == "https://git.example.com/api/v3"
    for local in ("/srv/git/app.git", "file:///srv/git/app.git", "../app.git"):
        assert github_repository(local) is None, local


def test_credentials_in_urls_are_stripped() -> None:
    assert strip_credentials("fatal: https://u:secret@github.com/a/b denied") == (
        "fatal: https://github.com/a/b denied"
    )
