"""The one .baro.toml parser: [setup], [artifacts], [verify], and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_merger.config import parse_baro_config
from baro_merger.hygiene import Change, select_dropped
from baro_shared.repoconfig import (
    DEFAULT_REPO_CONFIG,
    RepoConfigError,
    SetupConfig,
    parse_repo_config,
    read_repo_config_at,
)
from tests.conftest import make_repo, run_git

FULL = """
[setup]
command = "npm ci"
copy = [".env", "config/", "secrets/*.json"]
timeout = 120

[artifacts]
drop = ["*.bak"]
keep = ["docs/adr/"]

[verify]
command = ["pytest", "-q"]

[something-newer]
anything = 1
"""


def test_every_section() -> None:
    config = parse_repo_config(FULL)
    assert config.setup == SetupConfig(
        command="npm ci", copy=(".env", "config", "secrets/*.json"), timeout_s=120.0
    )
    assert config.artifacts is not None
    assert config.artifacts.drop == ("**/*.bak",)
    assert config.artifacts.keep == ("docs/adr/**",)
    assert config.verify is not None and config.verify.command == ("pytest", "-q")


async def test_missing_file_means_defaults_and_the_commit_decides(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    first = run_git(repo, "rev-parse", "HEAD")
    assert await read_repo_config_at(repo, first) == DEFAULT_REPO_CONFIG
    (repo / ".baro.toml").write_text('[setup]\ncommand = "make deps"\n')
    assert await read_repo_config_at(repo, first) == DEFAULT_REPO_CONFIG  # not the working tree
    run_git(repo, "add", ".baro.toml")
    run_git(repo, "commit", "-q", "-m", "config")
    second = run_git(repo, "rev-parse", "HEAD")
    setup = (await read_repo_config_at(repo, second)).setup
    assert setup is not None and setup.command == "make deps" and setup.copy == ()
    (repo / ".baro.toml").write_text("[setup]\ncommand = 3\n")
    run_git(repo, "commit", "-q", "-am", "broken")
    broken = run_git(repo, "rev-parse", "HEAD")
    with pytest.raises(RepoConfigError, match=rf"\.baro\.toml at {broken[:12]}: \[setup\]"):
        await read_repo_config_at(repo, broken)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[setup]\ncommand = 3\n", "[setup] command must be a non-empty string"),
        ('[setup]\ncopy = ".env"\n', "[setup] copy must be a list"),
        ('[setup]\ncopy = ["../outside"]\n', "leaves the repository"),
        ('[setup]\ncopy = ["/etc/passwd"]\n', "absolute path"),
        ('[setup]\ncopy = [".git/config"]\n', "inside .git"),
        (
            '[setup]\ncomand = "x"\n',
            "[setup] has no key 'comand' (valid keys: command, copy, timeout)",
        ),
        ("[setup]\ntimeout = 0\n", "[setup] timeout must be a positive number"),
        ("setup = 1\n", "[setup] must be a table"),
        ('[verify]\ncommand = "x"\nretries = 2\n', "[verify] has no key 'retries'"),
    ],
)
def test_mistakes_name_the_file_and_the_key(text: str, needle: str) -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(text)
    assert ".baro.toml" in str(caught.value)
    assert needle in str(caught.value)


def test_copied_files_are_always_dropped_from_the_branch() -> None:
    rules = parse_baro_config('[setup]\ncopy = [".env", "certs/"]\n').artifacts
    changes = [Change(".env", "A"), Change("certs/dev.pem", "A"), Change("app.py", "M")]
    dropped = select_dropped(changes, surface=["app.py"], goal="fix app.py", rules=rules)
    assert [d.path for d in dropped] == [".env", "certs/dev.pem"]


async def test_a_commit_s_file_is_read_once_and_every_other_commit_s_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every story of a run reads its run base's .baro.toml: kept by commit id, it is read
    from git once. A later commit's file (a story's, or the user's next run's) is its
    own; a name that moves (a branch, HEAD) is never kept; a repository without the
    commit says nothing about it."""
    from baro_shared import repoconfig

    reads: list[str] = []
    real = repoconfig.read_objects

    async def counted(repo: Path, names: list[str]) -> list[tuple[str, bytes] | None]:
        reads.append(names[-1])
        return await real(repo, names)

    monkeypatch.setattr(repoconfig, "read_objects", counted)
    unique = {"a.txt": f"{tmp_path}\n"}  # commits are kept by id, whichever test read them
    repo = make_repo(tmp_path / "r", {**unique, ".baro.toml": '[setup]\ncommand = "make one"\n'})
    first = run_git(repo, "rev-parse", "HEAD")
    elsewhere = make_repo(tmp_path / "other", {"a.txt": "a\n"})  # has no such commit
    assert await read_repo_config_at(elsewhere, first) == DEFAULT_REPO_CONFIG

    def command(config: repoconfig.RepoConfig) -> object:
        return config.setup.command if config.setup else None

    assert command(await read_repo_config_at(repo, first)) == "make one"
    assert command(await read_repo_config_at(repo, first)) == "make one"
    assert reads == [f"{first}:.baro.toml"] * 2  # the other repository's, then this one's
    (repo / ".baro.toml").write_text('[setup]\ncommand = "make two"\n')
    run_git(repo, "commit", "-q", "-am", "agent's config")
    second = run_git(repo, "rev-parse", "HEAD")
    assert command(await read_repo_config_at(repo, second)) == "make two"
    assert command(await read_repo_config_at(repo, first)) == "make one"
    assert command(await read_repo_config_at(repo, "HEAD")) == "make two"
    assert command(await read_repo_config_at(repo, "HEAD")) == "make two"
    assert reads[2:] == [f"{second}:.baro.toml", "HEAD:.baro.toml", "HEAD:.baro.toml"]
