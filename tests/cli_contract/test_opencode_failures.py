"""OpenCode's own ways of failing, with the real CLI: no key for the model's provider (it
then says only "Unexpected server error" on its stream; its log lines on stderr name the
model it cannot find), and a model whose streams end without a finish reason (it calls the
model again and again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from tests.cli_contract.conftest import contract_settings
from tests.cli_contract.model_server import ScriptedModelServer
from tests.cli_contract.test_backends import FILES, RUN_TIMEOUT, TARGET, finished_events
from tests.conftest import make_repo
from tests.e2e.conftest import replay, request_for, run_to_end

pytestmark = [pytest.mark.cli, pytest.mark.timeout(600)]

KEYS = ("GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_KEY")


@pytest.fixture
def settings(
    nats_server: EmbeddedNats,
    tmp_path: Path,
    model_server: ScriptedModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """OpenCode with its providers' own endpoints (none reachable here) and no key at all."""
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    return contract_settings(nats_server.url, tmp_path, model_server, opencode_base_url=None)


async def test_no_key_for_the_provider_fails_the_story_once_naming_the_variable(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "user", FILES)
    limits = s.Limits(story_timeout_s=300, stall_timeout_s=240, retries=1, max_attempts=3)
    req = request_for(
        repo, f"create {TARGET}", backend="opencode", model="google/gemini-2.5-flash",
        mode_request="focused", limits=limits,
    )  # fmt: skip
    report = await run_to_end(bus, req, timeout=RUN_TIMEOUT)

    assert report.status == "failed", report.reason
    story = finished_events(await replay(bus, req.run_id))
    assert [(f.status, f.exit_reason, f.attempt) for f in story] == [("failed", "auth_failed", 1)]
    error = story[0].error or ""
    assert error.startswith(
        "opencode has no key for the google provider (GOOGLE_GENERATIVE_AI_API_KEY or "
        "GEMINI_API_KEY is not set in the agent's environment)"
    ), error
    assert "set GOOGLE_GENERATIVE_AI_API_KEY or GEMINI_API_KEY in the environment baro runs in" in (
        error
    )
