"""Who delivered commits are by, and their signatures: the pure resolution and real git.

Signing uses a real SSH key made by ssh-keygen in the test; verification is git's own
(``verify-commit`` with an allowed-signers file).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baro_merger.errors import SourceError
from baro_merger.identity import (
    BARO,
    CommitIdentity,
    SigningError,
    identity_from,
    parse_config_list,
    with_signing_program_found,
)
from baro_merger.integration import import_story_bundle, integrate_story, prepare_run
from baro_shared.backends import agent_env
from baro_shared.gitutil import git
from baro_shared.schemas import RepoSource, Story
from tests.conftest import baro_starts_now

FILES = {"README.md": "hello\n", "src/a.py": "A = 1\n"}
STORY = Story(id="S1", title="Raise A", write_surface=["src/a.py"], description="Raise A.")


# --------------------------------------------------------------------------- pure


def test_the_users_config_names_the_author() -> None:
    identity = identity_from({"user.name": "Ada", "user.email": "ada@example.com"})
    assert (identity.name, identity.email, identity.signing) == ("Ada", "ada@example.com", None)


def test_baro_git_author_wins_over_the_config() -> None:
    identity = identity_from(
        {"user.name": "Ada", "user.email": "ada@example.com"}, "Team Bot", "bot@example.com"
    )
    assert (identity.name, identity.email) == ("Team Bot", "bot@example.com")


@pytest.mark.parametrize(
    "config", [{}, {"user.name": "Ada"}, {"user.email": "ada@example.com"}, {"user.name": " "}]
)
def test_without_a_whole_identity_commits_are_baros(config: dict[str, str]) -> None:
    assert identity_from(config) == BARO


def test_signing_follows_commit_gpgsign_and_keeps_only_signing_keys() -> None:
    config = {
        "user.name": "Ada",
        "user.email": "ada@example.com",
        "user.signingkey": "/k",
        "gpg.format": "ssh",
        "gpg.ssh.program": "ssh-keygen",
        "core.editor": "vim",
    }
    assert identity_from(config).signing is None
    signed = identity_from({**config, "commit.gpgsign": "true"})
    assert signed.signing == (
        ("gpg.format", "ssh"),
        ("gpg.ssh.program", "ssh-keygen"),
        ("user.signingkey", "/k"),
    )
    assert signed.commit_tree_args()[-2:] == ["commit-tree", "-S"]


def test_config_list_keeps_the_last_value_of_a_key() -> None:
    listed = "user.name\nOld\0User.Name\nNew\0commit.gpgsign\ntrue\0"
    assert parse_config_list(listed) == {"user.name": "New", "commit.gpgsign": "true"}


def test_agents_commit_as_baro_whatever_the_users_identity(monkeypatch: Any) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Ada")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "ada@example.com")
    env = agent_env()
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "baro"
    assert env["GIT_AUTHOR_EMAIL"] == env["GIT_COMMITTER_EMAIL"] == "baro@localhost"


# --------------------------------------------------------------------------- real git


async def _story_commit(bench: Any, prepared: Any, agent: str | None = "claude") -> str:
    result = bench.story(prepared.repo, prepared.base, {"src/a.py": "A = 2\n"})
    await import_story_bundle(prepared.repo, "r", "S1", 1, result.bundle, head=result.head)
    done = await integrate_story(
        prepared.repo, "r", STORY, 1, story_base=prepared.base, goal="g", agent=agent
    )
    return done.commit  # type: ignore[union-attr]


async def _prepare_as_cluster(bench: Any, user: Path) -> Any:
    """As a cluster merger prepares a run: from a URL, with BARO_GIT_AUTHOR_* set."""
    source = RepoSource(kind="url", location=f"file://{user}")
    return await prepare_run(
        bench.cache, "r", source, author_name="Team Bot", author_email="bot@example.com"
    )


def _people(bench: Any, repo: Path, commit: str) -> str:
    return bench.git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", commit)


async def test_a_local_run_commits_as_the_user_with_baro_as_co_author(bench: Any) -> None:
    user = bench.make_repo("user", FILES)
    bench.git(user, "config", "user.name", "Ada Lovelace")
    bench.git(user, "config", "user.email", "ada@example.com")
    prepared = await bench.prepare("r", user)
    commit = await _story_commit(bench, prepared)
    assert _people(bench, prepared.repo, commit) == (
        "Ada Lovelace <ada@example.com>|Ada Lovelace <ada@example.com>"
    )
    trailers = bench.git(prepared.repo, "log", "-1", "--format=%(trailers)", commit)
    assert trailers.splitlines() == [
        "Baro-Story: S1",
        "Co-Authored-By: baro (claude) <baro@localhost>",
    ]
    # the agent's own commit inside its workspace never carried the user's name
    story_head = bench.git(prepared.repo, "rev-parse", "refs/baro/r/S1/1")
    assert "Ada" not in _people(bench, prepared.repo, story_head)


async def test_the_identity_is_the_one_of_prepare_time(bench: Any) -> None:
    """Changing the user's config after the run started (or a merger restart) changes
    nothing: the identity is kept in the integration repository."""
    user = bench.make_repo("user", FILES)
    bench.git(user, "config", "user.name", "Ada Lovelace")
    bench.git(user, "config", "user.email", "ada@example.com")
    prepared = await bench.prepare("r", user)
    bench.git(user, "config", "user.name", "Mallory")
    again = await bench.prepare("r", user)
    assert again.already_prepared and again.identity.name == "Ada Lovelace"
    commit = await _story_commit(bench, prepared)
    assert _people(bench, prepared.repo, commit).startswith("Ada Lovelace <ada@example.com>")


async def test_a_cluster_run_commits_as_baro_git_author(bench: Any) -> None:
    user = bench.make_repo("user", FILES)
    bench.git(user, "config", "user.name", "Not Read")
    bench.git(user, "config", "user.email", "not-read@example.com")
    prepared = await _prepare_as_cluster(bench, user)
    commit = await _story_commit(bench, prepared, agent="codex")
    assert _people(bench, prepared.repo, commit) == (
        "Team Bot <bot@example.com>|Team Bot <bot@example.com>"
    )
    assert "Co-Authored-By: baro (codex) <baro@localhost>" in bench.git(
        prepared.repo, "log", "-1", "--format=%B", commit
    )


# --------------------------------------------------------------------------- signing


def _ssh_key(root: Path) -> tuple[Path, Path]:
    """A fresh ed25519 key and an allowed-signers file naming it."""
    key = root / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ada", "-f", str(key)], check=True
    )
    allowed = root / "allowed_signers"
    allowed.write_text(f"ada@example.com {(root / 'signing_key.pub').read_text()}")
    return key, allowed


needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed"
)


def _signing_user(bench: Any, key: Path | str, key_format: str = "ssh") -> Path:
    """A repository whose config signs commits with ``key`` (``gpg.format``)."""
    user = bench.make_repo("user", FILES)
    for key_name, value in (
        ("user.name", "Ada Lovelace"),
        ("user.email", "ada@example.com"),
        ("gpg.format", key_format),
        ("user.signingkey", str(key)),
        ("commit.gpgsign", "true"),
    ):
        bench.git(user, "config", key_name, value)
    return user


@needs_ssh_keygen
async def test_signing_with_the_users_ssh_key(bench: Any, tmp_path: Path) -> None:
    key, allowed = _ssh_key(tmp_path)
    user = _signing_user(bench, key)
    prepared = await bench.prepare("r", user)
    assert prepared.identity.signing is not None
    commit = await _story_commit(bench, prepared)
    verified = await git(
        "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", commit,
        cwd=prepared.repo, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert 'Good "git" signature for ada@example.com' in verified.stderr


@needs_ssh_keygen
async def test_a_key_that_cannot_sign_fails_a_local_run_in_one_line(
    bench: Any, tmp_path: Path
) -> None:
    user = _signing_user(bench, tmp_path / "no-such-key")
    with pytest.raises(SigningError) as caught:
        await bench.prepare("r", user)
    message = str(caught.value)
    assert isinstance(caught.value, SourceError)  # the merger reports it as RunPrepareFailed
    assert "\n" not in message
    assert message.startswith("commit signing is on (commit.gpgsign) but git cannot sign:")
    assert "git config commit.gpgsign false" in message


@needs_ssh_keygen
async def test_a_cluster_without_the_key_delivers_unsigned_with_a_note(
    bench: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = bench.make_repo("user", FILES)
    merger_config = Path.home() / ".gitconfig"  # the test's own HOME (merger/conftest.py)
    merger_config.write_text(
        "[commit]\n\tgpgsign = true\n[gpg]\n\tformat = ssh\n"
        f"[user]\n\tsigningkey = {tmp_path / 'no-such-key'}\n"
    )
    baro_starts_now(monkeypatch)  # the merger starts with that config
    prepared = await _prepare_as_cluster(bench, user)
    assert prepared.identity.signing is None
    assert prepared.identity.note and prepared.identity.note.startswith("commits are not signed")
    merger_config.unlink()  # the test's stand-in for the runner signs nothing either
    commit = await _story_commit(bench, prepared)
    assert bench.git(prepared.repo, "log", "-1", "--format=%G?", commit) == "N"


needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


@pytest.fixture
def gpg_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh signing key in a keyring of the test's own (its agent stopped afterwards);
    its fingerprint."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    try:
        subprocess.run(
            ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Ada <ada@example.com>",
             "ed25519", "sign", "never"],
            check=True, capture_output=True,
        )  # fmt: skip
        listed = subprocess.run(
            ["gpg", "--list-secret-keys", "--with-colons"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        yield next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False, capture_output=True)


@needs_gpg
async def test_signing_with_the_users_gpg_key(bench: Any, gpg_key: str) -> None:
    user = _signing_user(bench, gpg_key, "openpgp")
    prepared = await bench.prepare("r", user)
    commit = await _story_commit(bench, prepared)
    verified = await git("verify-commit", "--raw", commit, cwd=prepared.repo, check=False)
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {gpg_key}" in verified.stderr


async def test_a_kept_identity_is_read_again_when_the_repository_config_changes(
    tmp_path: Path,
) -> None:
    from baro_merger.identity import load_identity, store_identity

    repo = tmp_path / "run.git"
    await git("init", "--quiet", "--bare", str(repo))
    assert await load_identity(repo) == BARO
    first = CommitIdentity("Ada", "ada@example.com")
    await store_identity(repo, first)
    assert await load_identity(repo) == first
    assert await load_identity(repo) == first
    second = CommitIdentity("Grace", "grace@example.com")
    await store_identity(repo, second)
    assert await load_identity(repo) == second


@pytest.mark.parametrize(
    ("signing", "expected"),
    [
        ((("user.signingkey", "K"),), {"gpg.program": "/usr/bin/gpg"}),
        ((("gpg.format", "ssh"),), {"gpg.ssh.program": "/usr/bin/ssh-keygen"}),
        ((("gpg.format", "x509"),), {"gpg.x509.program": "/usr/bin/gpgsm"}),
        ((("gpg.program", "gpg2"),), {"gpg.program": "/usr/bin/gpg2"}),
        ((("gpg.program", "/opt/gpg"),), {"gpg.program": "/opt/gpg"}),
        ((("gpg.program", "nowhere"),), {"gpg.program": "nowhere"}),
    ],
)
def test_the_signing_program_is_named_by_its_path_when_the_run_is_prepared(
    signing: tuple[tuple[str, str], ...], expected: dict[str, str]
) -> None:
    """Found on PATH at each signed commit, a `gpg` an agent put in a writable folder of
    PATH would sign: it is found once, before the run's agents start."""
    found = {"gpg": "/usr/bin/gpg", "gpg2": "/usr/bin/gpg2", "gpgsm": "/usr/bin/gpgsm",
             "ssh-keygen": "/usr/bin/ssh-keygen"}  # fmt: skip
    identity = with_signing_program_found(CommitIdentity("Me", "me@x", signing), found.get)
    assert identity.signing is not None
    assert dict(identity.signing) == {**dict(signing), **expected}
    unsigned = CommitIdentity("Me", "me@x")
    assert with_signing_program_found(unsigned, found.get) == unsigned
