"""Checks: the commands that judge what agents delivered.

The runner runs a story's checks in its workspace after the agent (the story gate); the
merger runs the run's checks on the integrated result (the run gate). Both take them
from the same place and run them the same way:

- **What runs.** The run base's ``.baro.toml`` ``[verify]`` (``story = [...]`` for the
  story gate; ``command`` and ``run = [...]`` for the run gate), plus, unless ``detect =
  false``, the conventional checks the run's base has: an allowlist, never a command
  taken from the goal, a story or an agent (``detect``). Nothing a story wrote chooses
  a command: the configuration and the detection both read the run's base commit.
- **How.** No stdin, its own process group (killed as a whole on timeout), the tail of
  its output kept (``OUTPUT_CHARS``), and the environment of ``check_env``: what agents
  get minus every credential, since a check runs code the agents wrote.
- **Three states.** ``passed`` (exit 0), ``failed`` (another exit code, or a timeout), or
  ``skipped`` when the check could not judge: its tool is not installed, it found
  nothing to run, its dependencies are not installed, or (a detected check only) it
  fails at the base as well, so the failure is not this change's. Skipped is never a
  pass: a gate whose checks were all skipped is unknown.

A configured check is the repository's promise that it passes: a failure is a failure
even when the base fails it too (a story may be there to fix it). A detected check is a
guess: when it fails, it is run once more at the base, and a failure there too makes it
``skipped`` ("fails at the base as well").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
import shlex
import shutil
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from baro_shared.gitutil import ByCommit, own_git, read_objects
from baro_shared.launcher import ERROR_PREFIX
from baro_shared.processes import run_in_group
from baro_shared.repoconfig import (
    DEFAULT_VERIFY_TIMEOUT_S,
    Command,
    VerifyConfig,
    command_text,
)
from baro_shared.schemas import CheckOrigin, CheckResult, CheckState

OUTPUT_CHARS = 4000  # the tail of a check's output that is kept
NOTE_OUTPUT_CHARS = 1500  # of which a repair note or a reason quotes this much
COMMAND_NOT_FOUND = 127  # /bin/sh's exit code for a command it cannot find
PYTEST_NO_TESTS = 5
NPM_PLACEHOLDER = "no test specified"  # `npm init`'s default test script

Scope = Literal["story", "run"]


@dataclass(frozen=True)
class Check:
    command: Command  # a string runs through /bin/sh -c; a tuple runs as is
    origin: CheckOrigin
    timeout_s: float
    needs: str | None = None  # a detected check's executable: skipped when it is missing
    needs_dir: str | None = None  # ...and the directory its dependencies live in
    no_tests_exit: int | None = None  # the exit code that means "found nothing to run"

    @property
    def text(self) -> str:
        return command_text(self.command)


# --------------------------------------------------------------------------- what runs


# The files detection looks at, in the base's root.
MANIFESTS = ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini", "package.json")
MARKERS = ("conftest.py", "Cargo.toml", "go.mod")


def detect(files: Mapping[str, str], timeout_s: float) -> list[Check]:
    """The conventional checks a repository has, from its root: ``files`` maps the names
    present there (``MANIFESTS`` with their text, ``MARKERS`` with any) to text. Pure.

    - pytest: a pytest configuration (``pytest.ini``, ``[tool.pytest.ini_options]`` in
      pyproject.toml, ``[tool:pytest]`` in setup.cfg, ``[pytest]`` in tox.ini) or a root
      ``conftest.py``;
    - npm test: a package.json whose ``scripts.test`` is not npm's placeholder;
    - cargo test: a Cargo.toml; go test: a go.mod.
    """
    found: list[Check] = []
    if _has_pytest(files):
        found.append(
            Check(("pytest", "-q", "-p", "no:cacheprovider"), "detected", timeout_s,
                  needs="pytest", no_tests_exit=PYTEST_NO_TESTS)
        )  # fmt: skip
    package = _json_object(files.get("package.json"))
    scripts = package.get("scripts") if package else None
    test_script = scripts.get("test") if isinstance(scripts, dict) else None
    if isinstance(test_script, str) and test_script.strip() and NPM_PLACEHOLDER not in test_script:
        depends = any(package.get(k) for k in ("dependencies", "devDependencies") if package)
        found.append(
            Check(("npm", "test", "--silent"), "detected", timeout_s, needs="npm",
                  needs_dir="node_modules" if depends else None)
        )  # fmt: skip
    if "Cargo.toml" in files:
        found.append(Check(("cargo", "test", "--quiet"), "detected", timeout_s, needs="cargo"))
    if "go.mod" in files:
        found.append(Check(("go", "test", "./..."), "detected", timeout_s, needs="go"))
    return found


def _has_pytest(files: Mapping[str, str]) -> bool:
    if "pytest.ini" in files or "conftest.py" in files:
        return True
    pyproject = files.get("pyproject.toml")
    if pyproject:
        with contextlib.suppress(tomllib.TOMLDecodeError):
            tool = tomllib.loads(pyproject).get("tool", {})
            if isinstance(tool, dict) and isinstance(tool.get("pytest"), dict):
                return True
    return "[tool:pytest]" in files.get("setup.cfg", "") or "[pytest]" in files.get("tox.ini", "")


def _json_object(text: str | None) -> dict[str, object] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# What detection read from a commit's root, by commit (``ByCommit``): the run's base is
# the same for every story of the run.
_roots: ByCommit[dict[str, str]] = ByCommit()


async def detect_at(repo: Path, commit: str, timeout_s: float) -> list[Check]:
    """``detect`` on the root of ``commit`` in ``repo`` (read from git, never a work tree)."""
    files = _roots.get(commit)
    if not isinstance(files, dict):
        names = [*MANIFESTS, *MARKERS]
        found = await read_objects(
            repo, [f"{commit}^{{commit}}"] + [f"{commit}:{n}" for n in names]
        )
        if found[0] is None:
            return []
        files = {}
        for name, entry in zip(names, found[1:], strict=True):
            if entry is None:
                continue
            kind, content = entry
            if name in MARKERS:  # present, whatever it is
                files[name] = ""
            elif kind == "blob":
                files[name] = content.decode("utf-8", "replace")
        _roots.put(commit, files)
    return detect(files, timeout_s)


async def checks_for(
    scope: Scope, verify: VerifyConfig | None, repo: Path, base: str
) -> list[Check]:
    """The checks of the story gate or the run gate, as the run's base configures them
    (its ``.baro.toml`` ``[verify]``, None when it has none)."""
    timeout = verify.timeout_s if verify is not None else DEFAULT_VERIFY_TIMEOUT_S
    commands = () if verify is None else (verify.story if scope == "story" else verify.run_commands)
    checks = [Check(command, "configured", timeout) for command in commands]
    if verify is None or verify.detect:
        configured = {check.text for check in checks}
        checks += [c for c in await detect_at(repo, base, timeout) if c.text not in configured]
    return checks


def named_paths(check: Check) -> list[str]:
    """The repository paths a configured check's command names (``python3 ci/check.py``,
    ``sh lint.sh``): what the check runs, which a story has no business changing. Pure;
    every word that could be a relative path is a candidate (the caller keeps those a
    story changed)."""
    if check.origin != "configured":
        return []
    try:
        words = shlex.split(check.command) if isinstance(check.command, str) else check.command
    except ValueError:
        return []
    found = []
    for word in words:
        if not word or word.startswith(("-", "/")) or "=" in word:
            continue
        path = posixpath.normpath(word)
        if path != "." and not path.startswith("..") and path not in found:
            found.append(path)
    return found


async def pin_named_paths(
    repo: Path, base: str, found: Sequence[Check], changed: Sequence[str]
) -> list[str]:
    """Put the files the configured checks run back as ``base`` has them (removed, when
    ``base`` has no such file), where the story changed them: an agent that rewrites the
    check cannot make it pass. Only the work tree changes; the story's committed result
    keeps what the agent wrote (the merger and the critic see it). The paths put back."""
    touched = set(changed)
    pinned = []
    for path in dict.fromkeys(p for check in found for p in named_paths(check)):
        if path not in touched:
            continue
        at_base = await own_git("cat-file", "-e", f"{base}:{path}", cwd=repo, check=False)
        if at_base.returncode == 0:
            await own_git("checkout", base, "--", path, cwd=repo)
        else:
            await asyncio.to_thread(_remove, repo / path)
        pinned.append(path)
    return pinned


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def pinned_note(result: CheckResult, check: Check, pinned: Sequence[str]) -> CheckResult:
    """Say on a check's result which of its files it ran as the base has them. Pure."""
    mine = [p for p in named_paths(check) if p in pinned]
    if not mine:
        return result
    note = f"ran with {', '.join(mine)} as the story's base has it (the story changed it)"
    note = f"{result.note}; {note}" if result.note else note
    return msgspec.structs.replace(result, note=note)


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Ran:
    """A finished command: exit code (None when it timed out)."""

    exit_code: int | None
    output: str  # the tail of stdout and stderr, interleaved
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


