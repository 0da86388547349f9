"""The tools and global git config baro uses on the user's behalf are those there before
any agent started (``baro_shared.usertools``); the fence keeps the replaceable ones
read-only and mounts no read-only path twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baro_shared import gitutil, sandbox, usertools


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    return home


def _tool(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("#!/bin/sh\n")
    (folder / name).chmod(0o755)
    return folder / name


def test_a_tool_is_where_it_was_first_found_on_that_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    early, late = tmp_path / "early", tmp_path / "late"
    users_gh = _tool(late, "gh")
    monkeypatch.setenv("PATH", f"{early}{os.pathsep}{late}")
    assert usertools.tool("gh") == str(users_gh)
    assert usertools.tool("ssh") is None
    _tool(early, "gh")  # ahead on PATH, put there afterwards
    _tool(early, "ssh")
    assert usertools.tool("gh") == str(users_gh)
    assert usertools.tool("ssh") is None
    assert users_gh in usertools.replaceable_tools()


def test_nothing_is_kept_from_git_when_no_global_config_appeared(home: Path) -> None:
    assert usertools.global_config_at_start() == ()
    assert usertools.user_config_env() == {}
    assert "GIT_CONFIG_GLOBAL" not in gitutil.git_env()
    (home / ".gitconfig").write_text("[user]\n\tname = Me\n")
    assert usertools.user_config_env() == {"GIT_CONFIG_GLOBAL": os.devnull}
    # every git baro runs outside its own repositories (a remote source's fetch, the
    # user's identity, publishing) reads the user's config so
    assert gitutil.git_env()["GIT_CONFIG_GLOBAL"] == os.devnull
    assert gitutil.git_sync("config", "--global", "user.name", check=False).out == ""


def test_a_config_file_that_appeared_beside_the_users_own_is_not_read(home: Path) -> None:
    (home / ".gitconfig").write_text("[user]\n\tname = Me\n")
    assert usertools.global_config_at_start() == (home / ".gitconfig",)
    (home / ".gitconfig").write_text("[user]\n\tname = Me Too\n")  # the user's own change
    assert usertools.user_config_env() == {}
    xdg = home / ".config" / "git" / "config"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("[core]\n\tfsmonitor = evil\n")
    assert usertools.user_config_env() == {"GIT_CONFIG_GLOBAL": str(home / ".gitconfig")}


def test_a_named_global_config_that_appeared_is_not_read(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = home / "my.gitconfig"
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(named))
    assert usertools.global_config_files() == (named,)
    assert usertools.global_config_at_start() == ()
    named.write_text("[core]\n\tfsmonitor = evil\n")
    assert usertools.user_config_env() == {"GIT_CONFIG_GLOBAL": os.devnull}


def test_a_read_only_path_inside_another_is_not_mounted_again(tmp_path: Path) -> None:
    for d in ("ro/in", "ro/kept/in", "elsewhere"):
        (tmp_path / d).mkdir(parents=True)
    ro, kept = tmp_path / "ro", tmp_path / "ro" / "kept"
    fence = sandbox.fence(
        [], [kept], [ro, ro / "in", kept / "in", tmp_path / "elsewhere", tmp_path / "missing"]
    )
    assert fence.read_only == tuple(
        sorted(str(p.resolve()) for p in (ro, kept / "in", tmp_path / "elsewhere"))
    )


def test_a_file_the_users_config_includes_is_followed_from_the_start(home: Path) -> None:
    dotfiles = home / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "work.inc").write_text("[user]\n\temail = me@work\n")
    (home / ".gitconfig").write_text(
        "[include]\n\tpath = ~/.gitconfig.local\n"
        '[includeIf "gitdir:~/work/"]\n\tpath = dotfiles/work.inc\n'
    )
    assert usertools.global_config_at_start() == (home / ".gitconfig",)
    xdg = home / ".config" / "git"
    # the global config's places, and what it includes that is there (not the missing one)
    assert usertools.read_only_config() == [
        *sorted([home / ".gitconfig", xdg, xdg / "config"]),
        dotfiles / "work.inc",
    ]
    assert usertools.user_config_env() == {}
    (home / ".gitconfig.local").write_text("[core]\n\tfsmonitor = evil\n")  # was missing
    assert usertools.user_config_env() == {"GIT_CONFIG_GLOBAL": os.devnull}


def test_a_global_config_that_now_leads_elsewhere_is_not_read(home: Path) -> None:
    mine = home / "dotfiles" / "gitconfig"
    mine.parent.mkdir()
    mine.write_text("[user]\n\tname = Me\n")
    (home / ".gitconfig").symlink_to(mine)
    assert usertools.user_config_env() == {}
    (home / "evil").write_text("[core]\n\tfsmonitor = evil\n")
    (home / ".gitconfig").unlink()
    (home / ".gitconfig").symlink_to(home / "evil")
    assert usertools.user_config_env() == {"GIT_CONFIG_GLOBAL": os.devnull}
