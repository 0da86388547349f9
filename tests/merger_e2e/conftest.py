"""The whole stack on a real nats-server, real git and the scripted agent (see tests/e2e)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nats.js.api import DeliverPolicy

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from tests.e2e.conftest import bus, stack  # noqa: F401  (fixtures)


def refs_of(repo: Path, prefix: str) -> dict[str, str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "for-each-ref", "--format=%(refname) %(objectname)", prefix],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def show(repo: Path, rev: str, path: str) -> str | None:
    out = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "blob", f"{rev}:{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout if out.returncode == 0 else None


def tree(repo: Path, rev: str) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.splitlines())


async def agent_events(client: Bus, run_id: str, story_id: str) -> list[s.AgentEventMsg]:
    """Every normalized agent event of one story, from the start of its stream."""
    sub = await client.js.subscribe(
        t.agent_subject(run_id, story_id),
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    events = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=3)
            except Exception:
                return events
            events.append(s.agent_event_decoder.decode(msg.data))
            if msg.metadata and msg.metadata.num_pending == 0:
                return events
    finally:
        await sub.unsubscribe()


def finished_events(events: list[s.Event], story_id: str) -> list[s.StoryFinished]:
    return [e for e in events if isinstance(e, s.StoryFinished) and e.story_id == story_id]
