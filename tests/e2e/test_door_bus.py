"""The bus side of the door: a message that skipped the CLI's and the API's checks is
refused once and recorded, never handed to a subprocess on every redelivery."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import msgspec
import nats
import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conftest import make_repo, run_git
from tests.e2e.conftest import replay

pytestmark = pytest.mark.nats


async def final_record(bus: Bus, run_id: str, timeout: float = 20) -> s.RunRecord:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        got = await bus.get_record(run_id)
        if got and got[0].state in s.TERMINAL_RUN_STATES:
            return got[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end")


async def poison_records(bus: Bus) -> list[s.PoisonRecord]:
    records = []
    sub = await bus.js.subscribe("baro.dlq.>", ordered_consumer=True)
    try:
        while True:
            msg = await sub.next_msg(timeout=2)
            with contextlib.suppress(msgspec.ValidationError):
                records.append(msgspec.json.decode(msg.data, type=s.PoisonRecord))
    except nats.errors.TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return records


async def test_a_submission_with_a_nul_byte_is_recorded_as_refused(
    bus: Bus, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    head = run_git(repo, "rev-parse", "HEAD")
    request = s.RunSubmitted(
        run_id="20250101-000000-d00r01",
        goal="fix\x00 it",
        repo=s.RepoSource(kind="path", location=str(repo), commit=head),
        backend="scripted",
        model="--dangerously-skip-permissions",
    )
    await bus.publish(request, f"{request.run_id}.submitted")
    rec = await final_record(bus, request.run_id)
    assert rec.state == "failed"
    assert rec.reason == (
        "the submission was refused: the goal contains U+0000 (NUL) at character 3: "
        "only newlines and tabs are allowed among control characters"
    )
    kinds = [type(e) for e in await replay(bus, request.run_id)]
    assert kinds == [s.RunSubmitted, s.RunFinished], "nothing was prepared or classified"
    assert run_git(repo, "for-each-ref", "refs/baro") == ""


async def test_a_story_command_with_a_nul_surface_is_poison_and_fails_its_story(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    head = run_git(repo, "rev-parse", "HEAD")
    command = s.RunStory(
        run_id="20250101-000000-d00r02",
        story=s.Story(id="S1", title="t", write_surface=["src/\x00x.py"]),
        attempt=1,
        goal="g",
        mode="focused",
        source=s.RepoSource(kind="path", location=str(repo), commit=head),
        base_commit=head,
        backend="scripted",
    )
    await bus.publish(command, "door-run-story")
    records = await poison_records(bus)
    refused = [r for r in records if r.service == "agent-runner"]
    assert len(refused) == 1, records
    assert "refused message: story 'S1' has an unsafe write surface" in refused[0].reason
    events = await replay(bus, command.run_id)
    (gave_up,) = [e for e in events if isinstance(e, s.CommandDeadLettered)]
    assert gave_up.story_id == "S1" and gave_up.attempt == 1
    assert gave_up.reason.startswith("the agent-runner service refused cmd.run_story: ")
    workspaces = list(settings.cache_dir.rglob(f"*{command.run_id}*"))
    assert workspaces == [], "no workspace was prepared for a refused story"
