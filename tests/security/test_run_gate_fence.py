"""The run gate runs the checks on the integrated result: code the agents wrote. It runs
fenced like the agents and the story checks, so a test file an agent planted cannot reach
the user's repository or baro's state from the merger."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo
from tests.e2e.conftest import bus, replay, request_for, run_to_end, stack  # noqa: F401

PLANTED = """\
import pathlib

def test_planted():
    for target in {targets!r}:
        try:
            pathlib.Path(target).write_text("reached from a check\\n")
        except OSError:
            pass
"""


@pytest.fixture
def pytest_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.mark.usefixtures("pytest_on_path")
async def test_a_test_an_agent_planted_runs_fenced_in_the_run_gate(
    bus: Bus,  # noqa: F811  (the fixture)
    stack: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    repo = make_repo(
        tmp_path / "user",
        {"pyproject.toml": "[tool.pytest.ini_options]\n", "app.py": "VALUE = 1\n"},
    )
    targets = [str(repo / "pwned.txt"), str(stack.state_dir / "pwned.txt")]
    steps = [
        {"write": "app.py", "content": "VALUE = 2\n"},
        {"write": "test_planted.py", "content": PLANTED.format(targets=targets)},
    ]
    request = request_for(repo, "set VALUE to 2 in app.py", {"default": {"steps": steps}})
    # run_to_end also checks that the user's working tree is as it was
    report = await run_to_end(bus, request)

    assert report.status == "delivered", report.reason
    gated = [e for e in await replay(bus, request.run_id) if isinstance(e, s.RunGateChecked)]
    assert gated and [c.result for c in gated[0].checks] == ["passed"], "the gate ran it"
    assert not (repo / "pwned.txt").exists()
    assert not (stack.state_dir / "pwned.txt").exists()
