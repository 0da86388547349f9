"""The run's limits from each door: `baro run` and `baro submit` flags, the BARO_* default,
and the API's request body all reach the run's Limits (and what status shows of them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_cli.commands.run import build_request
from baro_intake import api_models as m
from baro_intake.api import submitted_from
from baro_intake.api_views import detail, pending_record
from baro_shared import schemas as s
from baro_shared.settings import Settings
from tests.conftest import make_repo
from tests.e2e.test_bad_input import assert_one_line_error, baro


def request(tmp_path: Path, settings: Settings, **kw: object) -> s.RunSubmitted:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    return build_request(
        "change a.txt", repo, "scripted", None, "focused", True, False, settings,
        None, None, None, 600.0, 60.0, "local", None, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_run_flags_set_the_run_budget_and_the_retry_budget(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    req = request(tmp_path, settings, run_token_budget=50_000, max_attempts=3, retry_window=90.0)
    assert req.limits.run_token_budget == 50_000
    assert (req.limits.max_attempts, req.limits.retry_window_s) == (3, 90.0)
    shown = detail(pending_record(req)).request.limits
    assert (shown.run_token_budget, shown.max_attempts, shown.retry_window_s) == (50_000, 3, 90.0)
    plain = request(tmp_path / "plain", settings)
    assert plain.limits.run_token_budget is None
    assert (plain.limits.max_attempts, plain.limits.retry_window_s) == (6, 600.0)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--run-token-budget", "0"], "--run-token-budget"),
        (["--max-attempts", "0"], "--max-attempts"),
        (["--retry-window", "-1"], "--retry-window"),
    ],
)
def test_bad_limits_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    out = baro("run", "change a.txt", "--backend", "scripted", *args, cwd=repo)
    assert out.returncode == 2
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_the_api_takes_a_run_budget_or_the_server_s_default() -> None:
    body = m.RunRequest.model_validate(
        {
            "goal": "change a.txt",
            "repo": {"kind": "url", "location": "https://example.com/r.git"},
            "limits": {"run_token_budget": 20_000, "max_attempts": 2, "retry_window_s": 30},
        }
    )
    limits = submitted_from(body, Settings(run_token_budget=99_000)).limits
    assert (limits.run_token_budget, limits.max_attempts, limits.retry_window_s) == (20_000, 2, 30)
    unnamed = m.RunRequest.model_validate(
        {"goal": "change a.txt", "repo": {"kind": "url", "location": "https://example.com/r.git"}}
    )
    assert submitted_from(unnamed, Settings(run_token_budget=99_000)).limits.run_token_budget == (
        99_000
    )
    assert submitted_from(unnamed, Settings()).limits.run_token_budget is None


def test_a_bad_default_budget_is_one_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    out = baro(
        "run", "change a.txt", "--backend", "scripted", cwd=repo,
        env_extra={"BARO_RUN_TOKEN_BUDGET": "lots"},
    )  # fmt: skip
    assert_one_line_error(out, "BARO_RUN_TOKEN_BUDGET")
