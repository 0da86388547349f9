"""`baro map` on the captured wire streams, run as the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from baro_shared.mappers import summarize
from baro_shared.schemas import NormalizedEvent

BARO = str(Path(sys.executable).parent / "baro")
FIXTURES = Path(__file__).resolve().parents[1] / "mappers" / "fixtures"
decode_event = msgspec.json.Decoder(NormalizedEvent).decode


def baro_map(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [BARO, "map", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env=os.environ.copy(),
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def summary_of(backend: str, relative: str) -> dict[str, Any]:
    out = baro_map("--backend", backend, "--summary", str(FIXTURES / relative))
    assert out.returncode == 0, out.stderr.decode()
    assert out.stderr == b""
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


# Values read off the fixture files by hand (see tests/mappers/test_fixtures.py for the
# arithmetic behind each token count).
HAND_READ = {
    "claude/archistrator_success_with_tools.jsonl": {
        "backend": "claude",
        "session_id": "d0becfe3-d703-4311-8d8f-bf0ed7139dd7",
        "tool_calls": 1,
        "files_changed": ["/scrubbed/hello.txt"],
        "commands": 0,
        "usage": {
            "input": 69028,
            "cached_input": 63600,
            "output": 171,
            "reasoning": None,
            "cost_usd": 0.054201,
        },
        "outcome": "success",
        "error": None,
        "skipped_lines": 0,
    },
    "codex/agentcmd_command_execution_ls.jsonl": {
        "backend": "codex",
        "session_id": "019a2d7a-6455-7170-a661-c6d8b94c630a",
        "tool_calls": 1,
        "files_changed": [],
        "commands": 1,
        "usage": {
            "input": 6040,
            "cached_input": 4992,
            "output": 129,
            "reasoning": None,
            "cost_usd": None,
        },  # codex reports no price
        "outcome": "success",
        "error": None,
        "skipped_lines": 0,
    },
    "opencode/noldor_1.17.20_text_step_tokens.jsonl": {
        "backend": "opencode",
        "session_id": "ses_09ec7fc10ffekAtgUWHv9M6Y0T",
        "tool_calls": 0,
        "files_changed": [],
        "commands": 0,
        "usage": {
            "input": 19577,
            "cached_input": 1664,
            "output": 38,
            "reasoning": 29,
            "cost_usd": 0.0,
        },
        "outcome": "success",
        "error": None,
        "skipped_lines": 0,
    },
    "pi/scripted_model_pi1.6.0_tool_call.jsonl": {
        "backend": "pi",
        "session_id": "01a21ff2-ba93-730e-95a0-39c413c34b87",
        "tool_calls": 1,
        "files_changed": [],
        "commands": 1,
        "usage": {"input": 200, "cached_input": 80, "output": 40, "reasoning": 10, "cost_usd": 0.0},
        "outcome": "success",
        "error": None,
        "skipped_lines": 0,
    },
}


@pytest.mark.parametrize("relative", sorted(HAND_READ))
def test_summary_matches_the_file_read_by_hand(relative: str) -> None:
    backend = relative.split("/")[0]
    summary = summary_of(backend, relative)
    events = summary.pop("events")
    assert summary == HAND_READ[relative]
    assert isinstance(events, int) and events >= 3  # at least session, usage, finished


@pytest.mark.parametrize(
    ("relative", "error_start"),
    [
        (
            "claude/archistrator_failure_model_not_found.jsonl",
            "There's an issue with the selected model (no-such-model)",
        ),
        (
            "codex/SYNTHETIC_takopi_all_item_types_and_turn_failed.jsonl",
            "Aborted: required dependency `npm` is missing",
        ),
        (
            "opencode/SYNTHETIC_takopi_tool_use_and_api_error.jsonl",
            "Upstream timeout while calling provider",
        ),
        (
            "pi/causeflow_error_openai_codex_usage_limit.jsonl",
            "Codex error: The usage limit has been reached",
        ),
    ],
)
def test_failed_streams_summarize_as_errors(relative: str, error_start: str) -> None:
    summary = summary_of(relative.split("/")[0], relative)
    assert summary["outcome"] == "error"
    assert summary["error"].startswith(error_start)


ALL_FIXTURES = sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*.jsonl"))


@pytest.mark.parametrize("relative", ALL_FIXTURES)
def test_event_lines_agree_with_the_summary(relative: str) -> None:
    assert len(ALL_FIXTURES) >= 13, f"fixtures missing under {FIXTURES}"
    backend = relative.split("/")[0]
    out = baro_map("--backend", backend, str(FIXTURES / relative))
    assert out.returncode == 0, out.stderr.decode()
    events = [decode_event(line) for line in out.stdout.splitlines()]
    kinds = [json.loads(line)["kind"] for line in out.stdout.splitlines()]
    summary = msgspec.to_builtins(
        summarize(backend, (FIXTURES / relative).read_bytes().splitlines())
    )
    assert len(events) == summary["events"]
    assert kinds.count("tool_started") == summary["tool_calls"]
    assert kinds.count("command") == summary["commands"]
    assert kinds[-1] == "finished" and kinds.count("finished") == 1
    finished = json.loads(out.stdout.splitlines()[-1])
    assert finished["ok"] is (summary["outcome"] == "success")


def test_stdin_dash_reads_the_stream() -> None:
    path = FIXTURES / "codex/agentcmd_file_change_add.jsonl"
    from_file = baro_map("--backend", "codex", str(path))
    from_stdin = baro_map("--backend", "codex", "-", stdin=path.read_bytes())
    assert from_stdin.returncode == 0, from_stdin.stderr.decode()
    assert from_stdin.stdout == from_file.stdout
    summary = baro_map("--backend", "codex", "--summary", "-", stdin=path.read_bytes())
    assert json.loads(summary.stdout)["files_changed"] == [
        "/private/tmp/codex-research-test/hello.txt"
    ]


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    good = (FIXTURES / "claude/archistrator_success_with_tools.jsonl").read_bytes()
    stream = tmp_path / "damaged.jsonl"
    stream.write_bytes(b"not json\n" + good + b'{"truncated": \n\xff\xfe\n[1, 2]\n')
    summary = json.loads(baro_map("--backend", "claude", "--summary", str(stream)).stdout)
    assert summary["skipped_lines"] == 4
    assert summary["outcome"] == "success"
    assert summary["usage"]["input"] == 69028


def test_an_empty_stream_is_an_error_outcome(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    summary = json.loads(baro_map("--backend", "pi", "--summary", str(empty)).stdout)
    assert summary["outcome"] == "error"
    assert summary["error"] == "pi: the stream ended without a result"
    assert summary["events"] == 2  # the error and the closing "finished"
    assert summary["usage"] == {
        "input": None,
        "cached_input": None,
        "output": None,
        "reasoning": None,
        "cost_usd": None,
    }


def one_line_error(out: subprocess.CompletedProcess[bytes], *needles: str) -> None:
    assert out.returncode == 2
    assert out.stdout == b""
    lines = out.stderr.decode().strip().splitlines()
    assert len(lines) == 1, out.stderr.decode()
    for needle in needles:
        assert needle in lines[0]


def test_unknown_backend_is_one_line() -> None:
    path = FIXTURES / "claude/archistrator_success_with_tools.jsonl"
    one_line_error(baro_map("--backend", "gpt", str(path)), "unknown backend 'gpt'", "claude")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    one_line_error(baro_map("--backend", "claude", str(missing)), str(missing), "does not exist")
    one_line_error(baro_map("--backend", "claude", str(tmp_path)), "is a directory")


def test_a_closed_reader_is_not_a_traceback(tmp_path: Path) -> None:
    lines = (FIXTURES / "claude/archistrator_success_with_tools.jsonl").read_bytes()
    big = tmp_path / "big.jsonl"
    big.write_bytes(lines * 3000)
    shell = f"{BARO} map --backend claude {big} | head -n 1"
    out = subprocess.run(["/bin/sh", "-c", shell], capture_output=True, timeout=120)
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) == 1
    assert b"Traceback" not in out.stderr and out.stderr == b""
