"""What baro needs on this machine, checked: `baro doctor`, and the checks `baro run` makes
before it submits anything.

Every check is a plain function returning ``Check`` lines; a failing line carries the fix.
Credentials are reported by variable name only, never by value.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from baro_merger.identity import identity_from, parse_config_list
from baro_shared import backends as b
from baro_shared.embedded import EmbeddedNatsError, find_nats_server
from baro_shared.gitutil import git_sync
from baro_shared.settings import Settings

Status = Literal["ok", "warn", "fail", "skip"]

GIT_MINIMUM = (2, 38)  # git merge-tree --write-tree
DISK_FAIL_BYTES = 512 << 20
DISK_WARN_BYTES = 2 << 30
VERSION_TIMEOUT_S = 20.0
ENDPOINT_TIMEOUT_S = 3.0
AGENT_BACKENDS = ("claude", "codex", "opencode", "pi")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        return self.detail + (f": {self.fix}" if self.fix else "")

    def as_json(self) -> dict[str, str | None]:
        return asdict(self)


def _version(text: str) -> str | None:
    found = re.search(r"\d+\.\d+(?:\.\d+)?", text)
    return found.group(0) if found else None


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# --------------------------------------------------------------------------- git


def check_git() -> Check:
    fix = "install git 2.38 or newer (Debian/Ubuntu: sudo apt install git)"
    path = shutil.which("git")
    if path is None:
        return Check("git", "fail", "git not found on PATH", fix)
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    version = _version(out.stdout)
    if version is None:
        return Check("git", "fail", f"git at {path} did not report a version", fix)
    if _numbers(version)[:2] < GIT_MINIMUM:
        return Check("git", "fail", f"git {version} is older than 2.38", fix)
    return Check("git", "ok", f"git {version}")


# --------------------------------------------------------------------------- backends


def install_hint(backend: str) -> str:
    package = b.NPM_PACKAGES[backend]
    setting = f"BARO_{backend.upper()}_BIN"
    return f"npm install -g {package}@{b.TESTED_VERSIONS[backend]} (or set {setting} to its path)"


def cli_version(binary: str) -> str | None:
    """``binary --version``, run with throwaway config homes so nothing lands in yours."""
    with tempfile.TemporaryDirectory(prefix="baro-doctor-") as home:
        env = b.agent_env(Path(home))
        env.update(
            {
                "CLAUDE_CONFIG_DIR": home,
                "CODEX_HOME": home,
                "PI_CODING_AGENT_DIR": home,
                **{f"XDG_{x}_HOME": home for x in ("CONFIG", "DATA", "STATE", "CACHE")},
            }
        )
        try:
            out = subprocess.run(
                [binary, "--version"],
                capture_output=True,
                text=True,
                env=env,
                stdin=subprocess.DEVNULL,
                timeout=VERSION_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
    return _version(out.stdout or out.stderr) if out.returncode == 0 else None


def check_binary(backend: str, settings: Settings, *, chosen: bool, version: bool) -> Check:
    path = b.binary_for(backend, settings)
    if path is None:
        if backend == "scripted":
            return Check(
                backend,
                "fail" if chosen else "skip",
                "baro-scripted-agent not found next to baro",
                "reinstall baro (make install)",
            )
        if not chosen:
            return Check(backend, "skip", f"{backend}: not installed")
        return Check(backend, "fail", f"the {backend} CLI is not installed", install_hint(backend))
    if not version or backend == "scripted":
        return Check(backend, "ok", f"{backend} at {path}")
    found = cli_version(path)
    tested = b.TESTED_VERSIONS[backend]
    if found is None:
        return Check(
            backend,
            "fail" if chosen else "warn",
            f"{backend} at {path} did not answer --version",
            f"reinstall it: {install_hint(backend)}",
        )
    if found != tested:
        return Check(
            backend,
            "warn",
            f"{backend} {found} at {path} (baro is tested with {tested})",
            f"npm install -g {b.NPM_PACKAGES[backend]}@{tested} if it misbehaves",
        )
    return Check(backend, "ok", f"{backend} {found} at {path} (the tested version)")


def check_credentials(
    backend: str, settings: Settings, model: str | None, *, chosen: bool
) -> Check | None:
    if backend == "scripted":
        return None
    need = b.credentials_for(backend, settings, model)
    name = f"{backend} credentials"
    present = need.present(os.environ)
    if present:
        return Check(name, "ok", f"{backend}: {', '.join(present)} set")
    if not need.required:
        return Check(name, "ok", f"{backend}: no key set; the custom endpoint gets none")
    if len(need.names) == 1:
        detail = f"{backend}: {need.names[0]} is not set"
    elif len(need.names) == 2:
        detail = f"{backend}: neither {need.names[0]} nor {need.names[1]} is set"
    else:
        detail = f"{backend}: no provider key is set ({', '.join(need.names[:3])}, ...)"
    fix = need.how + " in the shell that runs baro (a login stored by the CLI is not used)"
    return Check(name, "fail" if chosen else "warn", detail, fix)


def probe_endpoint(url: str) -> str | None:
    """None when something answers HTTP at ``url`` (any status); else why not."""
    try:
        with urllib.request.urlopen(url, timeout=ENDPOINT_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None  # it answered: 401, 404, 405 all mean the server is there
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason)


def check_endpoint(
    backend: str, settings: Settings, model: str | None, *, chosen: bool
) -> Check | None:
    url = b.custom_endpoint(backend, settings)
    if not url:
        return None
    setting = f"BARO_{backend.upper()}_BASE_URL"
    problem = probe_endpoint(url)
    name = f"{backend} endpoint"
    if problem:
        return Check(
            name,
            "fail" if chosen else "warn",
            f"{setting}={url} is not reachable ({problem})",
            f"start the server there, or unset {setting}",
        )
    if backend in ("opencode", "pi") and not (model or settings.model):
        return Check(
            name,
            "fail" if chosen else "warn",
            f"{setting} is set but no model is",
            "set BARO_MODEL or pass --model",
        )
    return Check(name, "ok", f"{setting}={url} answers")


def backend_checks(
    backend: str, settings: Settings, model: str | None, *, chosen: bool, version: bool
) -> list[Check]:
    found = check_binary(backend, settings, chosen=chosen, version=version)
    checks = [found]
    if found.status == "skip":
        return checks
    for extra in (
        check_credentials(backend, settings, model, chosen=chosen),
        check_endpoint(backend, settings, model, chosen=chosen),
    ):
        if extra is not None:
            checks.append(extra)
    return checks


# --------------------------------------------------------------------------- NATS, disk


def check_nats(settings: Settings, remote: bool, local_url: str | None) -> Check:
    if remote:
        import asyncio

        from baro_shared.bus import BusUnavailable, connect

        async def reach() -> None:
            nc = await connect(settings, "baro-doctor")
            await nc.close()

        try:
            asyncio.run(reach())
        except BusUnavailable as exc:
            return Check(
                "nats",
                "fail",
                str(exc),
                "start NATS there, or unset BARO_NATS_URL to use the embedded server",
            )
        return Check("nats", "ok", f"NATS at {settings.nats_url} reachable")
    try:
        binary = find_nats_server()
    except EmbeddedNatsError as exc:
        return Check("nats", "fail", str(exc), "reinstall baro (make install)")
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    version = _version(out.stdout) or "?"
    running = f"; a local baro is running it at {local_url}" if local_url else ""
    return Check("nats", "ok", f"embedded nats-server {version} available{running}")


def check_writable(name: str, path: Path) -> Check:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".baro-doctor-"):
            pass
    except OSError as exc:
        return Check(
            name,
            "fail",
            f"{name} {path} is not writable ({exc.strerror or exc})",
            f"fix its permissions or set BARO_{name.upper().replace(' ', '_')} to another place",
        )
    return Check(name, "ok", f"{name} {path} writable")


def check_disk(path: Path) -> Check:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    shown = f"disk: {free / (1 << 30):.1f} GB free under {path}"
    fix = "free some space (baro clean --all removes what past runs kept)"
    if free < DISK_FAIL_BYTES:
        return Check("disk", "fail", shown, fix)
    if free < DISK_WARN_BYTES:
        return Check("disk", "warn", shown, fix)
    return Check("disk", "ok", shown)


# --------------------------------------------------------------------------- agent sandbox

SANDBOX_FIX = (
    "allow unprivileged user namespaces (sysctl user.max_user_namespaces above 0; "
    "kernel.unprivileged_userns_clone=1 on older Debian kernels; "
    "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 23.10 and later), "
    "or run baro as a user of its own or in a container (docs/backends.md, The agent sandbox)"
)


def check_sandbox(settings: Settings) -> Check:
    """Whether agents run fenced in here (a real launch of the fence, tried once), and
    what holds when they cannot."""
    reason = b.sandbox_unavailable(settings)
    if reason is None:
        return Check(
            "agent sandbox",
            "ok",
            "agents run fenced in: their own PID, mount and user namespaces "
            "(no other process, no baro state or cache, not your checkout)",
        )
    unfenced = (
        "agents run unfenced: baro's processes and the bus stay closed to them, "
        "but they can read every file this user can (baro's state and cache included)"
    )
    if settings.agent_sandbox == "off":
        return Check(
            "agent sandbox",
            "warn",
            f"agent sandbox off (BARO_AGENT_SANDBOX=off): {unfenced}",
            "unset BARO_AGENT_SANDBOX to fence agents in where the machine allows it",
        )
    if settings.agent_sandbox == "require":
        return Check(
            "agent sandbox",
            "fail",
            f"agents must run fenced in (BARO_AGENT_SANDBOX=require) and cannot here: {reason}",
            SANDBOX_FIX,
        )
    return Check(
        "agent sandbox",
        "warn",
        f"agent sandbox unavailable ({reason}): {unfenced}",
        f"{SANDBOX_FIX}; BARO_AGENT_SANDBOX=require refuses to run agents unfenced",
    )


# --------------------------------------------------------------------------- together


def python_check() -> Check:
    return Check("python", "ok", f"Python {sys.version.split()[0]} at {sys.executable}")


def diagnose(
    settings: Settings,
    backend: str,
    model: str | None,
    *,
    remote: bool,
    local_url: str | None,
) -> list[Check]:
    """Everything ``baro doctor`` reports; the agent CLIs answer --version in parallel."""
    names = [backend, *(x for x in AGENT_BACKENDS if x != backend)]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        per_backend = list(
            pool.map(
                lambda name: backend_checks(
                    name, settings, model, chosen=name == backend, version=True
                ),
                names,
            )
        )
    git, *places = machine_checks(settings)
    checks = [python_check(), git]
    for found in per_backend:
        checks += found
    checks.append(check_nats(settings, remote, local_url))
    checks += places
    return checks


def identity_check(root: Path | None, settings: Settings) -> Check:
    """Who a run's delivered commits would be by, and whether they would be signed, as the
    merger resolves it (baro_merger.identity), from the repository's git config."""
    config: dict[str, str] = {}
    if root is not None:
        listed = git_sync("config", "--list", "-z", cwd=root, check=False)
        config = parse_config_list(listed.stdout) if listed.returncode == 0 else {}
    who = identity_from(config, settings.git_author_name, settings.git_author_email)
    signed = ""
    if who.signing is not None:
        fmt = dict(who.signing).get("gpg.format", "openpgp")
        signed = f", signed ({fmt} key {dict(who.signing).get('user.signingkey', 'of gpg')})"
    if who.is_baro:
        return Check(
            "identity",
            "warn",
            f"delivered commits by {who.name} <{who.email}>{signed}",
            "set user.name and user.email (git config) to deliver them as yours",
        )
    return Check("identity", "ok", f"delivered commits by {who.name} <{who.email}>{signed}")


def machine_checks(settings: Settings) -> list[Check]:
    """What every local run needs besides its backend."""
    return [
        check_git(),
        check_writable("cache dir", settings.cache_dir),
        check_writable("state dir", settings.state_dir),
        check_disk(settings.cache_dir),
        check_sandbox(settings),
    ]
