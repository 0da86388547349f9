"""The traps of each wire format (research/wire-formats.md), one small stream at a time."""

from __future__ import annotations

import json

import msgspec
import pytest

from baro_shared.mappers import (
    BACKENDS,
    ClaudeMapper,
    PiMapper,
    StreamMapper,
    mapper_for,
    summarize,
)
from baro_shared.mappers.base import EXCERPT_CHARS, is_retryable, status_in
from baro_shared.schemas import (
    AgentError,
    AgentFinished,
    AssistantText,
    CommandRun,
    FileChanged,
    NormalizedEvent,
    SessionStarted,
    TokenUsage,
    ToolFinished,
    ToolStarted,
    Usage,
)

from .conftest import fixture_lines, roundtrip, run


def lines(*objects: object) -> list[str]:
    return [json.dumps(obj) for obj in objects]


def of(kind: type, events: list[NormalizedEvent]) -> list:
    return [event for event in events if isinstance(event, kind)]


def usage_tuple(usage: TokenUsage) -> tuple[int | None, ...]:
    return (usage.input, usage.cached_input, usage.output, usage.reasoning)


# --------------------------------------------------------------------------- registry


def test_mapper_for_gives_a_fresh_mapper_per_backend() -> None:
    assert BACKENDS == ("claude", "codex", "opencode", "pi")
    for backend in BACKENDS:
        first, second = mapper_for(backend), mapper_for(backend)
        assert isinstance(first, StreamMapper) and first is not second
        assert first.backend == backend
    assert isinstance(mapper_for("scripted"), ClaudeMapper)


@pytest.mark.parametrize("name", ["gemini", "", "Claude ", None, 3])
def test_mapper_for_an_unknown_backend_names_the_valid_ones(name: object) -> None:
    with pytest.raises(ValueError) as raised:
        mapper_for(name)  # type: ignore[arg-type]
    for backend in (*BACKENDS, "scripted"):
        assert backend in str(raised.value)


# --------------------------------------------------------------------------- claude


def claude_result(**fields: object) -> dict[str, object]:
    return {"type": "result", "subtype": "success", "is_error": False, "session_id": "s1", **fields}


def claude_tool_use(call_id: str, name: str, tool_input: dict[str, object]) -> dict[str, object]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}
    return {"type": "assistant", "session_id": "s1", "message": {"content": [block]}}


def claude_tool_result(call_id: str, content: object, *, is_error: bool = False, **extra: object):
    block = {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": content,
        "is_error": is_error,
    }
    return {"type": "user", "session_id": "s1", "message": {"content": [block]}, **extra}


def test_claude_counts_only_the_result_usage_not_the_per_message_snapshots() -> None:
    snapshot = {
        "input_tokens": 2,
        "cache_creation_input_tokens": 500,
        "cache_read_input_tokens": 900,
        "output_tokens": 1,
    }
    assistant = {
        "type": "assistant",
        "session_id": "s1",
        "message": {"content": [{"type": "text", "text": "hi"}], "usage": snapshot},
    }
    result = claude_result(
        usage={
            "input_tokens": 10,
            "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 3000,
            "output_tokens": 70,
            "output_tokens_details": {"thinking_tokens": 30},
        }
    )
    mapper, events = run("claude", lines(assistant, assistant, result), 0)
    assert len(of(Usage, events)) == 1
    # input 10 + cache writes 200 + cache reads 3000; output 70 already holds thinking 30
    assert usage_tuple(mapper.usage) == (3210, 3000, 70, 30)


