"""The scripted model server's own behaviour (pure decisions and one real HTTP round trip),
so a contract-tier failure points at a CLI, not at the server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.cli_contract.model_server import (
    Script,
    ScriptedModelServer,
    decide,
    schema_instance,
    working_directory,
)


def anthropic_body(messages: list[dict], tools: list[str]) -> dict:
    return {
        "model": "m",
        "stream": True,
        "system": [{"type": "text", "text": "Working directory: /work/repo\nmore"}],
        "messages": messages,
        "tools": [
            {
                "name": name,
                "input_schema": {
                    "type": "object",
                    "properties": {"file_path": {"type": "string"}, "content": {}},
                },
            }
            for name in tools
        ],
    }


def test_a_write_tool_is_picked_first_with_an_absolute_path() -> None:
    body = anthropic_body([{"role": "user", "content": "go"}], ["Bash", "Read", "Write"])
    d = decide(body, Script(target="a.txt", content="x\n"))
    assert d.answer == "tool_call" and d.tool is not None and d.tool.name == "Write"
    assert json.loads(d.arguments) == {"file_path": "/work/repo/a.txt", "content": "x\n"}


def test_a_tool_result_gets_the_final_text() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    d = decide(anthropic_body(messages, ["Write"]), Script(final_text="done"))
    assert (d.answer, d.text) == ("final", "done")


def test_chat_tool_messages_and_responses_outputs_count_as_results() -> None:
    chat = {
        "messages": [{"role": "tool", "content": "ok"}],
        "tools": [{"function": {"name": "write"}}],
    }
    assert decide(chat, Script()).answer == "final"
    responses = {
        "input": [{"type": "custom_tool_call_output", "call_id": "c", "output": "ok"}],
        "tools": [{"type": "custom", "name": "apply_patch"}],
    }
    assert decide(responses, Script()).answer == "final"


def test_apply_patch_as_a_freeform_tool_gets_a_patch() -> None:
    body = {
        "input": [{"role": "user", "content": "<cwd>/w</cwd>"}],
        "tools": [{"type": "custom", "name": "apply_patch"}, {"type": "function", "name": "x"}],
    }
    d = decide(body, Script(target="f.txt", content="a\nb\n"))
    assert d.tool is not None and d.tool.custom
    assert d.arguments == "*** Begin Patch\n*** Add File: /w/f.txt\n+a\n+b\n*** End Patch\n"


def test_no_tools_means_a_text_answer_or_a_fitting_object() -> None:
    assert decide({"messages": []}, Script(answer_text="PONG")).text == "PONG"
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "n": {"type": "integer"}},
    }
    body = {"messages": [], "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    assert json.loads(decide(body, Script()).text) == {"title": "ok", "n": 1}
    assert schema_instance({"enum": ["a", "b"]}) == "a"


def test_the_working_directory_is_read_from_the_prompt() -> None:
    assert working_directory({"x": ["Current working directory: /a/b."]}) == "/a/b"
    assert working_directory({"x": "nothing here"}) is None


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    srv = ScriptedModelServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def post(url: str, body: dict, key: str = "k") -> tuple[int, bytes]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_chat_completions_stream_ends_with_usage_and_done(server: ScriptedModelServer) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    status, raw = post(f"{server.url}/v1/chat/completions", body)
    assert status == 200
    data = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    usage_chunk = json.loads(data[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["prompt_tokens"] == 100
    text = "".join(
        json.loads(d)["choices"][0]["delta"].get("content") or ""
        for d in data[:-2]
        if json.loads(d)["choices"]
    )
    assert text == "PONG"
    [call] = server.model_calls()
    assert (call.api, call.answer, call.credential) == ("chat", "text", "k")


def test_a_scripted_failure_answers_with_its_status(server: ScriptedModelServer) -> None:
    server.reset(Script(fail_status=429))
    status, raw = post(f"{server.url}/v1/messages", {"model": "m", "messages": []})
    assert status == 429
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"
    assert [c.status for c in server.model_calls()] == [429]
