"""Who the commits baro delivers are by, and whether they are signed.

A delivered story commit is authored and committed by the user (their git identity), with
a ``Co-Authored-By`` trailer naming baro and the agent, and signed when the user's git
config signs commits (``commit.gpgsign`` with ``gpg.format`` and ``user.signingkey``).

Where the identity comes from, first match wins:

1. ``BARO_GIT_AUTHOR_NAME`` / ``BARO_GIT_AUTHOR_EMAIL`` in the merger's environment (a
   cluster, which cannot read the submitter's git config);
2. the git config of the user's repository for a local run (its own config, the user's
   global and system config), else the merger's own global config;
3. baro itself.

It is resolved once, when the run is prepared, and kept in the run's integration
repository (``baro.*`` keys in its config), so every story commit of a run has the same
author however often the merger restarts, and nothing a story writes can change it: the
stories' own repositories are never read for it.

Signing is checked at the same moment by signing a throwaway commit. For a local run a key
that cannot sign fails the run before any agent starts, in one line; a cluster without the
key delivers unsigned commits and says so in a note.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from baro_merger.errors import SourceError
from baro_shared import usertools
from baro_shared.gitutil import BARO_IDENTITY, git
from baro_shared.schemas import RepoSource

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
BARO_NAME = BARO_IDENTITY["GIT_AUTHOR_NAME"]
BARO_EMAIL = BARO_IDENTITY["GIT_AUTHOR_EMAIL"]

# The keys of a user's git config that say how to sign, handed to ``git -c`` as they are.
SIGNING_KEYS = ("user.signingkey", "gpg.format")
SIGNING_PREFIXES = ("gpg.",)


class SigningError(SourceError):
    """Signing is configured but the key cannot sign."""


@dataclass(frozen=True)
class CommitIdentity:
    name: str
    email: str
    # the user's signing settings (``user.signingkey``, ``gpg.*``), None: commits are not signed
    signing: tuple[tuple[str, str], ...] | None = None
    note: str | None = None  # why signing was asked for but is off

    @property
    def is_baro(self) -> bool:
        return (self.name, self.email) == (BARO_NAME, BARO_EMAIL)

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }

    def commit_tree_args(self) -> list[str]:
        """``git`` options before ``commit-tree`` and the signing flag after it."""
        if self.signing is None:
            return ["commit-tree"]
        options = [arg for key, value in self.signing for arg in ("-c", f"{key}={value}")]
        return [*options, "commit-tree", "-S"]


BARO = CommitIdentity(BARO_NAME, BARO_EMAIL)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "on", "1")


def identity_from(
    config: Mapping[str, str], author_name: str | None = None, author_email: str | None = None
) -> CommitIdentity:
    """The identity of a run's commits from a git config (``git config --list``, keys in
    lower case) and the explicit ``BARO_GIT_AUTHOR_*`` values, which win."""
    name = (author_name or "").strip() or config.get("user.name", "").strip()
    email = (author_email or "").strip() or config.get("user.email", "").strip()
    if not name or not email:
        name, email = BARO_NAME, BARO_EMAIL
    signing = None
    if _true(config.get("commit.gpgsign")):
        signing = tuple(
            (key, value)
            for key, value in sorted(config.items())
            if key in SIGNING_KEYS or key.startswith(SIGNING_PREFIXES)
        )
    return CommitIdentity(name, email, signing)


# gpg.format -> the key naming its program, and git's default program
SIGNING_PROGRAMS = {
    "openpgp": ("gpg.program", "gpg"),
    "x509": ("gpg.x509.program", "gpgsm"),
    "ssh": ("gpg.ssh.program", "ssh-keygen"),
}


def _signing_program(name: str) -> str | None:
    return usertools.tool(name) if name in usertools.TOOLS else shutil.which(name)


def with_signing_program_found(
    identity: CommitIdentity, which: Callable[[str], str | None] = _signing_program
) -> CommitIdentity:
    """``identity`` with its signing program named by its path: found on ``PATH`` at every
    signed commit, a ``gpg`` an agent put in a folder of ``PATH`` it can write would be
    what signs. ``gpg``, ``gpgsm`` and ``ssh-keygen`` are where this process found them at
    its start (``baro_shared.usertools``), another program where it is when the run is
    prepared."""
    if identity.signing is None:
        return identity
    settings = dict(identity.signing)
    fmt = settings.get("gpg.format", "openpgp").lower()
    key, default = SIGNING_PROGRAMS.get(fmt, SIGNING_PROGRAMS["openpgp"])
    program = settings.get(key, default)
    found = program if os.path.isabs(program) else which(program)
    if found is not None:
        settings[key] = found
    return replace(identity, signing=tuple(sorted(settings.items())))


def parse_config_list(text: str) -> dict[str, str]:
    """``git config --list -z`` output -> key (lower case) -> its last value."""
    config: dict[str, str] = {}
    for record in text.split("\0"):
        if record:
            key, _, value = record.partition("\n")
            config[key.lower()] = value
    return config


def co_author_trailer(agent: str | None) -> str:
    who = f"{BARO_NAME} ({agent})" if agent else BARO_NAME
    return f"Co-Authored-By: {who} <{BARO_EMAIL}>"


# --------------------------------------------------------------------------- edges


async def user_git_config(source: RepoSource, cwd: Path) -> dict[str, str]:
    """The git config that speaks for the user: their repository's for a local run, else
    the merger's own global config (``cwd`` is any directory outside a repository)."""
    if source.kind == "path":
        listed = await git("config", "--list", "-z", cwd=source.location, check=False)
    else:
        listed = await git("config", "--global", "--list", "-z", cwd=cwd, check=False)
    return parse_config_list(listed.stdout) if listed.returncode == 0 else {}