def test_claude_spending_is_known_as_its_model_calls_stream() -> None:
    """Budgets cannot wait for the result line: each model call's snapshot (once per
    message id) says what its input cost while the agent runs."""
    mapper = mapper_for("claude")

    def call(message_id: str, cache_read: int) -> bytes:
        snapshot = {
            "input_tokens": 2,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": cache_read,
            "output_tokens": 1,
        }
        return json.dumps(
            {
                "type": "assistant",
                "session_id": "s1",
                "message": {
                    "id": message_id,
                    "content": [{"type": "text", "text": "working"}],
                    "usage": snapshot,
                },
            }
        ).encode()

    assert mapper.spent == 0
    mapper.feed(call("msg_1", 1000))
    mapper.feed(call("msg_1", 1000))  # another content block of the same call
    assert mapper.spent == 1102
    mapper.feed(call("msg_2", 5000))
    assert mapper.spent == 1102 + 5102
    assert not mapper.usage.is_known(), "snapshots are never taken for the totals"
    # the result's totals take over once they come
    result = claude_result(usage={"input_tokens": 10, "cache_read_input_tokens": 9000,
                                  "output_tokens": 300})  # fmt: skip
    mapper.feed(json.dumps(result))
    assert mapper.spent == max(9310, 6204) == mapper.usage.total


def test_claude_stopped_before_its_result_reports_what_its_calls_streamed() -> None:
    """A stopped agent writes no result line: its tokens are the snapshots' input, and its
    output stays unknown rather than 1 token per call."""
    tools = fixture_lines("claude/archistrator_success_with_tools.jsonl")
    cut = [line for line in tools if b'"type":"result"' not in line]
    mapper, events = run("claude", cut, -15)
    (usage,) = of(Usage, events)
    # two model calls: 2 + 5244 + 29178 and 2 + 180 + 34422 (the result says 69028 too)
    assert usage_tuple(usage.usage) == (69028, 29178 + 34422, None, None)
    assert mapper.usage == usage.usage and mapper.spent == 69028
    assert of(AgentFinished, events)[0].ok is False


def test_claude_prefers_model_usage_which_includes_sub_agents() -> None:
    result = claude_result(
        usage={
            "input_tokens": 4,
            "cache_creation_input_tokens": 10,
            "cache_read_input_tokens": 100,
            "output_tokens": 7,
        },
        modelUsage={
            "main": {
                "inputTokens": 4,
                "cacheCreationInputTokens": 10,
                "cacheReadInputTokens": 100,
                "outputTokens": 7,
            },
            "haiku": {
                "inputTokens": 1,
                "cacheCreationInputTokens": 2,
                "cacheReadInputTokens": 3,
                "outputTokens": 4,
            },
        },
    )
    mapper, _ = run("claude", lines(result))
    assert usage_tuple(mapper.usage) == (4 + 10 + 100 + 1 + 2 + 3, 103, 11, None)


def test_claude_is_error_wins_over_a_success_subtype() -> None:
    synthetic = {
        "type": "assistant",
        "session_id": "s1",
        "error": "rate_limit",
        "is_api_error_message": True,
        "message": {
            "model": "<synthetic>",
            "content": [{"type": "text", "text": "API Error: 429 rate limited"}],
        },
    }
    result = claude_result(
        is_error=True, api_error_status=429, result="API Error: 429 rate limited"
    )
    mapper, events = run("claude", lines(synthetic, result), 0)
    assert of(AssistantText, events) == []  # the synthetic message is the error, not text
    (error,) = of(AgentError, events)
    assert (error.retryable, error.status) == (True, 429)
    assert mapper.outcome_ok is False and mapper.error == "API Error: 429 rate limited"


def test_claude_max_turns_is_an_error_that_is_not_retried() -> None:
    result = claude_result(
        subtype="error_max_turns", is_error=True, errors=["Reached maximum number of turns (3)"]
    )
    mapper, events = run("claude", lines(result), 1)
    (error,) = of(AgentError, events)
    assert error.message == "Reached maximum number of turns (3)" and not error.retryable
    assert mapper.outcome_ok is False


def test_claude_permission_denials_without_work_fail_the_run() -> None:
    denied = {"tool_name": "Write", "tool_use_id": "t1", "tool_input": {"file_path": "a.txt"}}
    stream = lines(
        claude_tool_use("t1", "Write", {"file_path": "a.txt", "content": "x"}),
        claude_tool_result("t1", "Claude requested permissions to write to a.txt", is_error=True),
        claude_result(result="I could not write the file.", permission_denials=[denied]),
    )
    mapper, events = run("claude", stream, 0)
    assert of(FileChanged, events) == []
    (error,) = of(AgentError, events)
    assert "permission denied for Write" in error.message and not error.retryable
    assert mapper.outcome_ok is False


