"""Tests of the scripted test/demo agent, run as the real executable in a temp git repo.

Only the executable is used (no baro imports), the way the runner uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from baro_runner.prompt import build_prompt
from baro_shared import schemas as s


def _find_agent() -> str:
    beside_python = Path(sys.executable).with_name("baro-scripted-agent")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("baro-scripted-agent")
    if found is None:
        pytest.fail("baro-scripted-agent is not installed (uv sync installs it)")
    return found


AGENT = _find_agent()
ARGS = ["-p", "do the story", "--output-format", "stream-json", "--verbose"]
LINE_TYPES = {"system", "assistant", "user", "result"}
RESULT_KEYS = {
    "type",
    "subtype",
    "is_error",
    "result",
    "num_turns",
    "duration_ms",
    "usage",
    "total_cost_usd",
    "terminal_reason",
    "session_id",
}
USAGE_KEYS = {
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
}


@dataclass
class AgentRun:
    returncode: int
    events: list[dict[str, Any]]
    stdout: bytes
    stderr: str

    @property
    def init(self) -> dict[str, Any]:
        assert self.events[0]["type"] == "system"
        assert self.events[0]["subtype"] == "init"
        return self.events[0]

    @property
    def result(self) -> dict[str, Any]:
        results = [event for event in self.events if event["type"] == "result"]
        assert len(results) == 1, "exactly one result line"
        assert self.events[-1] is results[0], "the result line comes last"
        return results[0]

    def blocks(self, block_type: str) -> list[dict[str, Any]]:
        line_type = "user" if block_type == "tool_result" else "assistant"
        return [
            block
            for event in self.events
            if event["type"] == line_type
            for block in event["message"]["content"]
            if block["type"] == block_type
        ]

    def texts(self) -> list[str]:
        return [block["text"] for block in self.blocks("text")]

    def tool_results(self) -> list[tuple[dict[str, Any], Any]]:
        """Each tool_result block with the line's tool_use_result."""
        return [
            (event["message"]["content"][0], event["tool_use_result"])
            for event in self.events
            if event["type"] == "user"
        ]


def parse_stream(stdout: bytes) -> list[dict[str, Any]]:
    assert stdout == b"" or stdout.endswith(b"\n"), "every line is newline-terminated"
    events = []
    for line in stdout.decode("utf-8").splitlines():
        event = json.loads(line)
        assert isinstance(event, dict)
        assert event["type"] in LINE_TYPES
        events.append(event)
    return events