async def sign_check(repo: Path, identity: CommitIdentity) -> str | None:
    """None when ``identity`` can sign a commit in ``repo``, else git's reason in one line."""
    tried = await git(
        *identity.commit_tree_args(),
        EMPTY_TREE,
        "-m",
        "baro signing check",
        cwd=repo,
        env=identity.env(),
        check=False,
        timeout=60,
    )
    if tried.returncode == 0:
        return None
    lines = [line.strip() for line in tried.stderr.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("fatal: failed to write commit")]
    return (useful or lines or ["the signing program failed"])[0]


def signing_failure(reason: str) -> str:
    return (
        f"commit signing is on (commit.gpgsign) but git cannot sign: {reason}; make the key "
        "in user.signingkey available, or turn signing off for this repository "
        "(git config commit.gpgsign false)"
    )


async def resolve_identity(
    repo: Path,
    source: RepoSource,
    *,
    author_name: str | None = None,
    author_email: str | None = None,
) -> CommitIdentity:
    """The run's identity, with signing checked in ``repo`` (its integration repository).

    Raises SigningError for a local run whose signing key cannot sign."""
    config = await user_git_config(source, repo.parent)
    identity = with_signing_program_found(identity_from(config, author_name, author_email))
    if identity.signing is None:
        return identity
    reason = await sign_check(repo, identity)
    if reason is None:
        return identity
    if source.kind == "path":
        raise SigningError(signing_failure(reason))
    return CommitIdentity(
        identity.name,
        identity.email,
        None,
        f"commits are not signed: signing is configured but this merger cannot sign ({reason})",
    )


_STORED = ("name", "email", "note")


async def store_identity(repo: Path, identity: CommitIdentity) -> None:
    """Keep the run's identity in its integration repository's own config."""
    await git("config", "--local", "--remove-section", "baro", cwd=repo, check=False)
    await git("config", "--local", "--remove-section", "baro-signing", cwd=repo, check=False)
    for key in _STORED:
        value = getattr(identity, key)
        if value is not None:
            await git("config", "--local", f"baro.{key}", value, cwd=repo)
    await git(
        "config", "--local", "baro.signed", str(identity.signing is not None).lower(), cwd=repo
    )
    for key, value in identity.signing or ():
        await git("config", "--local", "--add", f"baro-signing.{key}", value, cwd=repo)


# repository -> (its config file's identity and time, the identity read from it): read
# again whenever git has rewritten the file (a new inode each time)
_loaded: dict[str, tuple[tuple[int, int, int], CommitIdentity]] = {}


async def load_identity(repo: Path) -> CommitIdentity:
    """The identity stored when the run was prepared (baro's own for older runs)."""
    stamp = _config_stamp(repo)
    known = _loaded.get(str(repo))
    if stamp is not None and known is not None and known[0] == stamp:
        return known[1]
    identity = await _read_identity(repo)
    if stamp is not None:
        _loaded[str(repo)] = (stamp, identity)
    return identity


def _config_stamp(repo: Path) -> tuple[int, int, int] | None:
    for config in (repo / "config", repo / ".git" / "config"):  # bare, else a work tree's
        try:
            found = config.stat()
        except OSError:
            continue
        return found.st_ino, found.st_mtime_ns, found.st_size
    return None


async def _read_identity(repo: Path) -> CommitIdentity:
    listed = await git("config", "--local", "--list", "-z", cwd=repo, check=False)
    config = parse_config_list(listed.stdout) if listed.returncode == 0 else {}
    name, email = config.get("baro.name"), config.get("baro.email")
    if not name or not email:
        return BARO
    signing = None
    if config.get("baro.signed") == "true":
        prefix = "baro-signing."
        signing = tuple(
            (key.removeprefix(prefix), value)
            for key, value in sorted(config.items())
            if key.startswith(prefix)
        )
    return CommitIdentity(name, email, signing, config.get("baro.note"))
