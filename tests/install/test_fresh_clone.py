"""A fresh clone on a machine as a new user finds it: `env -i`, a minimal PATH, the
distribution's Python, a home that has never seen uv (`make test-install`).

The clone is of the committed HEAD. uv's package cache is shared with the outer run (the
project's dependencies are in it after `make install`), so the test measures the install
path, not the network; uv itself is installed from PyPI into the clone's private .venv-uv
whenever no uv is on the minimal PATH.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
# README's install lines, run here in this order
FRESH_CLONE_TARGETS = ("install-cli", "demo")


def _uv_cache_dir() -> Path:
    if os.environ.get("UV_CACHE_DIR"):
        return Path(os.environ["UV_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "uv"


def _system_python() -> str | None:
    return shutil.which("python3", path=MINIMAL_PATH)


def _python_version(python: str) -> tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    major, minor = out.stdout.split()
    return int(major), int(minor)


def _full_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _has_venv(python: str) -> bool:
    """Whether ``python -m venv`` can make an environment with pip (Debian: python3-venv)."""
    probe = subprocess.run(
        [python, "-c", "import ensurepip, venv"], capture_output=True, env={"PATH": MINIMAL_PATH}
    )
    return probe.returncode == 0


def stock_env(home: Path, **extra: str) -> dict[str, str]:
    """What `env -i PATH=/usr/local/bin:/usr/bin:/bin` leaves, plus a home of its own."""
    return {"PATH": MINIMAL_PATH, "HOME": str(home), **extra}


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "baro"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def make(
    clone: Path, env: dict[str, str], *targets: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(clone), *targets],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_fresh_clone_installs_puts_baro_on_path_and_runs_the_demo(
    clone: Path, tmp_path: Path
) -> None:
    python = _system_python()
    if python is None:
        pytest.skip(f"no python3 on {MINIMAL_PATH}: this machine has no system Python")
    if _python_version(python) < (3, 11):
        pytest.skip(f"{python} is older than 3.11 (make install says so; covered below)")
    home = tmp_path / "home"
    home.mkdir()
    env = stock_env(home, UV_CACHE_DIR=str(_uv_cache_dir()))
    uv_on_path = shutil.which("uv", path=MINIMAL_PATH) is not None
    if not uv_on_path and not _has_venv(python):
        failed = make(clone, env, "install")
        assert failed.returncode != 0
        assert "install python3-venv" in failed.stderr, failed.stderr
        pytest.skip(f"{python} has no venv module: make names python3-venv (checked)")

    installed = make(clone, env, FRESH_CLONE_TARGETS[0])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    if not uv_on_path:
        assert (clone / ".venv-uv" / "bin" / "uv").is_file()
    cfg = dict(
        line.split(" = ", 1) for line in (clone / ".venv" / "pyvenv.cfg").read_text().splitlines()
    )
    assert cfg["version_info"] == _full_version(python), "the .venv is on the machine's Python"
    link = home / ".local" / "bin" / "baro"
    assert link.is_symlink() and link.resolve() == (clone / ".venv" / "bin" / "baro").resolve()
    assert f"{home}/.local/bin is not on your PATH" in installed.stdout

    demo = make(clone, env, FRESH_CLONE_TARGETS[1])
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert ": delivered" in demo.stdout
    assert "branch: baro/fix-the-off-by-one-in-countdown  (" in demo.stdout

    on_path = stock_env(home, PATH=f"{home}/.local/bin:{MINIMAL_PATH}")
    helped = subprocess.run(["baro", "--help"], env=on_path, capture_output=True, text=True)
    assert helped.returncode == 0 and "run" in helped.stdout

    # the install and the demo leave nothing in the clone that git would see
    status = subprocess.run(
        ["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True
    )
    assert status.stdout == ""


def _shim(directory: Path, script: str) -> Path:
    """A python3 in ``directory`` that is the real one except where ``script`` intervenes."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "python3"
    shim.write_text(script)
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return shim


def _clean_of_uv(env: dict[str, str]) -> None:
    if shutil.which("uv", path=env["PATH"]):
        pytest.skip("uv is on the minimal PATH here, so make never needs a venv for it")


def test_without_the_venv_module_make_says_to_install_python3_venv(
    clone: Path, tmp_path: Path
) -> None:
    """Debian's and Ubuntu's stock python3 has no ensurepip until python3-venv is installed;
    its `python3 -m venv` then fails. The shim fails the same way, with Debian's wording."""
    real = _system_python() or shutil.which("python3")
    assert real
    shim = _shim(
        tmp_path / "shim",
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then\n'
        '  echo "The virtual environment was not created successfully because ensurepip is '
        "not available.  On Debian/Ubuntu systems, you need to install the python3-venv "
        'package" ; exit 1\n'
        "fi\n"
        f'exec {real} "$@"\n',
    )
    env = stock_env(tmp_path / "home")
    _clean_of_uv(env)
    failed = make(clone, env, "install", f"PYTHON={shim}", timeout=120)
    assert failed.returncode != 0
    message = next(line for line in failed.stderr.splitlines() if line.startswith("make: "))
    assert "cannot create a virtual environment: install python3-venv" in message
    assert "sudo apt install python3-venv" in message
    assert not (clone / ".venv-uv").exists() and not (clone / ".venv").exists()


def test_an_old_python_is_refused_with_what_to_do(clone: Path, tmp_path: Path) -> None:
    shim = _shim(
        tmp_path / "old",
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "Python 3.10.12"; exit 0; fi\n'
        'if [ "$1" = "-c" ]; then exit 1; fi\n'
        "exit 1\n",
    )
    failed = make(clone, stock_env(tmp_path / "home"), "install", f"PYTHON={shim}", timeout=60)
    assert failed.returncode != 0
    assert "baro needs Python >= 3.11" in failed.stderr
    assert "is 3.10.12" in failed.stderr and "make PYTHON=python3.11" in failed.stderr
    assert not (clone / ".venv").exists()