def agent_env(
    script: dict[str, Any] | str | None,
    *,
    story_id: str,
    title: str,
    attempt: int,
    surface: list[str],
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BARO_")}
    env.update(
        BARO_STORY_ID=story_id,
        BARO_STORY_TITLE=title,
        BARO_ATTEMPT=str(attempt),
        BARO_WRITE_SURFACE=json.dumps(surface),
    )
    if script is not None:
        env["BARO_AGENT_SCRIPT"] = script if isinstance(script, str) else json.dumps(script)
    return env


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    repo = tmp_path / "workspace"
    repo.mkdir()
    (repo / "README.md").write_text("# sample\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    return repo.resolve()


def run_agent(
    workspace: Path,
    script: dict[str, Any] | str | None = None,
    *,
    story_id: str = "S1",
    title: str = "Add greeting",
    attempt: int = 1,
    surface: list[str] | None = None,
    args: list[str] | None = None,
    env_overrides: dict[str, str] | None = None,
) -> AgentRun:
    env = agent_env(script, story_id=story_id, title=title, attempt=attempt, surface=surface or [])
    env.update(env_overrides or {})
    completed = subprocess.run(
        [AGENT, *(ARGS if args is None else args)],
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    return AgentRun(
        completed.returncode,
        parse_stream(completed.stdout),
        completed.stdout,
        completed.stderr.decode(),
    )


@pytest.fixture
def start_agent(workspace: Path) -> Iterator[Any]:
    """Start the agent in its own process group (as the runner does); kill the group after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(steps: list[dict[str, Any]]) -> subprocess.Popen[bytes]:
        env = agent_env(
            {"default": {"steps": steps}}, story_id="S1", title="t", attempt=1, surface=[]
        )
        process = subprocess.Popen(
            [AGENT, *ARGS],
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered, so select() sees every line still unread
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def steps(*items: dict[str, Any]) -> dict[str, Any]:
    return {"default": {"steps": list(items)}}


def read_event(process: subprocess.Popen[bytes], timeout: float = 10) -> dict[str, Any]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the agent produced no line in time"
    line = process.stdout.readline()
    assert line, "the agent closed its output"
    return json.loads(line)


# --- the stream's shape --------------------------------------------------------------


def test_stream_has_claude_code_shapes(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps(
            {"text": "Planning the change."},
            {"write": "src/greeting.txt", "content": "hello\n"},
            {"run": "cat src/greeting.txt"},
            {"text": "Done."},
        ),
    )
    assert run.returncode == 0, run.stderr

    init = run.init
    assert init["cwd"] == str(workspace)
    assert init["model"] == "baro-scripted"
    assert {"Bash", "Edit", "Write"} <= set(init["tools"])
    assert "baro.scripted" in init["claude_code_version"]
    assert "test/demo" in init["scripted_agent"]["label"]
    session_id = init["session_id"]
    assert all(event["session_id"] == session_id for event in run.events)

    for event in run.events:
        if event["type"] == "assistant":
            message = event["message"]
            assert message["role"] == "assistant"
            assert message["id"].startswith("msg_")
            assert len(message["content"]) == 1
            assert event["parent_tool_use_id"] is None
            assert "uuid" in event

    uses = run.blocks("tool_use")
    results = run.blocks("tool_result")
    assert [use["id"] for use in uses] == [result["tool_use_id"] for result in results]
    assert all(use["id"].startswith("toolu_") for use in uses)
    assert [use["name"] for use in uses] == ["Write", "Bash"]

    result = run.result
    assert set(result) >= RESULT_KEYS
    assert set(result["usage"]) >= USAGE_KEYS
    assert all(isinstance(result["usage"][key], int) for key in USAGE_KEYS)
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["terminal_reason"] == "completed"
    assert "test/demo" in result["result"]
    assert result["num_turns"] == len(
        {event["message"]["id"] for event in run.events if event["type"] == "assistant"}
    )


def test_model_and_session_id_flags(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps({"text": "hi"}),
        args=[*ARGS, "--model", "claude-test-model", "--session-id", "fixed-session"],
    )
    assert run.returncode == 0
    assert run.init["model"] == "claude-test-model"
    assert {event["session_id"] for event in run.events} == {"fixed-session"}
    assert all(
        event["message"]["model"] == "claude-test-model"
        for event in run.events
        if event["type"] == "assistant"
    )


def test_non_ascii_content_is_utf8_on_the_wire_and_on_disk(workspace: Path) -> None:
    run = run_agent(workspace, steps({"write": "note.md", "content": "héllo ✓\n"}))
    assert run.returncode == 0
    assert (workspace / "note.md").read_bytes() == "héllo ✓\n".encode()
    assert "héllo ✓".encode() in run.stdout


# --- default behaviour ---------------------------------------------------------------


def test_without_a_script_it_appends_the_title_to_changes_md(workspace: Path) -> None:
    run = run_agent(workspace, None, title="Add greeting")
    assert run.returncode == 0, run.stderr
    assert (workspace / "CHANGES.md").read_text() == "- Add greeting\n"
    assert run.init["scripted_agent"]["rule"] == "builtin-default"
    assert run.init["scripted_agent"]["script"] == "none"
    assert {key: run.result["usage"][key] for key in USAGE_KEYS} == {
        "input_tokens": 100,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 700,
        "output_tokens": 50,
    }


def test_default_uses_the_first_concrete_write_surface_path(workspace: Path) -> None:
    (workspace / "docs").mkdir()
    run = run_agent(workspace, None, surface=["src/*.py", "docs/", "docs", "notes.txt", "b.md"])
    assert run.returncode == 0
    assert (workspace / "notes.txt").read_text() == "- Add greeting\n"
    assert not (workspace / "b.md").exists()
    assert not (workspace / "CHANGES.md").exists()


def test_default_stays_inside_a_directory_surface(workspace: Path) -> None:
    run = run_agent(workspace, None, surface=["src/*.py", "src/auth/**", "docs/"])
    assert run.returncode == 0
    assert (workspace / "src" / "auth" / "CHANGES.md").read_text() == "- Add greeting\n"
    assert not (workspace / "CHANGES.md").exists()


def test_default_writes_a_comment_in_code_files(workspace: Path) -> None:
    (workspace / "app.py").write_text("print(1)")
    run = run_agent(workspace, None, surface=["app.py"])
    assert run.returncode == 0
    assert (workspace / "app.py").read_text() == "print(1)\n# - Add greeting\n"
    assert [use["name"] for use in run.blocks("tool_use")] == ["Edit"]


def test_default_falls_back_to_changes_md_for_files_without_comments(workspace: Path) -> None:
    run = run_agent(workspace, None, surface=["data.json"])
    assert run.returncode == 0
    assert not (workspace / "data.json").exists()
    assert (workspace / "CHANGES.md").read_text() == "- Add greeting\n"


# --- steps ---------------------------------------------------------------------------


def test_write_creates_parents_then_overwrites(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps(
            {"write": "a/b/c.txt", "content": "one\n"},
            {"write": "a/b/c.txt", "content": "two\n"},
        ),
    )
    assert run.returncode == 0
    assert (workspace / "a/b/c.txt").read_text() == "two\n"
    target = str(workspace / "a/b/c.txt")
    first, _ = run.blocks("tool_use")
    assert first["name"] == "Write"
    assert first["input"] == {"file_path": target, "content": "one\n"}
    (created, created_info), (_, updated_info) = run.tool_results()
    assert created["content"] == f"File created successfully at: {target}"
    assert "is_error" not in created
    assert created_info["type"] == "create"
    assert created_info["filePath"] == target
    assert updated_info["type"] == "update"
    assert updated_info["originalFile"] == "one\n"


def test_append_edits_an_existing_file_and_creates_a_missing_one(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps(
            {"append": "README.md", "content": "more\n"},
            {"append": "new.txt", "content": "first\n"},
        ),
    )
    assert run.returncode == 0
    assert (workspace / "README.md").read_text() == "# sample\nmore\n"
    assert (workspace / "new.txt").read_text() == "first\n"
    edit, write = run.blocks("tool_use")
    assert edit["name"] == "Edit"
    assert edit["input"]["file_path"] == str(workspace / "README.md")
    assert edit["input"]["old_string"] == "# sample\n"
    assert edit["input"]["new_string"] == "# sample\nmore\n"
    assert write["name"] == "Write"


def test_delete_removes_the_file_through_a_bash_rm(workspace: Path) -> None:
    (workspace / "gone.txt").write_text("x")
    run = run_agent(workspace, steps({"delete": "gone.txt"}, {"delete": "never-there.txt"}))
    assert run.returncode == 0
    assert not (workspace / "gone.txt").exists()
    commands = [use["input"]["command"] for use in run.blocks("tool_use")]
    assert commands == ["rm -- gone.txt", "rm -- never-there.txt"]
    (removed, _), (missing, missing_info) = run.tool_results()
    assert "is_error" not in removed
    assert missing["is_error"] is True
    assert missing["content"].startswith("Exit code 1\n")
    assert missing_info.startswith("Error: Exit code 1")
    assert run.result["is_error"] is False


def test_run_reports_output_and_exit_code_without_failing_the_agent(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps(
            {"run": "echo hello; pwd; cat"},
            {"run": "echo oops >&2; exit 3"},
        ),
    )
    assert run.returncode == 0
    ok, ok_info = run.tool_results()[0]
    assert ok["content"] == f"hello\n{workspace}"
    assert ok_info == {
        "stdout": f"hello\n{workspace}\n",
        "stderr": "",
        "interrupted": False,
        "isImage": False,
    }
    failed, failed_info = run.tool_results()[1]
    assert failed["is_error"] is True
    assert failed["content"] == "Exit code 3\noops"
    assert failed_info == "Error: Exit code 3\noops"
    assert [use["input"]["command"] for use in run.blocks("tool_use")] == [
        "echo hello; pwd; cat",
        "echo oops >&2; exit 3",
    ]
    assert run.result["subtype"] == "success"


def test_text_is_an_assistant_text_line(workspace: Path) -> None:
    run = run_agent(workspace, steps({"text": "Looking at the code."}))
    assert run.texts()[0] == "Looking at the code."


def test_sleep_pauses(workspace: Path) -> None:
    started = time.monotonic()
    run = run_agent(workspace, steps({"sleep": 0.4}))
    assert time.monotonic() - started >= 0.4
    assert run.result["duration_ms"] >= 400


def test_usage_steps_are_summed_and_replace_the_default(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps(
            {"usage": {"input": 10, "output": 5}},
            {"usage": {"input": 1, "cached": 7, "cache_write": 2, "output": 1}},
        ),
    )
    usage = run.result["usage"]
    assert usage["input_tokens"] == 11
    assert usage["cache_read_input_tokens"] == 7
    assert usage["cache_creation_input_tokens"] == 2
    assert usage["output_tokens"] == 6


def test_priced_usage_is_the_result_s_cost(workspace: Path) -> None:
    run = run_agent(workspace, steps({"usage": {"input": 10, "cost_usd": 0.25}}))
    assert run.result["total_cost_usd"] == 0.25
    assert run.result["modelUsage"]["baro-scripted"]["costUSD"] == 0.25
    assert run_agent(workspace, steps({"text": "no price"})).result["total_cost_usd"] == 0


def test_model_calls_stream_their_input_and_add_to_the_result(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps(
            {"model_call": {"input": 100, "cached": 900, "output": 40, "cost_usd": 0.5}},
            {"model_call": {"input": 10, "cache_write": 5, "output": 7}},
        ),
    )
    calls = [
        e["message"]
        for e in run.events
        if e["type"] == "assistant" and "Scripted model call" in str(e["message"]["content"])
    ]
    assert len(calls) == 2 and calls[0]["id"] != calls[1]["id"]
    # each line carries its call's message_start snapshot: the whole input, 1 output token
    assert [
        (u["input_tokens"], u["cache_read_input_tokens"], u["cache_creation_input_tokens"])
        for u in (c["usage"] for c in calls)
    ] == [(100, 900, 0), (10, 0, 5)]
    assert {c["usage"]["output_tokens"] for c in calls} == {1}
    usage = run.result["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (110, 900)
    assert (usage["cache_creation_input_tokens"], usage["output_tokens"]) == (5, 47)
    assert run.result["total_cost_usd"] == 0.5


def test_fail_ends_the_run_with_an_error_result(workspace: Path) -> None:
    run = run_agent(
        workspace,
        steps({"fail": "cannot do this"}, {"write": "after.txt", "content": "x"}),
    )
    assert run.returncode == 1
    result = run.result
    assert result["is_error"] is True
    assert result["subtype"] == "error_during_execution"
    assert result["errors"] == ["cannot do this"]
    assert "cannot do this" in result["result"]
    assert "test/demo" in result["result"]
    assert not (workspace / "after.txt").exists()


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, "rate_limit"), (529, "server_error"), (401, "authentication_failed")],
)
def test_api_error_looks_like_claude_code(workspace: Path, status: int, error: str) -> None:
    run = run_agent(workspace, steps({"api_error": {"status": status, "message": "slow down"}}))
    assert run.returncode == 1
    synthetic = run.events[-2]
    assert synthetic["type"] == "assistant"
    assert synthetic["message"]["model"] == "<synthetic>"
    assert synthetic["error"] == error
    assert synthetic["is_api_error_message"] is True
    text = synthetic["message"]["content"][0]["text"]
    assert text.startswith(f"API Error: {status} ")
    assert "slow down" in text
    result = run.result
    assert result["subtype"] == "success"
    assert result["is_error"] is True
    assert result["api_error_status"] == status
    assert result["terminal_reason"] == "api_error"


# --- faults: crash, hang, flood, children, signals -------------------------------------


def test_crash_exits_with_the_code_and_no_result(workspace: Path) -> None:
    run = run_agent(workspace, steps({"text": "before"}, {"crash": 7}, {"text": "after"}))
    assert run.returncode == 7
    assert run.texts() == ["before"]
    assert all(event["type"] != "result" for event in run.events)


def test_hang_goes_silent_and_sigterm_stops_it(start_agent: Any) -> None:
    process = start_agent([{"text": "before the hang"}, {"hang": None}])
    assert read_event(process)["subtype"] == "init"
    assert read_event(process)["message"]["content"][0]["text"] == "before the hang"
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 0.5)
    assert not ready, "a hanging agent writes nothing"
    assert process.poll() is None

    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 128 + signal.SIGTERM
    assert time.monotonic() - signalled < 2


def test_a_finite_hang_resumes(workspace: Path) -> None:
    run = run_agent(workspace, steps({"hang": 0.2}, {"text": "awake"}))
    assert run.returncode == 0
    assert run.texts()[0] == "awake"


def test_sigterm_interrupts_a_running_command(start_agent: Any) -> None:
    process = start_agent([{"run": "sleep 30"}])
    assert read_event(process)["subtype"] == "init"
    assert read_event(process)["message"]["content"][0]["name"] == "Bash"
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 128 + signal.SIGTERM
    assert time.monotonic() - signalled < 2


def test_sigterm_stops_an_agent_blocked_on_a_full_pipe(start_agent: Any) -> None:
    process = start_agent([{"flood": {"lines": 1000, "bytes": 100_000}}])
    assert read_event(process)["subtype"] == "init"
    time.sleep(0.5)  # nobody reads: the agent blocks on the full pipe
    assert process.poll() is None
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 128 + signal.SIGTERM
    assert time.monotonic() - signalled < 2


def test_flood_emits_the_requested_volume(workspace: Path) -> None:
    lines, size = 200, 50_000
    run = run_agent(workspace, steps({"flood": {"lines": lines, "bytes": size}}))
    assert run.returncode == 0
    flood = [text for text in run.texts() if len(text) == size]
    assert len(flood) == lines
    assert len(run.stdout) >= lines * size
    assert run.result["is_error"] is False


def test_spawned_child_outlives_the_agent_in_its_process_group(start_agent: Any) -> None:
    process = start_agent([{"spawn_child": 30}])
    assert process.wait(timeout=10) == 0
    assert process.stdout is not None
    events = parse_stream(process.stdout.read())
    tool_result = next(event for event in events if event["type"] == "user")
    content = tool_result["message"]["content"][0]["content"]
    child_pid = int(re.fullmatch(r"Command running in background with ID: (\d+)", content)[1])

    assert _is_running(child_pid), "the agent leaves its child behind on purpose"
    assert os.getpgid(child_pid) == process.pid, "the child is in the agent's process group"
    os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _is_running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _is_running(child_pid)


def _is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# --- choosing a rule -------------------------------------------------------------------


ATTEMPT_SCRIPT = {
    "stories": [
        {"match": {"id": "S1"}, "attempts": [1], "steps": [{"fail": "first attempt fails"}]},
        {"match": {"id": "S1"}, "steps": [{"write": "ok.txt", "content": "ok\n"}]},
    ]
}


def test_attempts_choose_the_rule(workspace: Path) -> None:
    first = run_agent(workspace, ATTEMPT_SCRIPT, attempt=1)
    assert first.returncode == 1
    assert first.init["scripted_agent"]["rule"] == "stories[0]"
    assert not (workspace / "ok.txt").exists()

    second = run_agent(workspace, ATTEMPT_SCRIPT, attempt=2)
    assert second.returncode == 0
    assert second.init["scripted_agent"]["rule"] == "stories[1]"
    assert (workspace / "ok.txt").read_text() == "ok\n"


def test_match_by_id_and_title_first_rule_wins(workspace: Path) -> None:
    script = {
        "stories": [
            {"match": {"id": "other"}, "steps": [{"text": "by id"}]},
            {"match": {"title": "^Add .*greeting$"}, "steps": [{"text": "by title"}]},
            {"match": {}, "steps": [{"text": "catch-all"}]},
        ],
        "default": {"steps": [{"text": "default"}]},
    }
    assert run_agent(workspace, script, story_id="other").texts()[0] == "by id"
    assert run_agent(workspace, script, title="Add a greeting").texts()[0] == "by title"
    assert run_agent(workspace, script, title="Remove it").texts()[0] == "catch-all"


def test_script_default_applies_when_no_rule_matches(workspace: Path) -> None:
    script = {
        "stories": [{"match": {"id": "nope"}, "steps": []}],
        "default": {"steps": [{"text": "default"}]},
    }
    run = run_agent(workspace, script)
    assert run.init["scripted_agent"]["rule"] == "default"
    assert run.texts()[0] == "default"


def test_builtin_default_applies_when_the_script_has_no_match(workspace: Path) -> None:
    run = run_agent(workspace, {"stories": [{"match": {"id": "nope"}, "steps": []}]})
    assert run.init["scripted_agent"]["rule"] == "builtin-default"
    assert (workspace / "CHANGES.md").exists()


def test_script_file_and_inline_precedence(workspace: Path, tmp_path: Path) -> None:
    script_file = tmp_path / "script.json"
    script_file.write_text(json.dumps(steps({"text": "from file"})))
    from_file = run_agent(
        workspace, None, env_overrides={"BARO_AGENT_SCRIPT_FILE": str(script_file)}
    )
    assert from_file.texts()[0] == "from file"
    assert from_file.init["scripted_agent"]["script"] == f"file:{script_file}"

    inline = run_agent(
        workspace,
        steps({"text": "inline"}),
        env_overrides={"BARO_AGENT_SCRIPT_FILE": str(script_file)},
    )
    assert inline.texts()[0] == "inline"


@pytest.mark.parametrize(
    "script",
    [
        "{not json",
        "[]",
        '{"stories": [], "extra": 1}',
        '{"default": {"steps": [{"explode": 1}]}}',
        '{"default": {"steps": [{"write": "a.txt"}]}}',
        '{"default": {"steps": [{"text": "a", "run": "b"}]}}',
        '{"default": {"steps": [{"crash": 300}]}}',
        '{"default": {"steps": [{"usage": {"tokens": 1}}]}}',
        '{"default": {"steps": [{"flood": {"lines": 1}}]}}',
        '{"stories": [{"match": {"title": "("}, "steps": []}]}',
        '{"stories": [{"attempts": [0], "steps": []}]}',
        '{"stories": [{"match": {"id": "S9"}, "steps": [{"sleep": -1}]}]}',
    ],
)
def test_invalid_scripts_are_rejected_before_any_output(workspace: Path, script: str) -> None:
    run = run_agent(workspace, script)
    assert run.returncode == 2
    assert run.stdout == b""
    assert run.stderr.startswith("baro-scripted-agent: ")


def test_invalid_story_environment_is_rejected(workspace: Path) -> None:
    run = run_agent(workspace, None, env_overrides={"BARO_ATTEMPT": "first"})
    assert run.returncode == 2
    assert "BARO_ATTEMPT" in run.stderr
    run = run_agent(workspace, None, env_overrides={"BARO_WRITE_SURFACE": '{"a": 1}'})
    assert run.returncode == 2
    assert "BARO_WRITE_SURFACE" in run.stderr


# --- confinement -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["write", "append", "delete"])
@pytest.mark.parametrize("escape", ["dotdot", "absolute", "symlink"])
def test_paths_outside_the_workspace_are_refused(workspace: Path, kind: str, escape: str) -> None:
    outside = workspace.parent / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep\n")
    (workspace / "link").symlink_to(outside)
    path = {
        "dotdot": "../outside/victim.txt",
        "absolute": str(outside / "victim.txt"),
        "symlink": "link/victim.txt",
    }[escape]
    step = {kind: path} if kind == "delete" else {kind: path, "content": "pwned\n"}

    run = run_agent(workspace, steps(step))
    assert run.returncode == 0
    [(tool_result, _)] = run.tool_results()
    assert tool_result["is_error"] is True
    assert "outside the workspace" in tool_result["content"]
    assert (outside / "victim.txt").read_text() == "keep\n"
    assert sorted(path.name for path in outside.iterdir()) == ["victim.txt"]


# --- command line ----------------------------------------------------------------------


def test_help_and_version_label_it_a_test_agent() -> None:
    help_text = subprocess.run([AGENT, "--help"], capture_output=True, text=True, check=True)
    assert "TEST/DEMO AGENT" in help_text.stdout
    version = subprocess.run([AGENT, "--version"], capture_output=True, text=True, check=True)
    assert "test/demo" in version.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "x", "--output-format", "stream-json"],
        ["-p", "x", "--output-format", "text", "--verbose"],
        ["-p", "x", "--output-format", "stream-json", "--verbose", "--bogus"],
    ],
)
def test_unsupported_command_lines_are_usage_errors(workspace: Path, args: list[str]) -> None:
    run = run_agent(workspace, None, args=args)
    assert run.returncode == 2
    assert run.stdout == b""


def test_standing_in_for_claude_it_reads_the_story_from_baros_prompt(workspace: Path) -> None:
    """Run as `claude` (BARO_CLAUDE_BIN), the runner gives it Claude Code's command line and
    environment, no BARO_* variables: the story comes from the prompt baro writes."""
    story = s.Story(id="S2", title="Add tests for b.py", write_surface=["tests/test_b.py"])
    prompt = build_prompt(
        s.RunStory(
            run_id="r",
            story=story,
            attempt=1,
            goal="add tests for a.py, b.py and c.py",
            mode="parallel",
            source=s.RepoSource(kind="path", location=str(workspace)),
            base_commit="0" * 40,
        )
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("BARO_")}
    claude_line = [
        "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits",
        "--allowedTools", "Bash", "--", prompt,
    ]  # fmt: skip
    completed = subprocess.run(
        [AGENT, *claude_line], cwd=workspace, env=env, capture_output=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert (workspace / "tests" / "test_b.py").read_text() == "# - Add tests for b.py\n"
    assert not (workspace / "CHANGES.md").exists()


@pytest.mark.parametrize("last", [{"write": "a.txt", "content": "x\n"}, {"fail": "no luck"}])
def test_started_as_the_runner_starts_it_the_agent_ends_as_its_console_script_does(
    workspace: Path, last: dict[str, Any]
) -> None:
    """The runner starts the installed scripted agent as its module and lets it leave
    without the interpreter's finalization: the same lines, the same exit code."""
    from baro_runner.backends import _scripted_start

    assert _scripted_start(AGENT) != [AGENT], "the installed agent is started as its module"
    script = {"default": {"steps": [{"text": "working"}, last]}}
    env = agent_env(script, story_id="S1", title="t", attempt=1, surface=[])
    runs = [
        subprocess.run(
            [*start, *ARGS],
            cwd=workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        for start in ([AGENT], _scripted_start(AGENT))
    ]
    assert runs[0].returncode == runs[1].returncode == (0 if "write" in last else 1)
    console, runner = (parse_stream(run.stdout) for run in runs)
    assert [e["type"] for e in runner] == [e["type"] for e in console]
    assert runner[-1]["type"] == "result" and runner[-1]["result"] == console[-1]["result"]