def test_claude_permission_denials_after_real_work_do_not_fail_the_run() -> None:
    denied = {"tool_name": "Bash", "tool_use_id": "t2", "tool_input": {"command": "rm -rf /"}}
    stream = lines(
        claude_tool_use(
            "t1", "Edit", {"file_path": "src/a.py", "old_string": "a", "new_string": "b"}
        ),
        claude_tool_result("t1", "The file src/a.py has been updated."),
        claude_result(permission_denials=[denied]),
    )
    mapper, events = run("claude", stream, 0)
    assert [(e.path, e.change) for e in of(FileChanged, events)] == [("src/a.py", "update")]
    assert of(AgentError, events) == [] and mapper.outcome_ok is True


def test_claude_bash_exit_codes_and_refused_commands() -> None:
    stream = lines(
        claude_tool_use("t1", "Bash", {"command": "make test"}),
        claude_tool_result("t1", "Exit code 2\nmake: *** [test] Error 2", is_error=True),
        claude_tool_use("t2", "Bash", {"command": "ls"}),
        claude_tool_result(
            "t2",
            [{"type": "text", "text": "a.txt"}],
            tool_use_result={"stdout": "a.txt", "interrupted": False},
        ),
        claude_tool_use("t3", "Bash", {"command": "curl example.com"}),
        claude_tool_result("t3", "Claude requested permissions to use Bash", is_error=True),
        claude_result(),
    )
    _, events = run("claude", stream, 0)
    assert [(e.command, e.exit_code) for e in of(CommandRun, events)] == [
        ("make test", 2),
        ("ls", 0),
    ]
    assert [(e.call_id, e.name, e.ok) for e in of(ToolFinished, events)] == [
        ("t1", "Bash", False),
        ("t2", "Bash", True),
        ("t3", "Bash", False),
    ]


def test_claude_without_a_result_falls_back_to_the_exit_code() -> None:
    init = {"type": "system", "subtype": "init", "session_id": "s9", "model": "m"}
    mapper, events = run("claude", lines(init), 0)
    assert mapper.outcome_ok is True and mapper.session_id == "s9"
    mapper, events = run("claude", lines(init), 137)
    (error,) = of(AgentError, events)
    assert "137" in error.message and mapper.outcome_ok is False
    assert of(AgentFinished, events)[0].error == mapper.error


def test_claude_session_id_from_hooks_is_announced_once_with_the_init_model() -> None:
    hook = {"type": "system", "subtype": "hook_started", "session_id": "s1"}
    init = {"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-x"}
    _, events = run("claude", lines(hook, init, claude_result()))
    sessions = of(SessionStarted, events)
    assert [(s.session_id, s.model) for s in sessions] == [("s1", "claude-x")]


# --------------------------------------------------------------------------- codex


def codex_turn_completed(**usage: int) -> dict[str, object]:
    return {"type": "turn.completed", "usage": usage}


def test_codex_reconnecting_notices_are_not_failures() -> None:
    stream = lines(
        {"type": "thread.started", "thread_id": "th"},
        {"type": "turn.started"},
        {"type": "error", "message": "Reconnecting... 1/5 (stream disconnected before completion)"},
        {"type": "error", "message": "Reconnecting… 2/5 (stream disconnected before completion)"},
        codex_turn_completed(
            input_tokens=200, cached_input_tokens=80, output_tokens=40, reasoning_output_tokens=10
        ),
    )
    mapper, events = run("codex", stream, 0)
    assert of(AgentError, events) == [] and mapper.outcome_ok is True
    # input already includes cached, output already includes reasoning
    assert usage_tuple(mapper.usage) == (200, 80, 40, 10)


