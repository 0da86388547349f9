"""Settings for every baro process, read from BARO_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    # embedded server only: fsync every write before acknowledging it (see docs/reliability.md)
    embedded_sync_always: bool = False

    # agent runners
    runner_ack_wait_s: float = 30.0
    runner_max_deliver: int = 6
    # the first wait before a story is retried after a transient provider failure; it
    # doubles with each attempt (at most 120 s) within the story's retry budget
    retry_delay_s: float = Field(default=5.0, ge=0.0)
    max_running_agents: int = 16  # cluster-wide: the runner consumer's max_ack_pending
    runner_slots: int = 4  # agents one runner process runs at once
    runner_id: str | None = None
    # each attempt's raw agent stdout and stderr, kept per stream up to this size (the start
    # and the latest part; see docs/backends.md "Logs")
    agent_log_max_bytes: int = Field(default=16 << 20, ge=1 << 16)
    # each running story's own TCP ports: blocks of port_block_size from port_range_start
    # (BARO_PORT_BASE / BARO_PORT_COUNT / PORT in its environment; docs/configuration.md)
    port_range_start: int = Field(default=20000, ge=1, le=65535)
    port_block_size: int = Field(default=10, ge=1, le=1000)
    port_blocks: int = Field(default=100, ge=1)

    # where baro keeps its own files (never inside the user's repository)
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache") / "baro")
    state_dir: Path = Field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state") / "baro")
    keep_workspaces: bool = False
    # finished story clones a runner keeps per source (in its cache) so the next story
    # writes only the files that differ from its base; used only while agents run fenced
    # (docs/configuration.md, "Source caches")
    spare_workspaces: int = Field(default=4, ge=0)
    # fence launchers a runner starts ahead of its agents (at most one per slot), each
    # waiting for the next agent; used only while agents run fenced (docs/backends.md,
    # "Launchers on standby")
    standby_launchers: int = Field(default=4, ge=0)
    # finished runs whose integration repository, kept workspaces, refs/baro/<run>/ and
    # objects each machine keeps; older ones are forgotten when a new run arrives
    # (docs/configuration.md, "What a machine keeps")
    keep_runs: int = Field(default=20, ge=0)
    # per-source object caches (cache_dir/sources): least recently used ones nothing
    # borrows from are removed while what they alone hold on disk is above this
    # (docs/configuration.md, "Source caches")
    source_cache_max_bytes: int = Field(default=20 << 30, ge=0)

    # health and metrics endpoint of a service process; port 0 picks a free one
    http_host: str = "127.0.0.1"
    http_port: int = 0

    log_level: str = "INFO"

    # merger: who delivered commits are by when the user's git config cannot be read (a
    # cluster); see docs/configuration.md "Commit identity"
    git_author_name: str | None = None
    git_author_email: str | None = None

    # agent backends
    backend: str = "claude"
    model: str | None = None
    claude_bin: str = "claude"
    codex_bin: str = "codex"
    opencode_bin: str = "opencode"
    pi_bin: str = "pi"
    scripted_agent_bin: str | None = None
    # the scripted agent's questions run its script's side-effect steps (test suites that
    # must hold a question open, e.g. the fault suite); a script cannot set it
    scripted_question_tools: bool = False
    # custom model endpoints and the CLIs' own provider retries (see docs/backends.md)
    claude_base_url: str | None = None  # an Anthropic Messages endpoint
    codex_base_url: str | None = None  # an OpenAI Responses endpoint (.../v1)
    opencode_base_url: str | None = None
    opencode_api: Literal["chat", "responses", "messages"] = "chat"
    pi_base_url: str | None = None
    pi_api: Literal["chat", "responses", "messages"] = "chat"
    codex_sandbox: Literal["workspace-write", "danger-full-access"] = "workspace-write"
    agent_max_retries: int | None = Field(default=None, ge=0)  # None: each CLI's default
    # the fence around agents (docs/backends.md, "The agent sandbox"): auto = where the
    # machine allows it; require = a story fails rather than run unfenced; off
    agent_sandbox: Literal["auto", "require", "off"] = "auto"
    agent_hidden_paths: list[Path] = Field(default_factory=list)  # hidden from agents too

    # intake: offline classifier, LLM refinement (see docs/intake.md)
    intake: Literal["offline", "llm", "auto"] = "offline"  # default of `baro run --intake`
    intake_llm_threshold: float = Field(default=0.6, ge=0.0, le=1.0)  # auto: below this, ask
    intake_llm_timeout_s: float = Field(default=120.0, gt=0.0)
    # a run waiting for answers to its questions longer than this is cancelled
    answer_timeout_s: float = Field(default=3600.0, gt=0.0)

    # defaults of `baro run` (docs/configuration.md, "Defaults"): a flag wins over these,
    # these over the repository's .baro.toml [defaults]
    planner: Literal["auto", "deterministic", "llm"] | None = None
    publish: Literal["local", "push", "pr"] | None = None
    surface: Literal["strict", "warn"] | None = None
    max_stories: int | None = Field(default=None, ge=1)
    parallelism: int | None = Field(default=None, ge=1)
    token_budget: int | None = Field(default=None, ge=1)
    # also the default of API runs whose limits name none
    run_token_budget: int | None = Field(default=None, ge=1)
    story_timeout_s: float | None = Field(default=None, ge=1)
    stall_timeout_s: float | None = Field(default=None, ge=1)
    review: Literal["on", "off"] | None = None
    replan: Literal["on", "off"] | None = None
    checkpoint: Literal["on", "off"] | None = None

    # HTTP API (intake)
    api_token: SecretStr | None = None
    # the intake serves the API only when a port is set (0 = a free port); see docs/api.md
    api_port: int | None = Field(default=None, ge=0, le=65535)
    api_host: str | None = None  # default: http_host

    @model_validator(mode="after")
    def _ports_fit(self) -> Settings:
        last = self.port_range_start + self.port_block_size * self.port_blocks - 1
        if last > 65535:
            raise ValueError(
                f"BARO_PORT_RANGE_START + BARO_PORT_BLOCK_SIZE * BARO_PORT_BLOCKS reaches port "
                f"{last}, past 65535: lower one of them"
            )
        return self

    @property
    def heartbeat_s(self) -> float:
        return max(0.2, self.runner_ack_wait_s / 3)

    @property
    def workspaces_dir(self) -> Path:
        return self.cache_dir / "workspaces"

    @property
    def integration_dir(self) -> Path:
        return self.cache_dir / "integration"

    @property
    def sources_dir(self) -> Path:
        return self.cache_dir / "sources"
