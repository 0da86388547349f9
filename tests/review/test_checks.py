"""Checks (baro_shared.checks): what runs, how it is judged, and where it comes from."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from baro_shared import checks
from baro_shared.repoconfig import RepoConfigError, parse_repo_config
from baro_shared.schemas import CheckResult
from tests.conftest import make_repo, run_git

PYPROJECT_WITH_PYTEST = '[project]\nname = "x"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n'


def texts(found: list[checks.Check]) -> list[str]:
    return [c.text for c in found]


def test_detection_is_an_allowlist_read_from_the_repository_root() -> None:
    assert checks.detect({}, 60) == []
    assert texts(checks.detect({"pyproject.toml": PYPROJECT_WITH_PYTEST}, 60)) == [
        "pytest -q -p no:cacheprovider"
    ]
    assert texts(checks.detect({"conftest.py": ""}, 60)) == ["pytest -q -p no:cacheprovider"]
    assert checks.detect({"pyproject.toml": '[project]\nname = "x"\n'}, 60) == []
    assert checks.detect({"setup.cfg": "[metadata]\nname = x\n"}, 60) == []
    assert texts(checks.detect({"setup.cfg": "[tool:pytest]\n"}, 60)) == [
        "pytest -q -p no:cacheprovider"
    ]
    both = {"Cargo.toml": "", "go.mod": "", "package.json": '{"scripts": {"test": "jest"}}'}
    assert texts(checks.detect(both, 60)) == [
        "npm test --silent",
        "cargo test --quiet",
        "go test ./...",
    ]


def test_npm_init_placeholder_and_broken_manifests_are_not_checks() -> None:
    placeholder = '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'
    assert checks.detect({"package.json": placeholder}, 60) == []
    assert checks.detect({"package.json": "{not json"}, 60) == []
    assert checks.detect({"package.json": '["a list"]'}, 60) == []
    assert checks.detect({"pyproject.toml": "[tool.pytest.ini_options"}, 60) == []
    with_deps = '{"scripts": {"test": "jest"}, "devDependencies": {"jest": "1"}}'
    (npm,) = checks.detect({"package.json": with_deps}, 60)
    assert npm.needs == "npm" and npm.needs_dir == "node_modules"


def test_verify_table_takes_story_and_run_lists() -> None:
    config = parse_repo_config(
        '[verify]\nstory = ["pytest -q", ["npm", "test"]]\nrun = ["make test"]\n'
        'command = "make lint"\ndetect = false\ntimeout = 30\n'
    )
    verify = config.verify
    assert verify is not None
    assert verify.story == ("pytest -q", ("npm", "test"))
    assert verify.run_commands == ("make lint", "make test")
    assert verify.detect is False and verify.timeout_s == 30.0
    assert parse_repo_config("[verify]\ndetect = false\n").verify is not None


@pytest.mark.parametrize(
    "text",
    [
        '[verify]\nstory = "pytest"\n',
        "[verify]\nstory = [3]\n",
        '[verify]\nrun = [""]\n',
        "[verify]\nrun = [[]]\n",
        '[verify]\ndetect = "yes"\n',
        '[verify]\nstroy = ["x"]\n',
    ],
)
def test_bad_verify_tables_are_refused_with_the_key(text: str) -> None:
    with pytest.raises(RepoConfigError, match=r"\[verify\]"):
        parse_repo_config(text)


def result(state: str, origin: str = "detected", code: int | None = 1) -> CheckResult:
    return CheckResult(command="pytest", origin=origin, result=state, exit_code=code)  # type: ignore[arg-type]


def test_the_verdict_never_takes_skipped_for_passed() -> None:
    assert checks.verdict([]) is None
    assert checks.verdict([result("passed", code=0)]) == "passed"
    assert checks.verdict([result("passed", code=0), result("skipped")]) == "skipped"
    assert checks.verdict([result("skipped")]) == "skipped"
    assert checks.verdict([result("passed", code=0), result("failed")]) == "failed"


def test_a_detected_check_that_fails_at_the_base_too_is_not_the_changes_fault() -> None:
    excused = checks.excuse_preexisting(result("failed"), result("failed"))
    assert excused.result == "skipped" and "fails at the base as well" in (excused.note or "")
    assert checks.excuse_preexisting(result("failed"), result("passed", code=0)).result == "failed"
    configured = result("failed", origin="configured")
    assert checks.excuse_preexisting(configured, result("failed")) == configured


async def test_skips_say_why(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path)}  # nothing installed
    missing = checks.Check(("pytest",), "detected", 5, needs="pytest")
    assert (await checks.run_check(missing, tmp_path, env)).note == "pytest is not installed"
    npm_here = tmp_path / "npm"
    npm_here.write_text("#!/bin/sh\nexit 0\n")
    npm_here.chmod(0o755)
    no_deps = checks.Check(("npm", "test"), "detected", 5, needs="npm", needs_dir="node_modules")
    skipped = await checks.run_check(no_deps, tmp_path, env)
    assert skipped.result == "skipped" and "node_modules" in (skipped.note or "")
    not_found = checks.Check("no-such-tool --flag", "configured", 5)
    gone = await checks.run_check(not_found, tmp_path, {"PATH": "/usr/bin:/bin"})
    assert gone.result == "skipped" and gone.exit_code == 127


async def test_a_check_is_judged_by_its_exit_code_within_its_timeout(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"]}
    ok = await checks.run_check(checks.Check("echo fine", "configured", 5), tmp_path, env)
    assert ok.result == "passed" and ok.exit_code == 0 and "fine" in ok.output
    bad = await checks.run_check(
        checks.Check("echo no >&2; exit 4", "configured", 5), tmp_path, env
    )
    assert bad.result == "failed" and bad.exit_code == 4 and "no" in bad.output
    slow = await checks.run_check(checks.Check("sleep 30", "configured", 0.5), tmp_path, env)
    assert slow.result == "failed" and slow.exit_code is None and "timed out" in (slow.note or "")


async def test_what_runs_comes_from_the_base_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"pytest.ini": "[pytest]\n", "a.py": "A = 1\n"})
    base = run_git(repo, "rev-parse", "HEAD")
    (repo / "go.mod").write_text("module x\n")  # in the work tree only: not detected
    config = parse_repo_config('[verify]\nstory = ["true"]\n')
    found = await checks.checks_for("story", config.verify, repo, base)
    assert [(c.text, c.origin) for c in found] == [
        ("true", "configured"),
        ("pytest -q -p no:cacheprovider", "detected"),
    ]
    off = parse_repo_config('[verify]\nstory = ["true"]\ndetect = false\n')
    assert texts(await checks.checks_for("story", off.verify, repo, base)) == ["true"]
    assert texts(await checks.checks_for("run", off.verify, repo, base)) == []


async def test_the_environment_has_no_credentials(tmp_path: Path) -> None:
    from baro_shared.backends import check_env

    os.environ["GH_TOKEN"] = "secret-value"
    try:
        env = check_env(workdir=tmp_path)
    finally:
        del os.environ["GH_TOKEN"]
    probe = checks.Check(
        (sys.executable, "-c", "import os; print(os.environ.get('GH_TOKEN'))"), "configured", 10
    )
    ran = await checks.run_check(probe, tmp_path, env)
    assert ran.result == "passed" and "secret-value" not in ran.output


def test_the_files_a_configured_check_runs_are_the_paths_its_command_names() -> None:
    named = checks.Check("python3 ./ci/check.py --strict x=1 /usr/bin/env ../up", "configured", 1)
    assert checks.named_paths(named) == ["python3", "ci/check.py"]
    as_list = checks.Check(("sh", "lint.sh"), "configured", 1)
    assert checks.named_paths(as_list) == ["sh", "lint.sh"]
    assert checks.named_paths(checks.Check("echo 'unclosed", "configured", 1)) == []
    detected = checks.Check(("pytest", "-q"), "detected", 1)
    assert checks.named_paths(detected) == [], "a detected check names no file of the story"


async def test_detection_is_read_once_per_commit_and_each_commit_decides(tmp_path: Path) -> None:
    # a commit no other test makes (commits are kept by id, whichever test read them)
    files = {"pytest.ini": "[pytest]\n", "a.py": f"# {tmp_path}\n"}
    repo = make_repo(tmp_path / "r", files)
    base = run_git(repo, "rev-parse", "HEAD")
    other = make_repo(tmp_path / "o", {"a": "a\n"})
    assert await checks.detect_at(other, base, 5) == []  # no such commit there: not kept
    assert texts(await checks.detect_at(repo, base, 5)) == ["pytest -q -p no:cacheprovider"]
    (repo / "go.mod").write_text("module x\n")
    run_git(repo, "add", "go.mod")
    run_git(repo, "commit", "-q", "-m", "go")
    later = run_git(repo, "rev-parse", "HEAD")
    assert texts(await checks.detect_at(repo, later, 5)) == [
        "pytest -q -p no:cacheprovider",
        "go test ./...",
    ]
    assert texts(await checks.detect_at(repo, base, 5)) == ["pytest -q -p no:cacheprovider"]
