"""A run's defaults: flag > environment > .baro.toml [defaults] > built-in, the file read
from the commit the run starts from, shown by `baro doctor` and recorded in the request."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from baro_cli.commands import run as run_command
from baro_cli.main import app
from baro_shared import schemas as s
from baro_shared.defaults import DEFAULTS, resolve
from baro_shared.repoconfig import RepoConfigError, parse_defaults, parse_repo_config
from tests.conftest import make_repo, run_git
from tests.doctor.test_doctor import SCRIPTED, clean_env, doctor

# --------------------------------------------------------------------------- precedence

LEVELS = ("flag", "environment", "repository")


@pytest.mark.parametrize(
    "given",
    [(), ("repository",), ("environment",), ("environment", "repository"), ("flag",),
     ("flag", "repository"), ("flag", "environment"), ("flag", "environment", "repository")],
)  # fmt: skip
def test_the_first_level_that_gives_a_value_wins(given: tuple[str, ...]) -> None:
    values = {level: {"publish": level} if level in given else {} for level in LEVELS}
    chosen = resolve(values["flag"], values["environment"], values["repository"], ".baro.toml")
    publish = chosen["publish"]
    expected = next((level for level in LEVELS if level in given), "built-in")
    assert publish.source == expected
    assert publish.value == (expected if given else "local")
    assert (
        publish.where
        == {
            "flag": "--publish",
            "environment": "BARO_PUBLISH",
            "repository": ".baro.toml [defaults]",
            "built-in": "built-in",
        }[expected]
    )


def test_every_default_is_resolved_and_none_means_not_given() -> None:
    chosen = resolve({"model": None}, {"model": None}, {"model": None})
    assert list(chosen) == [d.name for d in DEFAULTS]
    assert chosen["model"].source == "built-in" and chosen["model"].shown() == "the agent CLI's own"
    assert chosen["story_timeout"].shown() == "1800"


def test_the_surface_policy_comes_from_its_own_table() -> None:
    chosen = resolve({}, {}, {"surface": "warn"}, ".baro.toml at abc")
    assert chosen["surface"].where == ".baro.toml at abc [surface] policy"


# --------------------------------------------------------------------------- the file

TEAM = """\
[defaults]
backend = "codex"
model = "gpt-5-codex"
intake = "auto"
planner = "deterministic"
publish = "pr"
max_stories = 6
parallelism = 3
token_budget = 400000
run_token_budget = 2000000
story_timeout = 1200
stall_timeout = 300

[surface]
policy = "warn"
"""


def test_a_teams_defaults_are_read_and_checked() -> None:
    assert parse_defaults(TEAM) == {
        "backend": "codex", "model": "gpt-5-codex", "intake": "auto", "planner": "deterministic",
        "publish": "pr", "max_stories": 6, "parallelism": 3, "token_budget": 400000,
        "run_token_budget": 2_000_000, "story_timeout": 1200.0, "stall_timeout": 300.0,
        "surface": "warn",
    }  # fmt: skip
    assert dict(parse_repo_config(TEAM).defaults)["publish"] == "pr"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('backend = "gpt"', "[defaults] backend must be one of claude, codex"),
        ('publish = "force"', "[defaults] publish must be one of local, push, pr"),
        ("parallelism = 0", "[defaults] parallelism must be a whole number of at least 1"),
        ("max_stories = true", "[defaults] max_stories must be a whole number"),
        ("run_token_budget = 0", "[defaults] run_token_budget must be a whole number"),
        ('story_timeout = "1h"', "[defaults] story_timeout must be a number of seconds"),
        ("reviews = true", "[defaults] has no key 'reviews' (valid keys: backend, model"),
        ('checkpoint = "partial"', "[defaults] checkpoint must be one of on, off"),
    ],
)
def test_a_wrong_default_is_one_line_naming_the_key(table: str, message: str) -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_defaults(f"[defaults]\n{table}\n", ".baro.toml at abc")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith(".baro.toml at abc: ")


def test_other_tables_are_not_judged_here() -> None:
    """A mistake in [verify] is the verify step's to report, as for any run."""
    assert parse_defaults('[verify]\ncommand = 3\n[defaults]\npublish = "push"\n') == {
        "publish": "push"
    }


