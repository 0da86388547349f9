"""Capture how each real agent CLI fails, for the fixtures in tests/mappers/cli_failures.

Each case runs one real CLI exactly as the agent-runner starts it for a story (the command
line, environment and config home of ``baro_shared.headless``), in a throwaway git
repository, against the scripted model server of this tier (or with no endpoint and no
key at all), and writes its stdout (``<case>.jsonl``), its stderr (``<case>.stderr``) and
its exit code (``cases.json``). Pi echoes its whole system prompt as ``role: system``
message lines; those two lines are left out (the mapper ignores them). Nothing else is
edited.

    BARO_CLI_TOOLS=.cli-tools python -m tests.cli_contract.capture_failures [CASE ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from baro_shared.backends import agent_env
from baro_shared.headless import invocation
from baro_shared.settings import Settings
from tests.cli_contract.conftest import ANTHROPIC_KEY, BACKENDS, CLI_TOOLS, OPENAI_KEY
from tests.cli_contract.model_server import Script, ScriptedModelServer

OUT = Path(__file__).resolve().parents[1] / "mappers" / "cli_failures"
PROMPT = "create hello.txt containing hi"
CREDENTIALS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "GEMINI_API_KEY",
    "GOOGLE_GENERATIVE_AI_API_KEY",
)


@dataclass(frozen=True)
class Case:
    backend: str
    what: str
    script: Script | None = None  # None: no endpoint and no key in the environment
    model: str | None = None  # default: the tier's model for the backend
    kill_after_s: float = 180.0  # a CLI that never ends on its own is stopped here
    extra: dict[str, str] = field(default_factory=dict)


CASES = {
    "claude_401": Case("claude", "the endpoint answers 401", Script(fail_status=401)),
    "claude_not_logged_in": Case("claude", "no endpoint, no key"),
    "codex_401": Case("codex", "the endpoint answers 401", Script(fail_status=401)),
    "codex_cut": Case("codex", "the response is cut mid-stream", Script(cut_stream="chunked")),
    "codex_no_network": Case("codex", "no endpoint, no key, no network", kill_after_s=30),
    "opencode_401": Case("opencode", "the endpoint answers 401", Script(fail_status=401)),
    "opencode_cut": Case(
        "opencode", "the response is cut mid-stream", Script(cut_stream="chunked")
    ),
    "opencode_no_key": Case("opencode", "no endpoint, no key", model="google/gemini-2.5-flash"),
    "opencode_cut_close": Case(
        "opencode",
        "the stream ends early, connection-delimited",
        Script(cut_stream="close"),
        kill_after_s=60,
    ),
    "pi_401": Case("pi", "the endpoint answers 401", Script(fail_status=401)),
    "pi_no_key": Case("pi", "no endpoint, no key", model="anthropic/claude-sonnet-4-5"),
    "pi_cut": Case("pi", "the response is cut mid-stream", Script(cut_stream="chunked")),
    "pi_cut_close": Case(
        "pi", "the stream ends early, connection-delimited", Script(cut_stream="close")
    ),
}


def capture(name: str, case: Case, server: ScriptedModelServer) -> dict[str, object]:
    model = case.model or BACKENDS[case.backend].model
    keys: dict[str, str] = {}
    fields: dict[str, object] = {"agent_max_retries": 0}
    if case.script is not None:
        server.reset(case.script)
        keys = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY}
        fields.update(
            claude_base_url=server.url,
            codex_base_url=f"{server.url}/v1",
            opencode_base_url=f"{server.url}/v1",
            pi_base_url=f"{server.url}/v1",
        )
    settings = Settings(model=model, **fields)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="baro-capture-") as tmp:
        root = Path(tmp)
        repo = root / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
        env = {k: v for k, v in agent_env(root / "scratch").items() if k not in CREDENTIALS}
        base = {**env, **keys, **case.extra}
        run = invocation(
            case.backend,
            str(CLI_TOOLS / "bin" / case.backend),
            PROMPT,
            purpose="story",
            home=root / "home",
            settings=settings,
            model=model,
            env=base,
        )
        started = time.monotonic()
        try:
            proc = subprocess.run(
                run.argv,
                env=run.env,
                cwd=repo,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=case.kill_after_s,
            )
            exit_code: int | None = proc.returncode
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as stopped:
            exit_code, stdout, stderr = None, stopped.stdout or b"", stopped.stderr or b""
        seconds = round(time.monotonic() - started, 1)
    lines = [line for line in stdout.splitlines(keepends=True) if b'"role":"system"' not in line]
    (OUT / f"{name}.jsonl").write_bytes(b"".join(lines))
    (OUT / f"{name}.stderr").write_bytes(stderr)
    return {
        "backend": case.backend,
        "what": case.what,
        "model": model,
        "exit_code": exit_code,
        "killed_after_s": case.kill_after_s if exit_code is None else None,
        "seconds": seconds,
    }


def main(names: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "cases.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    server = ScriptedModelServer().start()
    try:
        for name in names or list(CASES):
            manifest[name] = capture(name, CASES[name], server)
            print(name, manifest[name], flush=True)
    finally:
        server.stop()
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
