"""Hostile agents against the runner itself: what the agent writes into its clone's
``.git`` (config, hooks, attributes, a ``.git`` file pointing elsewhere) must never make
the runner's own git commands, run outside the fence after the agent exits, execute
anything or write anywhere but the clone."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from baro_cli import runflow
from baro_shared import gitutil
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import bus, request_for, run_to_end, stack  # noqa: F401  (fixtures)

FILES = {"app.py": "x = 1\n", "README.md": "# app\n"}


def _config(tmp_path: Path) -> str:
    ran = tmp_path / "ran"
    return (
        "[core]\n"
        f'\tfsmonitor = "pwd >> {ran}-fsmonitor; echo"\n'
        f"\thooksPath = {tmp_path}/hooks\n"
        "[commit]\n\tgpgsign = true\n"
        f'[gpg]\n\tprogram = "touch {ran}-gpg; false"\n'
        f'[filter "x"]\n\tclean = "touch {ran}-filter; cat"\n\tsmudge = cat\n'
        f'[diff]\n\texternal = "touch {ran}-diff"\n'
    )


@pytest.mark.parametrize("where", ["config", "gitfile", "symlink"])
async def test_what_an_agent_writes_into_git_never_runs_outside_its_fence(
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
    where: str,
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("post-commit", "pre-commit", "post-checkout", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-hook-{hook}\n")
        (hooks / hook).chmod(0o755)
    decoy = make_repo(tmp_path / "decoy", {"decoy.txt": "decoy\n"})
    decoy_head = run_git(decoy, "rev-parse", "HEAD")
    if where == "config":
        steps = [
            {"write": ".gitattributes", "content": "*.py filter=x\n"},
            {"append": ".git/config", "content": _config(tmp_path)},
            {
                "write": ".git/hooks/post-commit",
                "content": f"#!/bin/sh\ntouch {tmp_path}/ran-own\n",
            },
            {"run": "chmod +x .git/hooks/post-commit"},
            {"write": "app.py", "content": "x = 2\n"},
        ]
    elif where == "gitfile":  # the clone's .git becomes a file naming another repository
        steps = [
            {"write": "app.py", "content": "x = 2\n"},
            {"run": f"rm -rf .git && printf 'gitdir: {decoy}/.git\\n' > .git"},
        ]
    else:  # its branches lead into another repository
        steps = [
            {"write": "app.py", "content": "x = 2\n"},
            {"run": f"rm -rf .git/refs/heads && ln -s {decoy}/.git/refs/heads .git/refs/heads"},
        ]
    script = {"default": {"steps": steps}}
    report = await run_to_end(bus, request_for(repo, "fix app.py", script))

    ran = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ran"))
    assert ran == [], f"the runner ran what the agent configured: {ran}"
    assert run_git(decoy, "rev-parse", "HEAD") == decoy_head
    assert run_git(decoy, "status", "--porcelain") == ""
    if where == "config":  # the change is collected; what the agent configured is not
        assert report.status == "delivered", report.reason
        assert report.branch is not None
        assert run_git(repo, "show", f"{report.branch}:app.py") == "x = 2"
    else:
        assert report.status == "failed"
        said = "replaced its clone's .git" if where == "gitfile" else "a symbolic link"
        assert said in (report.reason or ""), report.reason


@pytest.mark.parametrize(
    ("where", "existing"),
    [(".gitconfig", False), (".config/git/config", False), (".gitconfig", True),
     (".config/git/config", True)],
)  # fmt: skip
async def test_git_config_an_agent_writes_into_the_home_directory_never_runs_outside_its_fence(
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    existing: bool,
) -> None:
    """The home directory is the user's and stays writable in the fence (tools keep their
    state there), so the agent can write a global git config the user does not have:
    hooks, an fsmonitor, a filter its own ``.gitattributes`` names, signing with a program
    of its choosing. Every git process baro runs afterwards in its own repositories (the
    runner's in the clone, the merger's, the delivery's fetch from them) must run none of
    it; and the user's own global config, where there is one, is read-only in the fence."""
    home = tmp_path / "home"
    home.mkdir()
    config = home / where
    mine = "[user]\n\tname = Me\n"
    if existing:
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(mine)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    repo = make_repo(tmp_path / "user", FILES)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("post-commit", "pre-commit", "post-checkout", "reference-transaction",
                 "pre-auto-gc", "post-merge"):  # fmt: skip
        (hooks / hook).write_text(f"#!/bin/sh\npwd >> {tmp_path}/ran-hook-{hook}\n")
        (hooks / hook).chmod(0o755)
    steps = [
        {"write": ".gitattributes", "content": "*.py filter=x\n"},
        {"run": f"mkdir -p {config.parent} && cat >> {config} <<'END'\n{_config(tmp_path)}END"},
        {"write": "app.py", "content": "x = 2\n"},
    ]
    script = {"default": {"steps": steps}}
    report = await _run_without_looking(bus, request_for(repo, "fix app.py", script))

    if existing:
        assert config.read_text() == mine, "the user's own config is read-only for agents"
    else:
        assert "fsmonitor" in config.read_text(), "the agent wrote it"
    ran = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ran"))
    assert ran == [], f"baro's git ran what the agent configured: {ran}"
    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert run_git(repo, "show", f"{report.branch}:app.py") == "x = 2"


async def test_a_git_an_agent_puts_on_the_path_is_never_run_by_baro(
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A folder of ``PATH`` the user can write (``~/.local/bin``, ``~/.cargo/bin``, pyenv's
    shims) stays writable in the fence: a ``git`` the agent puts there must not be what
    baro's runner, merger or delivery start afterwards."""
    bin_dir = tmp_path / "home" / "bin"
    bin_dir.mkdir(parents=True)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    real_git = shutil.which("git", path=os.environ["PATH"].split(os.pathsep, 1)[1])
    marker = tmp_path / "ran-planted-git"
    repo = make_repo(tmp_path / "user", FILES)
    planted = f'#!/bin/sh\\necho "$@" >> {marker}\\nexec {real_git} "$@"\\n'
    steps = [
        {"run": f"printf '{planted}' > {bin_dir}/git && chmod +x {bin_dir}/git"},
        {"write": "app.py", "content": "x = 2\n"},
    ]
    request = request_for(repo, "fix app.py", {"default": {"steps": steps}})
    report = await _run_without_looking(bus, request)

    assert (bin_dir / "git").exists(), "the agent planted it"
    assert not marker.exists(), f"baro ran the agent's git: {marker.read_text()}"
    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert run_git(repo, "show", f"{report.branch}:app.py") == "x = 2"


async def _run_without_looking(on: Bus, request: s.RunSubmitted) -> runflow.RunReport:
    """A run followed to its end without run_to_end's check of the user's checkout, which
    runs git as the user would, with what the agent left in the home directory (the
    user's own git is not baro's to protect)."""
    await runflow.submit(on, request)
    quiet = runflow.Progress(open(os.devnull, "w"), quiet=True)  # noqa: SIM115
    return await asyncio.wait_for(runflow.follow(on, request, quiet, None), 90)


def test_baros_own_git_keeps_only_the_users_ignore_file_and_safe_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    (home / ".gitconfig").write_text(
        "[core]\n\texcludesFile = ~/.ignore-me\n\tfsmonitor = true\n"
        "[safe]\n\tdirectory = /srv/shared repo\n\tdirectory = /srv/it's\n[user]\n\tname = Me\n"
    )
    env = gitutil.git_env() | gitutil.own_repository_config.__wrapped__()

    def read(*args: str) -> str:
        done = subprocess.run(["git", "config", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True)  # fmt: skip
        return done.stdout.strip()

    assert read("--get-all", "safe.directory").splitlines() == ["/srv/shared repo", "/srv/it's"]
    assert read("core.excludesFile") == str(home / ".ignore-me")
    assert read("core.fsmonitor") == "" and read("user.name") == ""


@pytest.fixture
def users_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home directory with no global git config and a folder of ``PATH`` in it holding
    the user's (logged-in) ``gh``: set before baro starts, as a user's are."""
    home = tmp_path / "home"
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "gh").write_text(USERS_GH.format(log=tmp_path / "gh-log"))
    (bin_dir / "gh").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("GH_TOKEN", "GITHUB_TOKEN", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    return home


USERS_GH = """#!/bin/sh
printf '%s\\n' "$*" >> "{log}"
case "$1 $2" in
  "auth status") exit 0;;
  "pr create") cat > /dev/null; echo "https://github.com/acme/app/pull/7"; exit 0;;
esac
exit 1
"""


async def test_publishing_and_the_next_run_run_nothing_an_agent_left_in_the_home_directory(
    users_home: Path,
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Publishing starts ``gh`` (and ``ssh``) and reads the user's global git config for
    credentials, outside the fence; the next run reads it for the user's identity and
    signing. An agent that writes a ``~/.gitconfig`` the user does not have (a credential
    helper, hooks, a signing program), overwrites the user's ``gh`` in ``~/.local/bin``
    and puts an ``ssh`` there must get none of it run: not by this run's publishing, not
    by the next run's preparation."""
    bin_dir = users_home / ".local" / "bin"
    users_gh = (bin_dir / "gh").read_text()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("reference-transaction", "pre-push", "post-checkout"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-hook-{hook}\n")
        (hooks / hook).chmod(0o755)
    signer = users_home / ".local" / "share" / "sign"
    config = (
        f'[credential]\n\thelper = "!touch {tmp_path}/ran-credential-helper; true"\n'
        f"[core]\n\thooksPath = {hooks}\n"
        "[commit]\n\tgpgsign = true\n"
        f"[gpg]\n\tprogram = {signer}\n"
    )
    planted = f"#!/bin/sh\\ntouch {tmp_path}/ran-planted-$(basename $0)\\nexit 0\\n"
    steps = [
        {"run": f"cat > {users_home}/.gitconfig <<'END'\n{config}END"},
        {"run": f"mkdir -p {signer.parent} && printf '{planted}' > {signer} && chmod +x {signer}"},
        {"run": f"printf '{planted}' > {bin_dir}/gh 2>/dev/null; true"},
        {"run": f"printf '{planted}' > {bin_dir}/ssh && chmod +x {bin_dir}/ssh; true"},
        {"write": "app.py", "content": "x = 2\n"},
    ]
    repo = make_repo(tmp_path / "user", FILES)
    bare = tmp_path / "remote.git"
    run_git(tmp_path, "init", "--quiet", "--bare", str(bare))
    run_git(repo, "remote", "add", "origin", str(bare))
    run_git(repo, "push", "--quiet", "origin", "main")
    first = request_for(repo, "fix app.py", {"default": {"steps": steps}}, publish="pr")
    report = await _run_without_looking(bus, first)

    assert "gpgsign" in (users_home / ".gitconfig").read_text(), "the agent wrote it"
    assert (bin_dir / "ssh").exists(), "the agent planted it"
    assert (bin_dir / "gh").read_text() == users_gh, "the user's gh is read-only for agents"
    assert report.status == "delivered", report.reason
    assert report.branch is not None
    assert run_git(bare, "rev-parse", report.branch) == run_git(repo, "rev-parse", report.branch)
    assert report.pr_url == "https://github.com/acme/app/pull/7", report.publish_note
    assert "pr create" in (tmp_path / "gh-log").read_text()

    second = request_for(repo, "fix app.py again", {"default": {"steps": [
        {"write": "app.py", "content": "x = 3\n"}]}})  # fmt: skip
    again = await _run_without_looking(bus, second)
    assert again.status == "delivered", again.reason
    ran = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ran"))
    assert ran == [], f"baro ran what the agent left in the home directory: {ran}"


async def test_a_push_over_ssh_never_starts_an_ssh_an_agent_put_on_the_path(
    users_home: Path,
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    bin_dir = users_home / ".local" / "bin"
    planted = f"#!/bin/sh\\ntouch {tmp_path}/ran-planted-ssh\\nexit 1\\n"
    steps = [
        {"run": f"printf '{planted}' > {bin_dir}/ssh && chmod +x {bin_dir}/ssh"},
        {"write": "app.py", "content": "x = 2\n"},
    ]
    repo = make_repo(tmp_path / "user", FILES)
    # nothing listens there: the push fails, after starting whichever ssh it starts
    run_git(repo, "remote", "add", "origin", "ssh://git@127.0.0.1:9/acme/app.git")
    request = request_for(repo, "fix app.py", {"default": {"steps": steps}}, publish="push")
    report = await _run_without_looking(bus, request)

    assert (bin_dir / "ssh").exists(), "the agent planted it"
    assert report.status == "delivered", report.reason
    assert report.publish_note is not None and "pushing it to origin" in report.publish_note
    assert not (tmp_path / "ran-planted-ssh").exists(), "baro started the agent's ssh"


@pytest.fixture
def users_dotfiles(users_home: Path) -> Path:
    """The user's global config kept with their dotfiles: ``~/.gitconfig`` a link to it,
    including a file that is there and an optional one that is not."""
    dotfiles = users_home / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "identity.inc").write_text("[user]\n\tname = Me\n")
    (dotfiles / "gitconfig").write_text(
        "[include]\n\tpath = ~/dotfiles/identity.inc\n\tpath = ~/.gitconfig.local\n"
    )
    (users_home / ".gitconfig").symlink_to(dotfiles / "gitconfig")
    return dotfiles


@pytest.mark.parametrize("attack", ["optional-include", "existing-include", "relink"])
async def test_an_agent_cannot_reach_baro_through_the_files_the_users_config_includes(
    users_dotfiles: Path,
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
    attack: str,
) -> None:
    """Dotfiles: a global config that is a link, including a file that is there and an
    optional one that is not. The agent writes the optional one, tries to rewrite the
    one that is there, or points the link at a config of its own; the next run's
    preparation (which reads the user's config for identity and signing) runs none of
    it."""
    home = users_dotfiles.parent
    signer = home / ".local" / "share" / "sign"
    evil = f"[commit]\n\tgpgsign = true\n[gpg]\n\tprogram = {signer}\n"
    target = {
        "optional-include": home / ".gitconfig.local",
        "existing-include": users_dotfiles / "identity.inc",
        "relink": home / "mine",
    }[attack]
    planted = f"#!/bin/sh\\ntouch {tmp_path}/ran-signer\\nexit 0\\n"
    steps = [
        {"run": f"mkdir -p {signer.parent} && printf '{planted}' > {signer} && chmod +x {signer}"},
        {"run": f"cat >> {target} <<'END'\n{evil}END\ntrue"},
        {"write": "app.py", "content": "x = 2\n"},
    ]
    if attack == "relink":
        steps.insert(2, {"run": f"ln -sfn {target} {home}/.gitconfig"})
    repo = make_repo(tmp_path / "user", FILES)
    first = request_for(repo, "fix app.py", {"default": {"steps": steps}})
    report = await _run_without_looking(bus, first)
    assert report.status == "delivered", report.reason
    if attack == "existing-include":
        assert target.read_text() == "[user]\n\tname = Me\n", "read-only for agents"
    else:
        assert "gpgsign" in target.read_text(), "the agent wrote it"

    second = request_for(repo, "fix app.py again", {"default": {"steps": [
        {"write": "app.py", "content": "x = 3\n"}]}})  # fmt: skip
    again = await _run_without_looking(bus, second)
    assert again.status == "delivered", again.reason
    assert not (tmp_path / "ran-signer").exists(), "baro ran the agent's signing program"
