"""Bad input to the HTTP API, one row per case: a 4xx with one line naming the problem, no
traceback or internal path, and nothing queued. (The CLI's rows are in
tests/e2e/test_door.py.)"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from baro_shared import topology as t
from baro_shared.bus import Bus
from tests.api.conftest import TOKEN, Api, bare_remote, run_body

pytestmark = pytest.mark.slow


def rows(location: str) -> list[tuple[str, dict[str, Any] | bytes, int, str]]:
    """(case, body, status, words of the answer)"""
    return [
        ("nul byte in the goal", run_body(location, goal="fix\x00it"), 422, "U+0000 (NUL)"),
        ("escape in the goal", run_body(location, goal="fix \x1b]0;x\x07"), 422, "U+001B"),
        ("lone surrogate in the goal", b'{"goal": "fix \\ud800"}', 422, "goal"),
        ("80 KB of emoji", run_body(location, goal="😀" * 20_000), 422, "80000 bytes"),
        ("model read as a flag", run_body(location, model="--foo"), 422, "starts with '-'"),
        ("model with a space", run_body(location, model="gpt 5"), 422, "not a model name"),
        ("a password in the URL", run_body("https://u:pw@example.com/r.git"), 422, "password"),
        ("a blank goal", run_body(location, goal=" \n\t "), 422, "goal is empty"),
        (
            "a timeout that is not a number",
            json.dumps(run_body(location))
            .replace('"story_timeout_s": 120', '"story_timeout_s": NaN')
            .encode(),
            422,
            "finite number",
        ),
    ]


async def test_bad_input_gets_one_line_and_queues_nothing(api: Api, tmp_path: Path) -> None:
    bare, _ = bare_remote(tmp_path)
    for case, body, status, words in rows(f"file://{bare}"):
        if isinstance(body, bytes):
            got = await api.client.post(
                "/v1/runs", content=body, headers={"content-type": "application/json"}
            )
        else:
            got = await api.client.post("/v1/runs", json=body)
        assert got.status_code == status, (case, got.text)
        error = got.json()["error"]
        assert "\n" not in error and "Traceback" not in error, case
        assert tempfile.gettempdir() + "/baro-" not in error, case
        assert words in error, (case, error)

    cancel = await api.client.post(
        "/v1/runs/20250101-000000-abcdef/cancel", json={"reason": "\x1b"}
    )
    assert cancel.status_code == 422

    assert (await api.client.get("/v1/runs")).json() == {"runs": []}
    bus = await Bus.open(api.settings, "door-api-test", ensure=False)
    try:
        for stream in (t.EVT_STREAM, t.CMD_STREAM):
            info = await bus.js.stream_info(stream)
            assert info.state.messages == 0, f"{stream} holds {info.state.messages} messages"
    finally:
        await bus.close()


async def test_a_streamed_body_past_the_limit_is_413_and_queues_nothing(api: Api) -> None:
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"POST /v1/runs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    chunk = json.dumps({"goal": "x" * 60_000}).encode()
    try:
        for _ in range(40):  # 2.4 MB, with no Content-Length to refuse it by
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    answer = (await asyncio.wait_for(reader.read(4096), 30)).decode("latin-1")
    writer.close()
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "larger than 1048576 bytes" in answer
    assert (await api.client.get("/healthz")).status_code == 200
    assert (await api.client.get("/v1/runs")).json() == {"runs": []}


async def test_a_small_streamed_body_is_read_as_usual(api: Api, tmp_path: Path) -> None:
    bare, _ = bare_remote(tmp_path)
    data = json.dumps(run_body(f"file://{bare}")).encode()

    async def chunks():
        for start in range(0, len(data), 100):
            yield data[start : start + 100]

    got = await api.client.post(
        "/v1/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert got.status_code == 202, got.text
