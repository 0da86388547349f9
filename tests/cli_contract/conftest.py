"""The contract tier: the real agent CLIs (installed by install-clis.sh) against the
scripted model server, driven through baro's own stack and settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats
from baro_shared.settings import Settings
from tests.cli_contract.model_server import ScriptedModelServer
from tests.e2e.conftest import bus, stack  # noqa: F401  (fixtures used by the tier's tests)

ROOT = Path(__file__).resolve().parents[2]
CLI_TOOLS = Path(os.environ.get("BARO_CLI_TOOLS") or ROOT / ".cli-tools")
ANTHROPIC_KEY = "sk-ant-contract-tier"
OPENAI_KEY = "sk-openai-contract-tier"


@dataclass(frozen=True)
class Backend:
    name: str
    model: str
    api: str  # the wire API this CLI speaks to the server in the tier


BACKENDS = {
    "claude": Backend("claude", "claude-sonnet-4-5", "messages"),
    # a model in Codex's bundled catalog: an unknown one changes its tool set
    "codex": Backend("codex", "gpt-5.5", "responses"),
    "opencode": Backend("opencode", "mock-model", "chat"),
    "pi": Backend("pi", "mock-model", "chat"),
}


def cli_path(name: str) -> str:
    path = CLI_TOOLS / "bin" / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run tests/cli_contract/install-clis.sh (make test-cli)")
    return str(path)


@pytest.fixture(scope="session")
def model_server() -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The keys a deployment would give the runner; baro passes them on to the CLIs."""
    for name in ("CODEX_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    return {"messages": ANTHROPIC_KEY, "responses": OPENAI_KEY, "chat": OPENAI_KEY}


def contract_settings(
    nats_url: str, tmp_path: Path, server: ScriptedModelServer, **overrides: object
) -> Settings:
    fields: dict[str, object] = dict(
        nats_url=nats_url,
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        http_port=0,
        runner_ack_wait_s=30.0,
        retry_delay_s=1.0,  # the first wait before a transient failure is retried
        agent_max_retries=0,  # no CLI-level retries: baro decides
        claude_bin=cli_path("claude"),
        codex_bin=cli_path("codex"),
        opencode_bin=cli_path("opencode"),
        pi_bin=cli_path("pi"),
        claude_base_url=server.url,
        codex_base_url=f"{server.url}/v1",
        opencode_base_url=f"{server.url}/v1",
        opencode_api="chat",
        pi_base_url=f"{server.url}/v1",
        pi_api="chat",
    )
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def settings(
    nats_server: EmbeddedNats,
    tmp_path: Path,
    model_server: ScriptedModelServer,
    credentials: dict[str, str],
) -> Settings:
    return contract_settings(nats_server.url, tmp_path, model_server)


async def agent_events(client: Bus, run_id: str) -> list[s.AgentEventMsg]:
    """Every normalized agent event of a run, in stream order."""
    sub = await client.js.subscribe(
        f"baro.agent.{run_id}.>",
        stream=t.AGENT_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    events: list[s.AgentEventMsg] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=3)
            except NatsTimeoutError:
                return events
            events.append(s.agent_event_decoder.decode(msg.data))
            if msg.metadata and msg.metadata.num_pending == 0:
                return events
    finally:
        await sub.unsubscribe()
