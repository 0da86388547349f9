"""An attempt's raw agent output: bounded on disk, head and tail kept, redacted, never
written through a file or folder an agent planted."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from baro_runner import agent
from baro_runner.rawlog import AgentLogs, RotatingLog, _json_gap
from baro_shared import redact
from baro_shared.mappers import mapper_for
from tests.runner.test_agent_supervision import command

SECRET = "sk-ant-rawlog-0123456789abcdefghijklmnop"


def joined(log: RotatingLog) -> bytes:
    out = io.BytesIO()
    log.join(out)
    return out.getvalue()


def test_a_flood_keeps_the_first_and_latest_segments_within_the_cap(tmp_path: Path) -> None:
    cap = 64 * 1024
    log = RotatingLog(tmp_path, "stdout", cap, _json_gap)
    lines = [json.dumps({"n": i, "pad": "x" * 200}).encode() + b"\n" for i in range(5000)]
    for line in lines:
        log.write(line)
    log.close()
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert on_disk <= cap, "what stays on disk is bounded by the cap"
    data = joined(log)
    kept = data.splitlines()
    first, last = json.loads(kept[0]), json.loads(kept[-1])
    assert first["n"] == 0 and last["n"] == 4999, "how it began and how it ended"
    gaps = [json.loads(x) for x in kept if b"baro.log_gap" in x]
    assert len(gaps) == 1
    dropped = gaps[0]["dropped_bytes"]
    assert dropped + len(data) - len(_json_gap(dropped)) == log.written, "every byte accounted"
    assert all(isinstance(json.loads(x), dict) for x in kept), "still JSON lines"


def test_a_joined_log_still_maps(tmp_path: Path) -> None:
    """The gap marker is a line the mappers skip, so `baro logs --raw | baro map` works."""
    mapper = mapper_for("claude")
    assert mapper.feed(_json_gap(123).rstrip()) == []


def test_a_short_log_is_kept_whole(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path, "stderr", 1 << 20, _json_gap)
    log.write(b"one\n")
    log.write(b"two\n")
    log.close()
    assert joined(log) == b"one\ntwo\n"
    assert [p.name for p in tmp_path.iterdir()] == ["stderr.0"]


def test_secrets_are_redacted_even_split_across_stderr_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    redact.refresh()
    try:
        logs = AgentLogs(tmp_path / "logs", 1 << 20)
        logs.stdout(json.dumps({"type": "text", "text": f"key is {SECRET}"}).encode())
        half = len(SECRET) // 2
        logs.stderr(f"auth failed for {SECRET[:half]}".encode())
        logs.stderr(f"{SECRET[half:]} at login\nnext line".encode())
        logs.close()
    finally:
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        redact.refresh()
    for name in ("stdout", "stderr"):
        path = tmp_path / name
        assert logs.joined(name, path)
        text = path.read_text()
        assert SECRET not in text and SECRET[:half] not in text and "[redacted]" in text
    assert (tmp_path / "stderr").read_text().splitlines() == [
        "auth failed for [redacted] at login",
        "next line",
    ]


def test_a_planted_segment_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    os.symlink(victim, logs_dir / "stdout.0")
    logs = AgentLogs(logs_dir, 1 << 20)
    logs.stdout(b'{"type":"x"}')
    logs.close()
    assert victim.read_text() == "the user's file\n"
    assert logs.streams["stdout"].broken


def test_a_planted_logs_folder_is_not_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "logs")
    logs = AgentLogs(tmp_path / "logs", 1 << 20)
    logs.stdout(b'{"type":"x"}')
    logs.stderr(b"boom\n")
    logs.close()
    assert list(elsewhere.iterdir()) == []


async def test_the_supervisor_hands_every_line_and_stderr_to_the_recorder(
    tmp_path: Path,
) -> None:
    script = {
        "default": {
            "steps": [
                {"stderr": "warning: model deprecated"},
                {"text": "working"},
                {"write": "a.txt", "content": "x"},
                {"crash": 3},
            ]
        }
    }
    logs = AgentLogs(tmp_path / "logs", 1 << 20)

    async def sink(_: object) -> None:
        pass

    async def no_stop() -> str | None:
        return None

    outcome = await agent.run_agent(
        command(tmp_path, script),
        mapper_for("scripted"),
        agent.Limits(30, 60),
        sink,
        no_stop,
        recorder=logs,
    )
    logs.close()
    assert outcome.status == "failed"
    assert logs.joined("stdout", tmp_path / "out")
    stream = [json.loads(x) for x in (tmp_path / "out").read_text().splitlines()]
    assert stream[0]["type"] == "system" and len(stream) == outcome.lines
    assert logs.joined("stderr", tmp_path / "err")
    assert (tmp_path / "err").read_text() == "warning: model deprecated\n"
