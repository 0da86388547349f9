"""The launcher that fences an agent in: what it hides, what it keeps, how it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baro_shared import launcher, sandbox
from baro_shared.backends import SandboxRequired, agent_fence, baro_installation
from baro_shared.service import announce_sandbox
from baro_shared.settings import Settings
from tests.conftest import ends_within, launcher_of_a_killed_runner


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    state, cache, repo = tmp_path / "state", tmp_path / "cache", tmp_path / "user"
    workspace = cache / "workspaces" / "run" / "S1-1"
    for folder in (state / "nats", workspace / "repo", cache / "workspaces" / "other", repo):
        folder.mkdir(parents=True)
    (state / "nats" / "client.token").write_text("secret\n")
    (cache / "workspaces" / "other" / "file").write_text("another story's\n")
    (workspace / "repo" / "mine.txt").write_text("mine\n")
    (repo / ".env").write_text("USER=secret\n")
    return {"state": state, "cache": cache, "repo": repo, "workspace": workspace}


@pytest.fixture(params=["cold", "standby"])
def start(request: pytest.FixtureRequest) -> str:
    """How the launcher is started: with its agent's command line, or ahead of it, on
    standby, reading the agent from its standard input (``launcher.serve``)."""
    return request.param


def fenced(
    dirs: dict[str, Path], script: str, *args: object, start: str = "cold"
) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` with ``args`` as $0, $1, ..., fenced in as a story's agent is."""
    fence = sandbox.fence([dirs["state"], dirs["cache"], dirs["repo"]], [dirs["workspace"]])
    argv = ["/bin/sh", "-c", script, *map(str, args)]
    cwd = dirs["workspace"] / "repo"
    if start == "cold":
        return subprocess.run(fence.command(argv), cwd=cwd, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
    done = subprocess.run(
        sandbox.standby_command(dies_with=os.getpid()),
        input=fence.request(argv, os.environ, cwd),
        capture_output=True,
        timeout=60,
        cwd="/",
        env={},
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def test_this_machine_can_fence_agents_in(dirs: dict[str, Path]) -> None:
    assert sandbox.unavailable_reason(sandbox.fence([dirs["state"]], [])) is None


def test_hidden_directories_are_empty_and_the_workspace_is_kept(
    dirs: dict[str, Path], start: str
) -> None:
    done = fenced(
        dirs,
        'ls -A "$0"; echo --; ls -A "$1"; echo --; ls -A "$2"; echo --; ls "$2/workspaces"; '
        "echo --; pwd; cat mine.txt; echo new > made.txt",
        dirs["state"], dirs["repo"], dirs["cache"], start=start,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    state, repo, cache, workspaces, rest = done.stdout.split("--\n")
    assert state == "" and repo == "" and cache == "workspaces\n"
    assert workspaces == "run\n", "other stories' workspaces are not there"
    assert rest == f"{dirs['workspace'] / 'repo'}\nmine\n"
    assert (dirs["workspace"] / "repo" / "made.txt").read_text() == "new\n"
    assert (dirs["state"] / "nats" / "client.token").exists(), "outside, nothing changed"


def test_no_other_process_no_capability_and_the_mounts_stay(
    dirs: dict[str, Path], start: str
) -> None:
    done = fenced(
        dirs,
        "ls /proc | grep -c '^[0-9]'; grep CapEff /proc/self/status; id -u; "
        f"umount {dirs['state']} 2>/dev/null && echo unmounted; "
        f"mount --bind / {dirs['state']} 2>/dev/null && echo mounted; "
        f"ls -A {dirs['state']}",
        start=start,
    )
    assert done.returncode == 0, done.stderr
    count, caps, uid, *rest = done.stdout.splitlines()
    assert int(count) <= 4  # its init, the shell, ls, grep
    assert caps.split() == ["CapEff:", "0000000000000000"]
    assert int(uid) != 0, "root outside is not root inside"
    assert rest == []


def test_exit_codes_and_signals_come_through(dirs: dict[str, Path], start: str) -> None:
    assert fenced(dirs, "exit 3", start=start).returncode == 3
    assert fenced(dirs, "kill -TERM $$", start=start).returncode == -signal.SIGTERM
    missing = subprocess.run(
        sandbox.fence([dirs["state"]], []).command(["no-such-agent-binary"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 127
    assert "baro sandbox: cannot start no-such-agent-binary" in missing.stderr


def test_what_the_agent_started_dies_with_it_even_in_a_session_of_its_own(
    dirs: dict[str, Path], tmp_path: Path, start: str
) -> None:
    marker = tmp_path / "survivor"
    script = f"setsid sh -c 'sleep 3; touch {marker}' >/dev/null 2>&1 & exit 0"
    done = fenced(dirs, script, start=start)
    assert done.returncode == 0
    time.sleep(4)
    assert not marker.exists()


def test_a_fenced_agent_dies_with_the_process_that_started_it(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    """The launcher asks for the parent-death signal itself (the runner starts it without
    a preexec_fn): a runner killed outright takes its agents with it, whatever session
    they are in."""
    marker = tmp_path / "survivor"
    launcher = launcher_of_a_killed_runner(
        f"fence = sandbox.fence([{str(dirs['state'])!r}], [])\n"
        f"argv = fence.command(['sh', '-c', 'sleep 2; touch {marker}'], dies_with=os.getpid())\n"
        "proc = subprocess.Popen(argv, start_new_session=True)"
    )
    assert ends_within(launcher), "the launcher outlived the process that started it"
    time.sleep(2.5)
    assert not marker.exists()


def test_terminating_the_group_stops_the_agent(dirs: dict[str, Path]) -> None:
    fence = sandbox.fence([dirs["state"]], [])
    proc = subprocess.Popen(
        fence.command(["sleep", "60"]), start_new_session=True, stdout=subprocess.DEVNULL
    )
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM


def test_a_fence_that_cannot_be_put_up_says_why(tmp_path: Path) -> None:
    broken = sandbox.Fence(hidden=(str(tmp_path / "missing"),))
    reason = sandbox.unavailable_reason(broken)
    assert reason is not None and "missing" in reason and "No such file" in reason


def test_agent_fence_follows_the_setting(
    dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(state_dir=dirs["state"], cache_dir=dirs["cache"])
    fence = agent_fence(settings, keep=dirs["workspace"], away_from=dirs["repo"])
    assert fence is not None
    assert set(fence.hidden) == {str(dirs[k].resolve()) for k in ("state", "cache", "repo")}
    installation, writable = baro_installation()
    assert {str(dirs["workspace"].resolve()), *map(str, writable)} <= set(fence.kept)
    # each is read-only itself, or inside a read-only folder (``/`` for root)
    for path in map(str, installation):
        assert any(path == r or path.startswith(r.rstrip("/") + "/") for r in fence.read_only)
    off = settings.model_copy(update={"agent_sandbox": "off"})
    assert agent_fence(off, keep=dirs["workspace"]) is None

    monkeypatch.setattr(sandbox, "unavailable_reason", lambda fence: "no user namespaces")
    assert agent_fence(settings, keep=dirs["workspace"]) is None  # auto: unfenced, warned
    required = settings.model_copy(update={"agent_sandbox": "require"})
    with pytest.raises(SandboxRequired, match="no user namespaces"):
        agent_fence(required, keep=dirs["workspace"])


def test_a_read_only_directory_inside_a_hidden_one_is_readable_and_stays(
    dirs: dict[str, Path],
) -> None:
    objects = dirs["cache"] / "sources" / "user.git" / "objects"
    objects.mkdir(parents=True)
    (objects / "pack").write_text("the user's objects\n")
    (dirs["cache"] / "sources" / "user.git" / "config").write_text("hidden\n")
    fence = sandbox.fence([dirs["cache"]], [dirs["workspace"]], [objects])
    done = subprocess.run(
        fence.command(
            ["/bin/sh", "-c", 'cat "$0/pack"; ls -A "$0/.."; chmod u+w "$0/pack" '
             '|| echo refused; echo x > "$0/new" || echo refused', str(objects)]
        ),
        cwd=dirs["workspace"] / "repo", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["the user's objects", "objects", "refused", "refused"]
    assert "Read-only file system" in done.stderr
    assert (objects / "pack").read_text() == "the user's objects\n"
    assert not (objects / "new").exists()


def test_a_read_only_file_can_be_read_and_not_changed_or_replaced(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = home / ".gitconfig"
    config.write_text("[user]\n\tname = Me\n")
    inside_hidden = dirs["state"] / "kept.conf"
    inside_hidden.write_text("mine\n")
    fence = sandbox.fence([dirs["state"]], [dirs["workspace"]], [config, inside_hidden])
    done = subprocess.run(
        fence.command(
            ["/bin/sh", "-c", 'cat "$0" "$1"; echo x >> "$0" || echo refused; '
             'rm -f "$0" || echo refused; mv "$1" "$0.moved" || echo refused; ls -A "$2"',
             str(config), str(inside_hidden), str(dirs["state"])]
        ),
        cwd=dirs["workspace"] / "repo", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[user]", "\tname = Me", "mine", "refused", "refused", "refused", "kept.conf"
    ]  # fmt: skip
    assert config.read_text() == "[user]\n\tname = Me\n"
    assert inside_hidden.read_text() == "mine\n"
    assert sorted(p.name for p in dirs["state"].iterdir()) == ["kept.conf", "nats"]


def test_what_baro_runs_from_is_read_only_for_agents(dirs: dict[str, Path]) -> None:
    """baro's virtual environment, its interpreter and standard library, and the folders
    its packages come from are imported afresh by the fence's launcher and every baro
    process, outside the fence: an agent must not be able to change them. The
    interpreter's own site-packages stays writable (an agent may install into it)."""
    settings = Settings(state_dir=dirs["state"], cache_dir=dirs["cache"])
    fence = agent_fence(settings, keep=dirs["workspace"])
    assert fence is not None
    installation, writable = baro_installation()
    protected = [
        Path(launcher.__file__).parent,  # the launcher's own folder
        Path(launcher.__file__),
        Path(os.__file__),  # the standard library
        Path(os.path.realpath(sys.executable)),
        *installation,
    ]
    check = 'for f in "$@"; do if [ -w "$f" ]; then echo "writable $f"; else echo "read-only $f"; fi; done'
    done = subprocess.run(
        fence.command(["/bin/sh", "-c", check, "sh", *map(str, [*protected, *writable])]),
        cwd=dirs["workspace"] / "repo", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = done.stdout.splitlines()
    assert said == [f"read-only {p}" for p in protected] + [f"writable {p}" for p in writable]
    assert all(os.access(p, os.W_OK) for p in protected), "outside the fence nothing changed"


def test_an_agent_cannot_change_the_system_even_when_baro_runs_as_root(
    dirs: dict[str, Path],
) -> None:
    """Root's files are the agent's own in its namespace (the uid it has there is root
    outside): for a baro running as root, everything but the agent's workspace, its home
    and the temporary folders is read-only in the fence. (For anyone else the system's
    folders are not theirs to write anyway.)"""
    settings = Settings(state_dir=dirs["state"], cache_dir=dirs["cache"])
    fence = agent_fence(settings, keep=dirs["workspace"])
    assert fence is not None
    system = [p for p in ("/usr/local/bin", "/etc", "/usr/bin", "/var/lib") if os.path.isdir(p)]
    ours = [str(Path.home()), "/tmp", str(dirs["workspace"] / "repo")]
    check = 'for f in "$@"; do if [ -w "$f" ]; then echo "writable $f"; else echo "read-only $f"; fi; done'
    done = subprocess.run(
        fence.command(["/bin/sh", "-c", check, "sh", *system, *ours]),
        cwd=dirs["workspace"] / "repo", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"read-only {p}" for p in system] + [
        f"writable {p}" for p in ours
    ]


def test_a_read_only_folder_cannot_be_moved_aside_with_a_folder_above_it(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    """Renaming a folder above a read-only one (``~/.pyenv`` above the standard library)
    and putting another in its place would swap what baro imports: no folder above a
    read-only one can be renamed or removed in the fence, and each stays writable."""
    protected = tmp_path / "tools" / "python" / "lib"
    protected.mkdir(parents=True)
    (protected / "os.py").write_text("the real one\n")
    fence = sandbox.fence([dirs["state"]], [dirs["workspace"]], [protected])
    script = (
        'echo evil > "$0/lib/os.py" || echo refused; '
        'mv "$0" "$0.aside" || echo refused; mv "$1" "$1.aside" || echo refused; '
        'rm -rf "$1" 2>/dev/null; echo mine > "$0/notes.txt" && echo written'
    )
    done = subprocess.run(
        fence.command(["/bin/sh", "-c", script, str(protected.parent), str(tmp_path / "tools")]),
        cwd=dirs["workspace"] / "repo", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["refused", "refused", "refused", "written"], done.stderr
    assert (protected / "os.py").read_text() == "the real one\n"
    assert not (tmp_path / "tools.aside").exists()


def test_the_fence_is_tried_at_start_not_again_at_the_first_story(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service tries the fence when it starts (``announce_sandbox``), often before
    baro's folders exist; the first story's fence must not be another one to try, with
    a process started and waited for while that story's runner has others to hand over."""
    settings = Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    tried: list[sandbox.Fence] = []
    real = sandbox.unavailable_reason

    def trying(fence: sandbox.Fence) -> str | None:
        if fence not in sandbox._probed:
            tried.append(fence)
        return real(fence)

    monkeypatch.setattr(sandbox, "unavailable_reason", trying)
    announce_sandbox(settings)
    workspace = settings.workspaces_dir / "run" / "S1-1"
    workspace.mkdir(parents=True)
    assert agent_fence(settings, keep=workspace) is not None
    assert len(tried) == 1
    assert set(tried[0].hidden) == {
        str(p.resolve()) for p in (settings.state_dir, settings.cache_dir)
    }