def test_codex_exhausted_reconnects_fail_once_and_retryably() -> None:
    stream = lines(
        {"type": "thread.started", "thread_id": "th"},
        {"type": "turn.started"},
        {"type": "error", "message": "Reconnecting... 5/5 (stream disconnected before completion)"},
        {"type": "error", "message": "stream disconnected before completion: connection closed"},
        {
            "type": "turn.failed",
            "error": {"message": "stream disconnected before completion: connection closed"},
        },
    )
    mapper, events = run("codex", stream, 1)
    (error,) = of(AgentError, events)
    assert error.retryable and mapper.outcome_ok is False


def test_codex_high_demand_is_retryable_and_a_bad_request_is_not() -> None:
    _, events = run(
        "codex",
        lines(
            {"type": "turn.started"},
            {
                "type": "error",
                "message": "We're currently experiencing high demand, which may cause temporary errors.",
            },
        ),
        1,
    )
    assert [e.retryable for e in of(AgentError, events)] == [True]
    _, events = run(
        "codex",
        lines(
            {"type": "turn.started"},
            {
                "type": "turn.failed",
                "error": {"message": "unexpected status 400 Bad Request: model not supported"},
            },
        ),
        1,
    )
    assert [(e.retryable, e.status) for e in of(AgentError, events)] == [(False, 400)]


def test_codex_error_items_are_warnings() -> None:
    stream = lines(
        {"type": "turn.started"},
        {
            "type": "item.completed",
            "item": {
                "id": "item_0",
                "type": "error",
                "message": "Model metadata for `mock-model` not found",
            },
        },
        codex_turn_completed(input_tokens=1, cached_input_tokens=0, output_tokens=1),
    )
    mapper, events = run("codex", stream, 0)
    assert of(AgentError, events) == [] and mapper.outcome_ok is True


def test_codex_without_any_turn_result_uses_the_exit_code() -> None:
    stream = lines({"type": "thread.started", "thread_id": "th"}, {"type": "turn.started"})
    assert run("codex", stream, 0)[0].outcome_ok is True
    mapper, events = run("codex", stream, 1)
    assert mapper.outcome_ok is False and len(of(AgentError, events)) == 1


def test_codex_tool_calls_match_item_ids_across_started_and_completed() -> None:
    stream = lines(
        {
            "type": "item.started",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": "ls",
                "status": "in_progress",
            },
        },
        {
            "type": "item.updated",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": "ls",
                "status": "in_progress",
            },
        },
        {
            "type": "item.completed",
            "item": {
                "id": "item_1",
                "type": "command_execution",
                "command": "ls",
                "aggregated_output": "x\n",
                "exit_code": 0,
                "status": "completed",
            },
        },
        {
            "type": "item.completed",
            "item": {
                "id": "item_2",
                "type": "file_change",
                "changes": [
                    {"path": "gone.txt", "kind": "delete"},
                    {"path": "odd.txt", "kind": "rename"},
                ],
                "status": "completed",
            },
        },
    )
    _, events = run("codex", stream, 0)
    assert [e.call_id for e in of(ToolStarted, events)] == ["item_1", "item_2"]
    assert [e.call_id for e in of(ToolFinished, events)] == ["item_1", "item_2"]
    assert [(e.path, e.change) for e in of(FileChanged, events)] == [
        ("gone.txt", "delete"),
        ("odd.txt", "unknown"),
    ]


# --------------------------------------------------------------------------- opencode


def opencode(kind: str, **fields: object) -> dict[str, object]:
    return {"type": kind, "timestamp": 1, "sessionID": "ses_1", **fields}


def opencode_tool(call_id: str, tool: str, state: dict[str, object]) -> dict[str, object]:
    return opencode(
        "tool_use", part={"type": "tool", "callID": call_id, "tool": tool, "state": state}
    )


def test_opencode_adds_cache_to_input_and_reasoning_to_output() -> None:
    step = opencode(
        "step_finish",
        part={
            "reason": "stop",
            "cost": 0,
            "tokens": {
                "input": 60,
                "output": 15,
                "reasoning": 5,
                "cache": {"read": 40, "write": 7},
            },
        },
    )
    mapper, _ = run("opencode", lines(step), 0)
    assert usage_tuple(mapper.usage) == (60 + 40 + 7, 40, 15 + 5, 5)


