"""Every captured wire stream maps to what a careful reading of the file says.

The expected values below were read off the fixture files by hand (the arithmetic for
the token counts is written next to each number). They are literals on purpose: a change
in a mapper that moves one of them has to be argued for, not regenerated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import pytest

from baro_shared.mappers import BACKENDS, mapper_for, summarize
from baro_shared.schemas import (
    AgentError,
    AgentFinished,
    CommandRun,
    FileChanged,
    SessionStarted,
    ToolFinished,
    ToolStarted,
    Usage,
)

from .conftest import FIXTURES, fixture_lines, roundtrip, run


@dataclass(frozen=True)
class Expected:
    session_id: str | None
    ok: bool
    # (input, cached_input, output, reasoning), summed over the stream
    usage: tuple[int | None, int | None, int | None, int | None]
    tools: list[tuple[str, str, bool]] = field(default_factory=list)  # call id, name, ok
    files: list[tuple[str, str]] = field(default_factory=list)  # path, change
    commands: list[tuple[str, int | None]] = field(default_factory=list)  # command, exit code
    errors: list[tuple[str, bool, int | None]] = field(
        default_factory=list
    )  # start, retryable, status
    error: str | None = None  # start of the outcome's error
    result: str | None = None  # start of the final text


EXPECTED: dict[str, Expected] = {
    # ------------------------------------------------------------------ claude
    "claude/archistrator_success_with_tools.jsonl": Expected(
        session_id="d0becfe3-d703-4311-8d8f-bf0ed7139dd7",
        ok=True,
        # result.modelUsage: inputTokens 4 + cacheCreation 5424 + cacheRead 63600 = 69028
        # (equal to result.usage here: no sub-agent); outputTokens 171; no thinking count.
        usage=(69028, 63600, 171, None),
        tools=[("toolu_01Rjuz3fMBrwLKR72uHAcnmH", "Write", True)],
        files=[("/scrubbed/hello.txt", "add")],  # tool_use_result.type == "create"
        result="The tool result confirms the file is `hi`",
    ),
    "claude/archistrator_success_with_subagent.jsonl": Expected(
        session_id="bda495be-48e6-4476-8117-9e8459107b7d",
        ok=True,
        # result.modelUsage (sub-agent included): 6 + 21022 + 63944 = 84972 input,
        # 269 output. result.usage alone says 4 + 5941 + 63944 = 69889 / 266: it leaves out
        # the sub-agent's 2 + 15081 input and 3 output, which total_cost_usd does include.
        usage=(84972, 63944, 269, None),
        tools=[("toolu_01DL6Gqvj23os5rsNRhFSTmy", "Agent", True)],
        result="The subagent answered: **4**.",
    ),
    "claude/archistrator_failure_model_not_found.jsonl": Expected(
        session_id="7a995c26-c485-4c08-aa33-071588978c49",
        ok=False,  # subtype "success" but is_error true, api_error_status 404
        usage=(0, 0, 0, None),  # modelUsage is {}: result.usage 0 + 0 + 0
        errors=[("There's an issue with the selected model (no-such-model)", False, 404)],
        error="There's an issue with the selected model (no-such-model)",
    ),
    # ------------------------------------------------------------------ codex
    "codex/agentcmd_simple_reasoning_usage.jsonl": Expected(
        session_id="019a2d7a-41c4-78b1-b7cc-a45d62a89cd5",
        ok=True,
        usage=(2946, 0, 7, None),  # codex 0.46: no reasoning_output_tokens
        result="4",
    ),
    "codex/agentcmd_command_execution_ls.jsonl": Expected(
        session_id="019a2d7a-6455-7170-a661-c6d8b94c630a",
        ok=True,
        usage=(6040, 4992, 129, None),
        tools=[("item_1", "command_execution", True)],
        commands=[("bash -lc ls", 0)],
    ),
    "codex/agentcmd_file_change_add.jsonl": Expected(
        session_id="019a2d7a-8e1c-7111-b1a6-8cec551a55a0",
        ok=True,
        usage=(6008, 4096, 51, None),
        tools=[("item_1", "file_change", True)],
        files=[("/private/tmp/codex-research-test/hello.txt", "add")],
        result="Created `hello.txt` containing `Hello from Codex`.",
    ),
    "codex/agentcmd_command_execution_cat.jsonl": Expected(
        session_id="019a2d7b-231d-7290-acc1-6bc6571440da",
        ok=True,
        usage=(6087, 5120, 204, None),
        tools=[("item_1", "command_execution", True)],
        commands=[("bash -lc 'cat test.js'", 0)],
    ),
    "codex/agentcmd_command_execution_zsh.jsonl": Expected(
        session_id="019a2d7b-7fb8-78e1-8cfa-5bdbe274a3aa",
        ok=True,
        usage=(6086, 2944, 223, None),
        tools=[("item_1", "command_execution", True)],
        commands=[("zsh -lc ls", 0)],  # stderr noise in the output, still exit 0
    ),
    "codex/SYNTHETIC_takopi_all_item_types_and_turn_failed.jsonl": Expected(
        session_id="0199a213-81c0-7800-8aa1-bbab2a035a53",
        ok=False,  # the second turn ends in turn.failed
        usage=(1840, 256, 732, None),  # the one turn.completed
        tools=[
            ("item_1", "command_execution", True),
            ("item_2", "command_execution", False),  # exit 1, status failed
            ("item_3", "file_change", True),
            ("item_4", "file_change", False),  # status failed: no file change
            ("item_5", "mcp__github__search_issues", True),
            ("item_6", "mcp__github__search_issues", False),  # error "tool timeout"
            ("item_7", "web_search", True),
        ],
        files=[("src/compute_answer.py", "update"), ("README.md", "add")],
        commands=[("pytest -q", 0), ("pytest -q", 1)],
        # The error item ("command output truncated") is a warning, not an AgentError.
        errors=[
            ("Aborted: required dependency `npm` is missing", False, None),
            ("codex exec exited non-zero after turn.failed", False, None),
        ],
        error="Aborted: required dependency `npm` is missing; cannot continue.",
    ),
    # ------------------------------------------------------------------ opencode
    "opencode/takopi_tool_use_bash_two_steps.jsonl": Expected(
        session_id="ses_494719016ffe85dkDMj0FPRbHK",
        ok=True,  # last step_finish reason "stop"
        # step 1: input 21772 + cache 0/0, output 110 + reasoning 0
        # step 2: input 671 + cache.read 21415 = 22086, output 8
        usage=(21772 + 22086, 21415, 110 + 8, 0),
        tools=[("r9bQWsNLvOrJGIOz", "bash", True)],
        commands=[("echo hello", 0)],  # state.metadata.exit
        result="```\nhello\n```",
    ),
    "opencode/noldor_1.17.20_text_step_tokens.jsonl": Expected(
        session_id="ses_09ec7fc10ffekAtgUWHv9M6Y0T",
        ok=True,
        # input 17913 + cache.read 1664 + cache.write 0 = 19577; output 9 + reasoning 29
        # = 38 (check: 17913 + 9 + 29 + 1664 = 19615 = tokens.total)
        usage=(19577, 1664, 38, 29),
        result="alpha\nbravo\ncharlie",
    ),
    "opencode/SYNTHETIC_takopi_tool_use_and_api_error.jsonl": Expected(
        session_id="ses_1f2e3d4c5b6aAbCdEfGhIjKlMn",
        ok=False,  # top-level error line
        usage=(534, 0, 128 + 64, 64),
        tools=[("01J3Z2K7S0XQ9Y8W7V6U5T4R3S", "bash", True)],
        commands=[("rg --version", 0)],  # metadata.exitCode in this one
        errors=[("Upstream timeout while calling provider", True, 504)],  # isRetryable true
        error="Upstream timeout while calling provider",
    ),
    # ------------------------------------------------------------------ pi
    "pi/tpp_recorded_text_only_usage.jsonl": Expected(
        session_id="01a0900d-6be5-728b-b577-23b7713819d9",
        ok=True,
        # message_end only: input 33254 + cacheRead 113 + cacheWrite 0; output 23 already
        # holds reasoning 12 (33254 + 23 + 113 = 33390 = totalTokens).
        usage=(33367, 113, 23, 12),
        result="ok",
    ),
    "pi/scripted_model_pi1.6.0_tool_call.jsonl": Expected(
        session_id="01a21ff2-ba93-730e-95a0-39c413c34b87",
        ok=True,
        # two model calls, each input 60 + cacheRead 40 = 100, output 20, reasoning 5
        usage=(200, 80, 40, 10),
        tools=[("call_1", "bash", True)],
        commands=[("echo hello-from-tool", 0)],  # structuredContent.exit_code
        result="DONE",
    ),
    "pi/SYNTHETIC_takopi_pi0x_tool_use_compaction_retry.jsonl": Expected(
        session_id=None,  # 0.x: no session header
        ok=True,  # the rate-limited call was retried and auto_retry_end says success
        # four assistant message_end lines: 1240 + 680 + 320 (the failed call) + 410,
        # output 182 + 128 + 0 + 96; no reasoning field in 0.x
        usage=(2650, 0, 406, None),
        tools=[("toolu_01HXYZREAD", "read", True)],
        errors=[("Rate limit exceeded", True, None)],
        result="Retry succeeded.",
    ),
    "pi/causeflow_error_anthropic_400_out_of_usage.jsonl": Expected(
        session_id="019f49f3-0b98-75e0-bba0-a56e5d48d7d6",
        ok=False,  # stopReason "error"; pi's exit code stays 0
        usage=(0, 0, 0, None),
        errors=[('400 {"type":"error"', False, 400)],
        error='400 {"type":"error","error":{"type":"invalid_request_error"',
    ),
    "pi/causeflow_error_openai_codex_usage_limit.jsonl": Expected(
        session_id="019f4a06-fe65-7174-a4d9-a4855dd39247",
        ok=False,
        usage=(0, 0, 0, None),
        errors=[("Codex error: The usage limit has been reached", True, None)],
        error="Codex error: The usage limit has been reached",
    ),
}

# The price in dollars each stream reports, summed (read off the files): Claude Code's
# result.total_cost_usd, OpenCode's step_finish.part.cost per step, Pi's
# message_end.message.usage.cost.total per message. Codex reports no price: unknown, not 0.
COSTS: dict[str, float | None] = {
    "claude/archistrator_success_with_tools.jsonl": 0.054201,
    "claude/archistrator_success_with_subagent.jsonl": 0.11543595,
    "claude/archistrator_failure_model_not_found.jsonl": 0.0,
    "codex/SYNTHETIC_takopi_all_item_types_and_turn_failed.jsonl": None,
    "codex/agentcmd_command_execution_cat.jsonl": None,
    "codex/agentcmd_command_execution_ls.jsonl": None,
    "codex/agentcmd_command_execution_zsh.jsonl": None,
    "codex/agentcmd_file_change_add.jsonl": None,
    "codex/agentcmd_simple_reasoning_usage.jsonl": None,
    "opencode/SYNTHETIC_takopi_tool_use_and_api_error.jsonl": 0.0123,
    "opencode/noldor_1.17.20_text_step_tokens.jsonl": 0.0,
    "opencode/takopi_tool_use_bash_two_steps.jsonl": 0.0 + 0.001,
    "pi/SYNTHETIC_takopi_pi0x_tool_use_compaction_retry.jsonl": 0.001604
    + 0.000936
    + 0.00032
    + 0.000602,
    "pi/causeflow_error_anthropic_400_out_of_usage.jsonl": 0.0,
    "pi/causeflow_error_openai_codex_usage_limit.jsonl": 0.0,
    "pi/scripted_model_pi1.6.0_tool_call.jsonl": 0.0,
    "pi/tpp_recorded_text_only_usage.jsonl": 0.0,
}

# pi and opencode exit 0 even when the stream says otherwise; claude and codex exit 1.
EXIT_CODES = {"claude": 1, "codex": 1, "opencode": 1, "pi": 0}


def test_every_fixture_file_has_expectations() -> None:
    if not FIXTURES.is_dir():
        pytest.fail(f"fixture directory {FIXTURES} is missing", pytrace=False)
    on_disk = {str(path.relative_to(FIXTURES)) for path in FIXTURES.glob("*/*.jsonl")}
    assert on_disk == set(EXPECTED) == set(COSTS)
    assert {name.split("/")[0] for name in on_disk} == set(BACKENDS)
    assert (FIXTURES / "SOURCES.md").is_file()


@pytest.mark.parametrize("relative", sorted(EXPECTED))
@pytest.mark.parametrize("exit_code", [0, "failing", None])
def test_fixture_maps_as_read_by_hand(relative: str, exit_code: int | str | None) -> None:
    backend = relative.split("/")[0]
    expected = EXPECTED[relative]
    if exit_code == "failing":
        exit_code = EXIT_CODES[backend] if not expected.ok else 1
    # The outcome comes from the stream whatever the exit code says.
    mapper, events = run(backend, fixture_lines(relative), exit_code)

    assert mapper.skipped_lines == 0
    assert mapper.unknown_lines == 0
    assert mapper._mapping_failures == 0
    assert mapper.session_id == expected.session_id
    sessions = [e for e in events if isinstance(e, SessionStarted)]
    assert [s.session_id for s in sessions] == (
        [expected.session_id] if expected.session_id else []
    )

    started = [(e.call_id, e.name) for e in events if isinstance(e, ToolStarted)]
    finished = [(e.call_id, e.name, e.ok) for e in events if isinstance(e, ToolFinished)]
    assert started == [(call_id, name) for call_id, name, _ in expected.tools]
    assert finished == expected.tools

    assert [(e.path, e.change) for e in events if isinstance(e, FileChanged)] == expected.files
    assert [
        (e.command, e.exit_code) for e in events if isinstance(e, CommandRun)
    ] == expected.commands

    usage = mapper.usage
    assert (usage.input, usage.cached_input, usage.output, usage.reasoning) == expected.usage
    cost = COSTS[relative]
    assert usage.cost_usd == (None if cost is None else pytest.approx(cost, abs=1e-9))
    reported = (e.usage + type(usage)(cost_usd=e.cost_usd) for e in events if isinstance(e, Usage))
    assert sum(reported, start=type(usage)()) == usage

    errors = [e for e in events if isinstance(e, AgentError)]
    assert len(errors) == len(expected.errors)
    for event, (start, retryable, status) in zip(errors, expected.errors, strict=True):
        assert event.message.startswith(start)
        assert (event.retryable, event.status) == (retryable, status)

    endings = [e for e in events if isinstance(e, AgentFinished)]
    assert len(endings) == 1 and events[-1] is endings[0]
    assert endings[0].ok is expected.ok
    assert mapper.outcome_ok is expected.ok
    if expected.ok:
        assert endings[0].error is None and mapper.error is None
    else:
        assert expected.error is not None
        assert endings[0].error is not None and endings[0].error.startswith(expected.error)
        assert mapper.error == endings[0].error
    if expected.result is not None:
        assert endings[0].result is not None and endings[0].result.startswith(expected.result)

    assert mapper.finish(exit_code) == []  # one AgentFinished, ever
    for event in events:
        assert roundtrip(event) == event


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_summary_of_each_fixture(relative: str) -> None:
    backend = relative.split("/")[0]
    expected = EXPECTED[relative]
    summary = summarize(backend, fixture_lines(relative))
    as_json = msgspec.json.decode(msgspec.json.encode(summary))

    assert list(as_json) == [
        "backend",
        "session_id",
        "events",
        "tool_calls",
        "files_changed",
        "commands",
        "usage",
        "outcome",
        "error",
        "skipped_lines",
    ]
    assert as_json["backend"] == backend
    assert as_json["session_id"] == expected.session_id
    assert as_json["tool_calls"] == len(expected.tools)
    assert as_json["files_changed"] == list(dict.fromkeys(path for path, _ in expected.files))
    assert as_json["commands"] == len(expected.commands)
    assert as_json["usage"] == dict(
        zip(("input", "cached_input", "output", "reasoning"), expected.usage, strict=True),
        cost_usd=COSTS[relative],
    )
    assert as_json["outcome"] == ("success" if expected.ok else "error")
    assert (as_json["error"] is None) is expected.ok
    assert as_json["skipped_lines"] == 0
    assert as_json["events"] > 0


def test_claude_fixture_finishes_on_its_result_line() -> None:
    """The result line is the terminal one: AgentFinished comes from it, not from finish()."""
    mapper = mapper_for("claude")
    lines = fixture_lines("claude/archistrator_success_with_tools.jsonl")
    events = [event for line in lines for event in mapper.feed(line)]
    assert isinstance(events[-1], AgentFinished) and events[-1].ok
    assert mapper.outcome_ok is True
    assert mapper.finish(1) == []
