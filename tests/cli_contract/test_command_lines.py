"""The headless command lines, environments and config homes baro gives each CLI.

Pure (no CLI needed): these run in the normal suite; the contract tier proves the same
settings against the real binaries.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from baro_shared.headless import BackendConfigError, Invocation, invocation
from baro_shared.settings import Settings

PROMPT = "--looks-like-a-flag but is the prompt"


def run(
    backend: str,
    tmp_path: Path,
    *,
    purpose: str = "story",
    model: str | None = "m1",
    env: dict[str, str] | None = None,
    **settings: object,
) -> Invocation:
    return invocation(
        backend,
        f"/bin/{backend}",
        PROMPT,
        purpose=purpose,  # type: ignore[arg-type]
        home=tmp_path / "home",
        settings=Settings(**{"model": None, **settings}),  # type: ignore[arg-type]
        model=model,
        env=dict(env or {}),
    )


@pytest.mark.parametrize("backend", ["claude", "codex", "opencode", "pi"])
@pytest.mark.parametrize("purpose", ["story", "question"])
def test_the_prompt_goes_on_stdin_never_on_the_command_line(
    backend: str, purpose: str, tmp_path: Path
) -> None:
    invoked = run(backend, tmp_path, purpose=purpose)
    assert invoked.stdin_text == PROMPT
    assert not any(PROMPT in arg for arg in invoked.argv)
    assert "--" not in invoked.argv
    assert invoked.argv[0] == f"/bin/{backend}"


@pytest.mark.parametrize(
    ("backend", "variable", "folder"),
    [
        ("claude", "CLAUDE_CONFIG_DIR", "claude"),
        ("codex", "CODEX_HOME", "codex"),
        ("opencode", "XDG_DATA_HOME", "opencode/data"),
        ("pi", "PI_CODING_AGENT_DIR", "pi"),
    ],
)
def test_each_cli_gets_a_private_config_home(
    backend: str, variable: str, folder: str, tmp_path: Path
) -> None:
    env = run(backend, tmp_path).env
    home = Path(env[variable])
    assert home == tmp_path / "home" / folder
    assert home.is_dir() and (home.stat().st_mode & 0o077) == 0


def test_the_base_environment_is_copied_not_changed(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "OPENAI_API_KEY": "k"}
    for backend in ("claude", "codex", "opencode", "pi"):
        invocation(
            backend,
            "/bin/x",
            "p",
            purpose="story",
            home=tmp_path / backend,
            settings=Settings(),
            model=None,
            env=base,
        )
    assert base == {"PATH": "/usr/bin", "OPENAI_API_KEY": "k"}


def test_claude_story_accepts_edits_and_bash_only(tmp_path: Path) -> None:
    inv = run("claude", tmp_path, claude_base_url="http://127.0.0.1:9", agent_max_retries=0)
    argv = inv.argv
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert argv[argv.index("--allowedTools") + 1] == "Bash"
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv
    assert argv[argv.index("--model") + 1] == "m1"
    assert "--dangerously-skip-permissions" not in argv
    assert inv.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert inv.env["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert inv.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"


def test_claude_question_has_no_tools(tmp_path: Path) -> None:
    argv = run("claude", tmp_path, purpose="question").argv
    assert argv[argv.index("--tools") + 1] == ""
    assert "--no-session-persistence" in argv


def test_codex_custom_endpoint_is_a_provider_in_its_own_config(tmp_path: Path) -> None:
    inv = run(
        "codex",
        tmp_path,
        env={"OPENAI_API_KEY": "sk-1"},
        codex_base_url="http://127.0.0.1:9/v1",
        agent_max_retries=0,
    )
    config = tomllib.loads((Path(inv.env["CODEX_HOME"]) / "config.toml").read_text())
    assert config["model_provider"] == "baro"
    provider = config["model_providers"]["baro"]
    assert provider["base_url"] == "http://127.0.0.1:9/v1"
    assert provider["wire_api"] == "responses"
    assert provider["env_key"] == "OPENAI_API_KEY"
    assert provider["request_max_retries"] == 0 and provider["stream_max_retries"] == 0
    assert config["approval_policy"] == "never"
    assert config["features"]["plugins"] is False
    assert "sk-1" not in (Path(inv.env["CODEX_HOME"]) / "config.toml").read_text()
    assert inv.argv[inv.argv.index("--sandbox") + 1] == "workspace-write"
    assert inv.env["CODEX_API_KEY"] == "sk-1"  # `codex exec` reads CODEX_API_KEY


def test_codex_question_is_read_only_and_ephemeral(tmp_path: Path) -> None:
    argv = run("codex", tmp_path, purpose="question").argv
    assert argv[argv.index("--sandbox") + 1] == "read-only"
    assert "--ephemeral" in argv


def test_codex_without_an_endpoint_uses_its_built_in_provider(tmp_path: Path) -> None:
    inv = run("codex", tmp_path, codex_sandbox="danger-full-access")
    config = tomllib.loads((Path(inv.env["CODEX_HOME"]) / "config.toml").read_text())
    assert "model_provider" not in config and "model_providers" not in config
    assert inv.argv[inv.argv.index("--sandbox") + 1] == "danger-full-access"


@pytest.mark.parametrize(
    ("api", "package", "key"),
    [
        ("chat", "@ai-sdk/openai-compatible", "{env:OPENAI_API_KEY}"),
        ("responses", "@ai-sdk/openai", "{env:OPENAI_API_KEY}"),
        ("messages", "@ai-sdk/anthropic", "none"),
    ],
)
def test_opencode_custom_endpoint(api: str, package: str, key: str, tmp_path: Path) -> None:
    inv = run(
        "opencode",
        tmp_path,
        env={"OPENAI_API_KEY": "sk-1"},
        opencode_base_url="http://127.0.0.1:9/v1",
        opencode_api=api,
    )
    config = json.loads(Path(inv.env["OPENCODE_CONFIG"]).read_text())
    provider = config["provider"]["baro"]
    assert provider["npm"] == package
    assert provider["options"] == {"baseURL": "http://127.0.0.1:9/v1", "apiKey": key}
    assert list(provider["models"]) == ["m1"]
    assert config["model"] == "baro/m1"
    assert inv.argv[inv.argv.index("--model") + 1] == "baro/m1"
    assert config["permission"]["edit"] == "allow" and config["permission"]["bash"] == "allow"
    assert config["permission"]["external_directory"] == "deny"
    assert inv.env["OPENCODE_DISABLE_MODELS_FETCH"] == "1"


def test_opencode_question_denies_every_tool(tmp_path: Path) -> None:
    inv = run("opencode", tmp_path, purpose="question")
    config = json.loads(Path(inv.env["OPENCODE_CONFIG"]).read_text())
    assert config["tools"] == {"*": False}
    assert set(config["permission"].values()) == {"deny"}


def test_pi_custom_endpoint_and_retries(tmp_path: Path) -> None:
    inv = run(
        "pi",
        tmp_path,
        env={"ANTHROPIC_API_KEY": "sk-a"},
        pi_base_url="http://127.0.0.1:9",
        pi_api="messages",
        agent_max_retries=0,
    )
    home = Path(inv.env["PI_CODING_AGENT_DIR"])
    provider = json.loads((home / "models.json").read_text())["providers"]["baro"]
    assert provider["api"] == "anthropic-messages"
    assert provider["apiKey"] == "${ANTHROPIC_API_KEY}"
    assert provider["models"][0]["id"] == "m1"
    settings = json.loads((home / "settings.json").read_text())
    assert settings["retry"]["enabled"] is False
    argv = inv.argv
    assert argv[argv.index("--provider") + 1] == "baro"
    assert argv[argv.index("--model") + 1] == "m1"
    assert argv[argv.index("--mode") + 1] == "json" and "--no-session" in argv


def test_pi_question_has_no_tools(tmp_path: Path) -> None:
    assert "--no-tools" in run("pi", tmp_path, purpose="question").argv


@pytest.mark.parametrize("backend", ["opencode", "pi"])
def test_a_custom_endpoint_without_a_model_is_a_clear_error(backend: str, tmp_path: Path) -> None:
    with pytest.raises(BackendConfigError, match=f"BARO_{backend.upper()}_BASE_URL .* model"):
        run(backend, tmp_path, model=None, **{f"{backend}_base_url": "http://127.0.0.1:9/v1"})


def test_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendConfigError, match="no headless command line"):
        run("gemini", tmp_path)