def test_opencode_error_line_fails_the_run_even_with_exit_code_zero() -> None:
    error = opencode(
        "error",
        error={"name": "APIError", "data": {"message": "Too Many Requests", "statusCode": 429}},
    )
    mapper, events = run("opencode", lines(error), 0)
    assert [(e.retryable, e.status) for e in of(AgentError, events)] == [(True, 429)]
    assert mapper.outcome_ok is False and mapper.error == "Too Many Requests"
    error = opencode(
        "error",
        error={
            "name": "ProviderModelNotFoundError",
            "data": {"message": "model not found", "statusCode": 404},
        },
    )
    _, events = run("opencode", lines(error), 1)
    assert [e.retryable for e in of(AgentError, events)] == [False]


def test_opencode_without_a_final_step_uses_the_exit_code() -> None:
    step = opencode(
        "step_finish", part={"reason": "tool-calls", "tokens": {"input": 1, "output": 1}}
    )
    assert run("opencode", lines(step), 0)[0].outcome_ok is True
    assert run("opencode", lines(step), 1)[0].outcome_ok is False


def test_opencode_file_tools_and_failed_tools() -> None:
    stream = lines(
        opencode_tool(
            "c1",
            "edit",
            {
                "status": "completed",
                "input": {"filePath": "/w/a.py", "oldString": "a", "newString": "b"},
                "output": "",
                "metadata": {},
            },
        ),
        opencode_tool(
            "c2",
            "write",
            {
                "status": "completed",
                "input": {"filePath": "/w/new.py", "content": "x"},
                "output": "",
                "metadata": {"exists": False},
            },
        ),
        opencode_tool(
            "c3",
            "write",
            {
                "status": "error",
                "input": {"filePath": "/w/no.py", "content": "x"},
                "error": "permission rejected",
            },
        ),
        opencode_tool(
            "c4",
            "patch",
            {
                "status": "completed",
                "input": {
                    "patchText": "*** Begin Patch\n*** Add File: b.py\n+x\n*** Delete File: c.py\n*** End Patch"
                },
                "output": "",
            },
        ),
        opencode_tool(
            "c5", "bash", {"status": "error", "input": {"command": "ls"}, "error": "rejected"}
        ),
    )
    _, events = run("opencode", stream, 0)
    assert [(e.path, e.change) for e in of(FileChanged, events)] == [
        ("/w/a.py", "update"),
        ("/w/new.py", "add"),
        ("b.py", "add"),
        ("c.py", "delete"),
    ]
    assert [(e.call_id, e.ok) for e in of(ToolFinished, events)] == [
        ("c1", True),
        ("c2", True),
        ("c3", False),
        ("c4", True),
        ("c5", False),
    ]
    assert of(CommandRun, events) == []  # the rejected command never ran


# --------------------------------------------------------------------------- pi


def pi_assistant(stop: str, usage: dict[str, object], **fields: object) -> dict[str, object]:
    message = {
        "role": "assistant",
        "content": [],
        "model": "m",
        "usage": usage,
        "stopReason": stop,
        **fields,
    }
    return {"type": "message_end", "message": message}