# Wraps a command line to run it somewhere else (the story's fence: baro_shared.sandbox).
Wrap = Callable[[list[str]], list[str]]


async def run_command(
    command: Command | Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    timeout: float,
    output_chars: int = OUTPUT_CHARS,
    wrap: Wrap | None = None,
) -> Ran:
    """Run ``command`` in ``cwd`` with no stdin, as a process group of its own that
    nothing it starts outlives (``baro_shared.processes.run_in_group``); inside ``wrap``
    (the story's fence) when given."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    if wrap is not None:
        argv = wrap(argv)
    started = time.monotonic()
    result = await run_in_group(
        argv,
        cwd=cwd,
        env=env,
        timeout=timeout,
        keep_chars=output_chars,
        on_timeout=f"\n[baro: timed out after {timeout:g}s]\n",
    )
    return Ran(result.exit_code, result.output, time.monotonic() - started)


async def run_check(
    check: Check, cwd: Path, env: Mapping[str, str], wrap: Wrap | None = None
) -> CheckResult:
    """Run one check and judge its result (passed, failed, or skipped and why)."""
    why = _cannot_run(check, cwd, env)
    if why is not None:
        return CheckResult(command=check.text, origin=check.origin, result="skipped", note=why)
    ran = await run_command(check.command, cwd, env, timeout=check.timeout_s, wrap=wrap)
    result: CheckState = "passed" if ran.exit_code == 0 else "failed"
    note = None
    if ran.timed_out:
        note = f"timed out after {check.timeout_s:g}s"
    elif ran.exit_code == COMMAND_NOT_FOUND:
        said = ran.output.strip().splitlines()
        first = said[0].removeprefix(ERROR_PREFIX) if said else ""  # the fence's launcher
        result = "skipped"
        note = (
            first
            if first.startswith("cannot start")
            else "its command was not found (exit code 127)"
        )
    elif check.no_tests_exit is not None and ran.exit_code == check.no_tests_exit:
        result, note = "skipped", "it found no tests to run"
    return CheckResult(
        command=check.text,
        origin=check.origin,
        result=result,
        exit_code=ran.exit_code,
        seconds=round(ran.seconds, 3),
        output=ran.output,
        note=note,
    )


def _cannot_run(check: Check, cwd: Path, env: Mapping[str, str]) -> str | None:
    if check.needs and shutil.which(check.needs, path=env.get("PATH", "")) is None:
        return f"{check.needs} is not installed"
    if check.needs_dir and not (cwd / check.needs_dir).is_dir():
        return (
            f"its dependencies are not installed (no {check.needs_dir}/; a [setup] command "
            "in .baro.toml installs them)"
        )
    return None


AtBase = Callable[[list[Check]], Awaitable[list[CheckResult]]]


async def run_checks(
    checks: Sequence[Check],
    cwd: Path,
    env: Mapping[str, str],
    at_base: AtBase | None = None,
    wrap: Wrap | None = None,
) -> list[CheckResult]:
    """Run every check (one after the other, inside ``wrap`` when given); a detected
    check that failed is run again by ``at_base`` (on the base the change started from),
    and is skipped when it fails there as well."""
    results = [await run_check(check, cwd, env, wrap) for check in checks]
    suspect = [
        check
        for check, result in zip(checks, results, strict=True)
        if result.result == "failed" and check.origin == "detected"
    ]
    if suspect and at_base is not None:
        before = {r.command: r for r in await at_base(suspect)}
        results = [excuse_preexisting(result, before.get(result.command)) for result in results]
    return results


def excuse_preexisting(result: CheckResult, at_base: CheckResult | None) -> CheckResult:
    """A detected check that fails at the base as well cannot judge the change. Pure."""
    if result.origin != "detected" or result.result != "failed" or at_base is None:
        return result
    if at_base.result != "failed":
        return result
    code = f" (exit code {at_base.exit_code})" if at_base.exit_code is not None else ""
    return CheckResult(
        command=result.command,
        origin=result.origin,
        result="skipped",
        exit_code=result.exit_code,
        seconds=result.seconds,
        output=result.output,
        note=f"it fails at the base as well{code}, so the failure is not this change's",
    )


# --------------------------------------------------------------------------- judging


def verdict(results: Sequence[CheckResult]) -> CheckState | None:
    """The gate's result: failed if any check failed, passed if every check passed,
    skipped (unknown) otherwise; None when there was no check at all."""
    if not results:
        return None
    states = {r.result for r in results}
    if "failed" in states:
        return "failed"
    return "passed" if states == {"passed"} else "skipped"


def describe(result: CheckResult) -> str:
    """``pytest -q: failed (exit code 1)``, ``cargo test: skipped (cargo is not installed)``."""
    if result.result == "skipped":
        detail = result.note or "did not run"
    elif result.exit_code is None:
        detail = result.note or "did not finish"
    else:
        detail = f"exit code {result.exit_code}"
    return f"{result.command}: {result.result} ({detail})"


def failures_text(results: Sequence[CheckResult], output_chars: int = NOTE_OUTPUT_CHARS) -> str:
    """The failed checks with the tail of their output, for a prompt or a reason."""
    parts = []
    for result in results:
        if result.result != "failed":
            continue
        tail = result.output.strip()[-output_chars:]
        parts.append(f"$ {result.command}\n{tail}" if tail else f"$ {result.command}\n(no output)")
        parts[-1] += f"\n[{describe(result)}]"
    return "\n\n".join(parts)


def signature(results: Sequence[CheckResult]) -> str:
    """What failed, as a comparable string: the failing commands and exit codes."""
    failed = sorted(f"{r.command}={r.exit_code}" for r in results if r.result == "failed")
    return "checks:" + ";".join(failed)