# --------------------------------------------------------------------------- doctor


def team_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", ".baro.toml": TEAM})
    # an uncommitted edit is not what a run starts from: never read
    (repo / ".baro.toml").write_text('[defaults]\npublish = "push"\nbackend = "scripted"\n')
    return repo


def test_doctor_shows_each_default_and_where_it_came_from(tmp_path: Path) -> None:
    repo = team_repo(tmp_path)
    head = run_git(repo, "rev-parse", "HEAD")[:12]
    env = clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED, BARO_PARALLELISM="2")
    out = doctor(env, "--repo", str(repo), "--backend", "scripted", "--json")
    shown = {d["name"]: d for d in json.loads(out.stdout)["defaults"]}
    file = f".baro.toml at {head}"
    assert shown["backend"] == {
        "name": "backend", "value": "scripted", "source": "flag", "where": "--backend"
    }  # fmt: skip
    assert shown["parallelism"] == {
        "name": "parallelism", "value": "2", "source": "environment", "where": "BARO_PARALLELISM"
    }  # fmt: skip
    assert shown["publish"] == {
        "name": "publish", "value": "pr", "source": "repository", "where": f"{file} [defaults]"
    }  # fmt: skip
    assert shown["surface"]["where"] == f"{file} [surface] policy"
    assert shown["stall_timeout"]["value"] == "300"
    text = doctor(env, "--repo", str(repo), "--backend", "scripted").stdout
    assert "defaults (flag > environment > .baro.toml > built-in):" in text
    assert f"  publish        pr                       {file} [defaults]" in text


def test_doctor_names_a_wrong_default_in_one_failing_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {".baro.toml": '[defaults]\nparallelism = "many"\n'})
    out = doctor(clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED), "--repo", str(repo), "--json")
    assert out.returncode == 1
    failing = [c for c in json.loads(out.stdout)["checks"] if c["name"] == "defaults"]
    assert len(failing) == 1 and failing[0]["status"] == "fail"
    assert "[defaults] parallelism must be a whole number of at least 1" in failing[0]["detail"]


# --------------------------------------------------------------------------- baro run


def submitted(monkeypatch: Any, env: dict[str, str], repo: Path, *args: str) -> s.RunSubmitted:
    """What `baro run ARGS` would submit, caught where it would start the run."""
    caught: list[s.RunSubmitted] = []

    async def no_run(request: s.RunSubmitted, *rest: object, **kw: object) -> object:
        caught.append(request)
        raise SystemExit(0)

    monkeypatch.setattr(run_command, "_run", no_run)
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    result = CliRunner().invoke(
        app, ["run", "fix a.txt", "--repo", str(repo), "--yes", *args], env=overrides
    )
    assert caught, result.output
    return caught[0]


def test_baro_run_uses_and_records_the_defaults(tmp_path: Path, monkeypatch: Any) -> None:
    repo = team_repo(tmp_path)
    run_git(repo, "commit", "-qam", "our defaults")  # now: backend scripted, publish push
    repo_env = clean_env(tmp_path, BARO_STALL_TIMEOUT_S="120")
    request = submitted(monkeypatch, repo_env, repo, "--story-timeout", "900")
    assert request.backend == "scripted" and request.publish == "push"
    assert request.limits.story_timeout_s == 900 and request.limits.stall_timeout_s == 120
    recorded = {d.name: (d.value, d.source) for d in request.defaults}
    assert recorded["backend"] == ("scripted", "repository")
    assert recorded["story_timeout"] == ("900", "flag")
    assert recorded["stall_timeout"] == ("120", "environment")
    assert recorded["planner"] == ("auto", "built-in")


