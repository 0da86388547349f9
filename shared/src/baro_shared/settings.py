"""Settings for every baro process, read from BARO_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return Path(base) if base else Path.home() / fallback


class Settings(BaseSettings):
    """One flat settings object; each service reads what it needs.

    Every field is ``BARO_<NAME>`` in the environment (``nats_url`` -> ``BARO_NATS_URL``).
    """

    model_config = SettingsConfigDict(env_prefix="BARO_", extra="ignore")

    # connection
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_creds: Path | None = None
    connect_timeout_s: float = 5.0

    # JetStream layout (see docs/reliability.md for the trade-offs)
    replicas: int = 1
    dedup_window_s: float = 2 * 3600.0
    cmd_max_age_s: float = 7 * 86400.0
    evt_max_age_s: float = 30 * 86400.0
    evt_max_bytes: int = 1 << 30
    agent_max_age_s: float = 7 * 86400.0
    agent_max_bytes: int = 2 << 30
    objects_max_age_s: float = 14 * 86400.0

    # agent runners
    runner_ack_wait_s: float = 30.0
    runner_max_deliver: int = 6
    max_running_agents: int = 16  # cluster-wide: the runner consumer's max_ack_pending
    runner_slots: int = 4  # agents one runner process runs at once
    runner_id: str | None = None

    # where baro keeps its own files (never inside the user's repository)
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "baro")
    state_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "baro")
    keep_workspaces: bool = False

    # health and metrics endpoint of a service process; port 0 picks a free one
    http_host: str = "127.0.0.1"
    http_port: int = 0

    log_level: str = "INFO"

    # agent backends
    backend: str = "claude"
    model: str | None = None
    claude_bin: str = "claude"
    codex_bin: str = "codex"
    opencode_bin: str = "opencode"
    pi_bin: str = "pi"
    scripted_agent_bin: str | None = None

    # HTTP API (intake)
    api_token: SecretStr | None = None

    @property
    def heartbeat_s(self) -> float:
        return max(0.2, self.runner_ack_wait_s / 3)

    @property
    def workspaces_dir(self) -> Path:
        return self.cache_dir / "workspaces"

    @property
    def integration_dir(self) -> Path:
        return self.cache_dir / "integration"
