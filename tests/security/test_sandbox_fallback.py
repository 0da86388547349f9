"""Where the kernel will not give baro a user namespace, for real: `baro doctor` says so
and what to do, `baro run` says so and runs its agents unfenced (the default, ``auto``),
or refuses to run them (``BARO_AGENT_SANDBOX=require``) with one line and nothing changed.

The machine without user namespaces is made with the kernel's own limit: a namespace of
this test whose ``user.max_user_namespaces`` is 0, so the fence's ``unshare`` fails inside
it as it does on a host that forbids them. (What still holds for an unfenced agent that
is not root is proven in test_hostile_secrets.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_repo, run_git, snapshot

pytestmark = pytest.mark.slow

BARO = str(Path(sys.executable).parent / "baro")
LIMIT_ZERO = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"'


@pytest.fixture(scope="module")
def without_user_namespaces() -> list[str]:
    """The command prefix that runs a command where no user namespace can be made."""
    prefix = ["unshare", "--user", "--map-root-user", "sh", "-c", LIMIT_ZERO, "sh"]
    try:
        tried = subprocess.run(
            [*prefix, "unshare", "--user", "true"], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        pytest.skip("needs util-linux unshare")
    if "unshare failed" not in tried.stderr:
        pytest.skip(f"cannot take user namespaces away here: {tried.stderr.strip()}")
    return prefix


def baro_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BARO_", "NATS_"))}
    env.update(
        BARO_STATE_DIR=str(tmp_path / "state"),
        BARO_CACHE_DIR=str(tmp_path / "cache"),
        BARO_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def sandbox_check(prefix: list[str], env: dict[str, str]) -> tuple[int, dict[str, str | None]]:
    done = subprocess.run(
        [*prefix, BARO, "doctor", "--backend", "scripted", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = json.loads(done.stdout)
    (check,) = [c for c in report["checks"] if c["name"] == "agent sandbox"]
    return done.returncode, check


def test_doctor_names_the_missing_fence_and_the_fix(
    without_user_namespaces: list[str], tmp_path: Path
) -> None:
    code, check = sandbox_check(without_user_namespaces, baro_env(tmp_path))
    assert code == 0, "agents still run (unfenced): a warning, not a failure"
    assert check["status"] == "warn"
    assert (check["detail"] or "").startswith("agent sandbox unavailable (unshare: ")
    assert "agents run unfenced" in (check["detail"] or "")
    assert "user namespaces" in (check["fix"] or "") and "BARO_AGENT_SANDBOX=require" in (
        check["fix"] or ""
    )

    code, check = sandbox_check(
        without_user_namespaces, baro_env(tmp_path, BARO_AGENT_SANDBOX="require")
    )
    assert code == 1 and check["status"] == "fail"

    _, check = sandbox_check([], baro_env(tmp_path))  # this machine as it is
    assert check["status"] == "ok", check


def run_in(
    prefix: list[str], tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    repo = make_repo(tmp_path / "user", {"app.py": "x = 1\n"}, dirty=True)
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps({"default": {"steps": [{"write": "app.py", "content": "x = 2\n"}]}})
    )
    before = snapshot(repo)
    done = subprocess.run(
        [*prefix, BARO, "run", "set x to 2 in app.py", "--backend", "scripted",
         "--script", str(script), "--mode", "focused", "--yes", "--json", "--quiet"],
        cwd=repo, env=baro_env(tmp_path, **env), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert snapshot(repo) == before, "the run changed the user's checkout"
    return done, repo


def test_a_run_says_its_agents_are_unfenced_and_still_delivers(
    without_user_namespaces: list[str], tmp_path: Path
) -> None:
    done, repo = run_in(without_user_namespaces, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "baro: agent sandbox unavailable (unshare: " in done.stderr, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "delivered"
    assert run_git(repo, "show", f"{report['branch']}:app.py") == "x = 2"


def test_require_refuses_to_run_an_agent_unfenced(
    without_user_namespaces: list[str], tmp_path: Path
) -> None:
    done, repo = run_in(without_user_namespaces, tmp_path, BARO_AGENT_SANDBOX="require")
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "agents must run fenced in (BARO_AGENT_SANDBOX=require) and cannot here" in line
    assert "allow unprivileged user namespaces" in line
    assert run_git(repo, "branch", "--list", "baro/*") == ""