def test_pi_error_stop_reason_fails_the_run_with_exit_code_zero() -> None:
    stream = lines(
        {"type": "session", "version": 3, "id": "p1"},
        pi_assistant(
            "error",
            {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
            errorMessage="529 overloaded",
        ),
        {"type": "agent_end", "messages": [], "willRetry": False},
    )
    mapper, events = run("pi", stream, 0)
    assert [(e.retryable, e.status) for e in of(AgentError, events)] == [(True, 529)]
    assert mapper.outcome_ok is False and mapper.error == "529 overloaded"


def test_pi_failed_auto_retries_fail_the_run_retryably() -> None:
    stream = lines(
        pi_assistant("error", {"input": 5, "output": 0}, errorMessage="500 internal error"),
        {
            "type": "auto_retry_start",
            "attempt": 1,
            "maxAttempts": 1,
            "delayMs": 1,
            "errorMessage": "500 internal error",
        },
        pi_assistant("error", {"input": 5, "output": 0}, errorMessage="500 internal error"),
        {
            "type": "auto_retry_end",
            "success": False,
            "attempt": 1,
            "finalError": "500 internal error",
        },
    )
    mapper, events = run("pi", stream, 0)
    assert mapper.outcome_ok is False
    assert all(e.retryable for e in of(AgentError, events))
    assert mapper.usage.input == 10  # both failed calls were model calls


def test_pi_counts_message_end_only_not_updates_turn_end_or_agent_end() -> None:
    usage = {
        "input": 60,
        "output": 20,
        "cacheRead": 40,
        "cacheWrite": 3,
        "reasoning": 5,
        "totalTokens": 123,
    }
    message = {
        "role": "assistant",
        "content": [{"type": "text", "text": "ok"}],
        "usage": usage,
        "stopReason": "stop",
    }
    stream = lines(
        {
            "type": "message_update",
            "usage": usage,
            "assistantMessageEvent": {"type": "text_delta", "delta": "ok"},
        },
        {
            "type": "message_update",
            "message": message,
            "assistantMessageEvent": {"type": "text_end"},
        },
        {"type": "message_end", "message": message},
        {"type": "turn_end", "message": message, "toolResults": []},
        {"type": "agent_end", "messages": [message]},
        {"type": "agent_settled", "aborted": False},
    )
    mapper, events = run("pi", stream, 0)
    assert len(of(Usage, events)) == 1
    assert usage_tuple(mapper.usage) == (60 + 40 + 3, 40, 20, 5)
    assert [e.text for e in of(AssistantText, events)] == ["ok"]


def test_pi_edit_write_and_failing_bash() -> None:
    stream = lines(
        {
            "type": "tool_execution_start",
            "toolCallId": "a",
            "toolName": "edit",
            "args": {"path": "src/x.ts", "edits": []},
        },
        {
            "type": "tool_execution_end",
            "toolCallId": "a",
            "toolName": "edit",
            "result": {"content": []},
            "isError": False,
        },
        {
            "type": "tool_execution_start",
            "toolCallId": "b",
            "toolName": "write",
            "args": {"path": "/abs/y.ts", "content": ""},
        },
        {
            "type": "tool_execution_end",
            "toolCallId": "b",
            "toolName": "write",
            "result": {"content": []},
            "isError": True,
        },
        {
            "type": "tool_execution_start",
            "toolCallId": "c",
            "toolName": "bash",
            "args": {"command": "false"},
        },
        {
            "type": "tool_execution_end",
            "toolCallId": "c",
            "toolName": "bash",
            "result": {"content": [{"type": "text", "text": "Command exited with code 1"}]},
            "isError": True,
        },
        {
            "type": "tool_execution_end",
            "toolCallId": "d",
            "toolName": "bash",
            "result": {"content": []},
            "isError": False,
        },
    )
    _, events = run("pi", stream, 0)
    assert [(e.path, e.change) for e in of(FileChanged, events)] == [("src/x.ts", "update")]
    assert [(e.command, e.exit_code) for e in of(CommandRun, events)] == [("false", 1), ("", None)]
    # an end without a start still gets its start, so calls always pair up
    assert [e.call_id for e in of(ToolStarted, events)] == ["a", "b", "c", "d"]


def test_pi_aborted_run_fails() -> None:
    mapper, _ = run(
        "pi",
        lines(
            pi_assistant("stop", {"input": 1, "output": 1}),
            {"type": "agent_settled", "aborted": True},
        ),
        0,
    )
    assert mapper.outcome_ok is False


def test_pi_stream_with_no_model_call_falls_back_to_the_exit_code() -> None:
    assert run("pi", lines({"type": "session", "id": "p"}), 0)[0].outcome_ok is True
    assert PiMapper().finish(2)[-1] == AgentFinished(
        ok=False, error="pi exited with code 2 without a result"
    )


# --------------------------------------------------------------------------- shared behaviour


@pytest.mark.parametrize(
    ("message", "status", "retryable"),
    [
        ("429 Too Many Requests", None, True),
        ("API Error: 500 internal", None, True),
        ("Overloaded", None, True),
        ('{"type":"overloaded_error"}', None, True),
        ("Rate limit exceeded", None, True),
        ("Codex error: The usage limit has been reached", None, True),
        ("We're currently experiencing high demand", None, True),
        ("anything", 503, True),
        ("anything", 429, True),
        ("400 invalid_request_error: out of extra usage", None, False),
        ("API Error: 401 authentication_error", None, False),
        ("model_not_found", None, False),
        ("There's an issue with the selected model", 404, False),
        ("unexpected status 404 Not Found", None, False),
        ("Rate limit exceeded", 400, False),
        ("", None, False),
    ],
)
def test_retryable_classification(message: str, status: int | None, retryable: bool) -> None:
    assert is_retryable(message, status) is retryable


def test_status_is_read_only_where_it_is_stated() -> None:
    assert status_in("400 {...}") == 400
    assert status_in("HTTP 502 Bad Gateway") == 502
    assert status_in("request failed with status code 429") == 429
    assert status_in("line 500 of the file") is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_blank_malformed_and_unknown_lines_are_counted_apart(backend: str) -> None:
    mapper = mapper_for(backend)
    for line in (b"", b"\n", "   ", b"not json", b"[1, 2]", b"null", b'{"type": 1', b"\xff\xfe"):
        assert mapper.feed(line) == []
    assert mapper.feed(b'{"type": "from.the.future", "x": 1}') == []
    assert (mapper.skipped_lines, mapper.unknown_lines) == (5, 1)


def test_tool_inputs_and_outputs_are_bounded_excerpts() -> None:
    huge = "x" * (EXCERPT_CHARS * 10)
    stream = lines(
        claude_tool_use("t1", "Write", {"file_path": "big.txt", "content": huge}),
        claude_tool_result("t1", huge),
        claude_result(),
    )
    _, events = run("claude", stream, 0)
    (started,) = of(ToolStarted, events)
    (finished,) = of(ToolFinished, events)
    assert EXCERPT_CHARS <= len(started.input) < EXCERPT_CHARS + 40
    assert EXCERPT_CHARS <= len(finished.output) < EXCERPT_CHARS + 40
    assert started.input.startswith('{"file_path":"big.txt"')


def test_a_lone_surrogate_escape_does_not_lose_the_line() -> None:
    # JSON.stringify of text cut in the middle of an emoji
    line = '{"type":"text","sessionID":"ses_1","part":{"text":"cut \\ud83d here"}}'
    mapper = mapper_for("opencode")
    events = mapper.feed(line)
    assert mapper.skipped_lines == 0
    assert [e.text for e in of(AssistantText, events)] == ["cut \ufffd here"]
    for event in events:
        assert roundtrip(event) == event


def test_finish_emits_exactly_one_agent_finished() -> None:
    for backend in BACKENDS:
        mapper = mapper_for(backend)
        assert mapper.outcome_ok is None and mapper.error is None
        first = mapper.finish(None)
        assert isinstance(first[-1], AgentFinished) and not first[-1].ok
        assert mapper.finish(0) == [] and mapper.outcome_ok is False


def test_summary_keeps_unknown_usage_as_null() -> None:
    summary = summarize("codex", lines({"type": "thread.started", "thread_id": "t"}), exit_code=0)
    as_json = msgspec.json.decode(msgspec.json.encode(summary))
    assert as_json["usage"] == {
        "input": None,
        "cached_input": None,
        "output": None,
        "reasoning": None,
        "cost_usd": None,
    }
    assert (as_json["outcome"], as_json["error"], as_json["session_id"]) == ("success", None, "t")
    assert summarize("scripted", []).backend == "scripted"