def test_review_replan_and_checkpoint_are_defaults_like_the_others(
    tmp_path: Path, monkeypatch: Any
) -> None:
    files = {
        "a.txt": "a\n",
        ".baro.toml": '[defaults]\nbackend = "scripted"\nreview = true\nreplan = "off"\n'
        'checkpoint = "off"\n',
    }
    repo = make_repo(tmp_path / "repo", files)
    env = clean_env(tmp_path)
    request = submitted(monkeypatch, env, repo)
    assert (request.review, request.replan, request.checkpoint) == (True, False, False)
    recorded = {d.name: (d.value, d.source) for d in request.defaults}
    assert recorded["checkpoint"] == ("off", "repository")
    # the environment over the file, the flags over both
    env = clean_env(tmp_path, BARO_CHECKPOINT="on", BARO_REVIEW="off")
    request = submitted(monkeypatch, env, repo, "--replan", "on")
    assert (request.review, request.replan, request.checkpoint) == (False, True, True)
    request = submitted(monkeypatch, env, repo, "--no-checkpoint")
    assert request.checkpoint is False
    assert {d.name: d.source for d in request.defaults}["checkpoint"] == "flag"


def test_baro_run_with_a_wrong_default_stops_in_one_line(tmp_path: Path, monkeypatch: Any) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n", ".baro.toml": "[defaults]\nintake = 1\n"})
    overrides = {k: None for k in os.environ}
    overrides.update(clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED))
    result = CliRunner().invoke(app, ["run", "fix a.txt", "--repo", str(repo)], env=overrides)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"baro: .baro.toml at {run_git(repo, 'rev-parse', 'HEAD')[:12]}: [defaults] intake must "
        "be one of offline, llm, auto (not 1) (fix it and commit)"
    ]


def test_the_run_token_budget_is_a_default_like_the_others(
    tmp_path: Path, monkeypatch: Any
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "a.txt": "a\n",
            ".baro.toml": '[defaults]\nbackend = "scripted"\nrun_token_budget = 70000\n',
        },
    )
    from_file = submitted(monkeypatch, clean_env(tmp_path), repo)
    from_env = submitted(monkeypatch, clean_env(tmp_path, BARO_RUN_TOKEN_BUDGET="50000"), repo)
    from_flag = submitted(
        monkeypatch,
        clean_env(tmp_path, BARO_RUN_TOKEN_BUDGET="50000"),
        repo,
        "--run-token-budget",
        "30000",
    )
    got = [r.limits.run_token_budget for r in (from_file, from_env, from_flag)]
    assert got == [70_000, 50_000, 30_000]
    assert {d.name: d.source for d in from_flag.defaults}["run_token_budget"] == "flag"


# --------------------------------------------------------------------------- identity


def test_doctor_says_who_delivered_commits_are_by(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = clean_env(tmp_path, BARO_CLAUDE_BIN=SCRIPTED, HOME=str(tmp_path / "home"))
    env["GIT_CONFIG_NOSYSTEM"] = "1"

    def identity() -> dict[str, object]:
        out = doctor(env, "--repo", str(repo), "--json")
        return next(c for c in json.loads(out.stdout)["checks"] if c["name"] == "identity")

    nobody = identity()
    assert nobody["status"] == "warn" and nobody["detail"] == (
        "delivered commits by baro <baro@localhost>"
    )
    assert "set user.name and user.email" in str(nobody["fix"])
    run_git(repo, "config", "user.name", "Ada Lovelace")
    run_git(repo, "config", "user.email", "ada@example.com")
    assert identity()["detail"] == "delivered commits by Ada Lovelace <ada@example.com>"
    run_git(repo, "config", "gpg.format", "ssh")
    run_git(repo, "config", "user.signingkey", "/keys/ada")
    run_git(repo, "config", "commit.gpgsign", "true")
    assert identity()["detail"] == (
        "delivered commits by Ada Lovelace <ada@example.com>, signed (ssh key /keys/ada)"
    )
    env["BARO_GIT_AUTHOR_NAME"], env["BARO_GIT_AUTHOR_EMAIL"] = "Team Bot", "bot@example.com"
    assert identity()["detail"].startswith("delivered commits by Team Bot <bot@example.com>")
