"""`baro logs RUN [STORY]`: what the agents did — their normalized events, or the raw stream.

The events come from the BARO_AGENT stream (live while the run goes on, with ``--follow``);
the raw stdout and stderr of an attempt from the object store, where the runner puts them
when the attempt ends (docs/backends.md, "Logs"). Which NATS: as ``baro status``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from nats.errors import ConnectionClosedError

from baro_cli import localstore
from baro_cli.app import app, cluster_settings, fail
from baro_cli.commands.cluster import (
    AsJson,
    NatsUrl,
    RunArg,
    find_run,
    on_cluster,
    run_id_arg,
)
from baro_cli.runview import agent_action
from baro_cli.validate import UserError
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus

STDERR_TAIL_LINES = 20


@app.command()
def logs(
    run_id: RunArg,
    story: Annotated[
        str | None, typer.Argument(metavar="[STORY]", help="One story (default: all of them).")
    ] = None,
    attempt: Annotated[
        int | None, typer.Option(min=1, help="One attempt (default: all; --raw: the latest).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    raw: Annotated[
        bool, typer.Option("--raw", help="The agent's own stream (JSON lines), as it wrote it.")
    ] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="The agent's stderr.")] = False,
    nats_url: NatsUrl = None,
    as_json: AsJson = False,
) -> None:
    """Print what the agents of a run did: tool calls, files, text, tokens, errors.

    --raw prints one attempt's raw stream (pipe it into `baro map`), --stderr its stderr;
    both are stored when the attempt ends.
    """
    settings = cluster_settings(nats_url)
    try:
        rid = run_id_arg(run_id)
        if raw and stderr:
            raise UserError("--raw and --stderr each print one stream: choose one")
    except UserError as exc:
        raise fail(str(exc), exc.code) from None
    local = localstore.wanted(nats_url, settings)
    if local and not localstore.has_runs(settings):
        raise fail(f"no run {rid!r} on this machine: baro runs lists the runs here")
    # following a local run: its server stops with it, then the rest is read from its store
    live_here = nats_url is None and "BARO_NATS_URL" not in os.environ and not local
    printed: set[tuple[str, int, int]] = set()

    async def work(bus: Bus) -> None:
        record = await find_run(bus, settings, rid, this_machine=local)
        if story is not None and record.story(story) is None:
            raise UserError(_no_such_story(record, story))
        # a run moves on only while a baro serves it: from the store alone, read what is there
        following = follow and bus.settings.nats_url == settings.nats_url and not local
        if raw or stderr:
            await _print_stream(
                bus, record, story, attempt, "stderr" if stderr else "stdout", following
            )
        else:
            await _print_events(bus, record, story, attempt, following, as_json, printed, live_here)

    on_cluster(settings, work, this_machine=local, then_this_machine=follow and live_here)


def _no_such_story(record: s.RunRecord, story: str) -> str:
    ids = ", ".join(st.story.id for st in record.stories) or "none yet"
    return f"run {record.run_id} has no story {story!r} (its stories: {ids})"


# --------------------------------------------------------------------------- events


class _RunWatch:
    """The run's own events, followed alongside its agent events: an attempt's streams are
    stored before it is reported finished, and the run says it has ended before a local
    baro stops its server, so a follower reads what it needs while the server is there."""

    def __init__(self, bus: Bus, run_id: str, *, stderr_tails: bool) -> None:
        self.bus = bus
        self.run_id = run_id
        self.stderr_tails = stderr_tails
        self.ended = asyncio.Event()
        self.finished: dict[tuple[str, int], asyncio.Event] = {}
        self.tails: dict[tuple[str, int], list[str]] = {}
        self._task = asyncio.create_task(self._watch())

    def attempt_done(self, story_id: str, attempt: int) -> asyncio.Event:
        return self.finished.setdefault((story_id, attempt), asyncio.Event())

    async def _watch(self) -> None:
        async for event in self.bus.run_events(self.run_id):
            if isinstance(event, s.StoryFinished):
                key = (event.story_id, event.attempt)
                if self.stderr_tails:
                    self.tails[key] = await _stderr_lines(self.bus, self.run_id, *key)
                self.attempt_done(*key).set()
            elif isinstance(event, s.RunFinished):
                self.ended.set()
                for done in self.finished.values():
                    done.set()
                return

    def close(self) -> None:
        self._task.cancel()


async def _print_events(
    bus: Bus,
    record: s.RunRecord,
    story: str | None,
    attempt: int | None,
    follow: bool,
    as_json: bool,
    printed: set[tuple[str, int, int]],
    local_server: bool = False,
) -> None:
    """Print the events in stream order; following, until the run has ended and every
    event is printed. ``printed`` carries over when this runs again after a lost server;
    ``local_server``: the server is a local baro's, gone for good once disconnected."""
    out = sys.stdout
    watch = _RunWatch(bus, record.run_id, stderr_tails=not as_json) if follow else None
    try:
        async for msg in bus.agent_events(record.run_id, story, follow=follow):
            if msg is None:  # caught up, or quiet for a moment
                if watch is not None and watch.ended.is_set():
                    break
                if local_server and not bus.nc.is_connected:
                    raise ConnectionClosedError  # read the rest from the store it left
                continue
            key = (msg.story_id, msg.attempt, msg.seq)
            if (attempt is not None and msg.attempt != attempt) or key in printed:
                continue
            printed.add(key)
            out.write((msgspec.json.encode(msg).decode() if as_json else describe(msg)) + "\n")
            out.flush()
    finally:
        if watch is not None:
            watch.close()
    if as_json:
        return
    if not printed:
        which = (f" of {story}" if story else "") + (f" in attempt {attempt}" if attempt else "")
        out.write(f"no agent events{which} in run {record.run_id}\n")
    for key in sorted({(sid, number) for sid, number, _ in printed}):
        known = watch.tails.get(key) if watch is not None else None
        lines = known if known is not None else await _stderr_lines(bus, record.run_id, *key)
        _print_tail(record.run_id, *key, lines)


def describe(msg: s.AgentEventMsg) -> str:
    """One line of ``baro logs`` for one normalized event."""
    stamp = time.strftime("%H:%M:%S", time.localtime(msg.ts))
    prefix = f"{msg.story_id}#{msg.attempt} {stamp}"
    return f"{prefix}  {agent_action(msg.event)}"


async def _stderr_lines(bus: Bus, run_id: str, story_id: str, attempt: int) -> list[str]:
    text = await _object_text(bus, t.agent_log_object(run_id, story_id, attempt, "stderr"))
    return [line for line in (text or "").splitlines() if line.strip()]


def _print_tail(run_id: str, story_id: str, attempt: int, lines: list[str]) -> None:
    if not lines:
        return
    shown = lines[-STDERR_TAIL_LINES:]
    more = f" (last {len(shown)} of {len(lines)} lines)" if len(lines) > len(shown) else ""
    sys.stdout.write(
        f"{story_id}#{attempt} stderr{more}; all of it: "
        f"baro logs {run_id} {story_id} --attempt {attempt} --stderr\n"
    )
    for line in shown:
        sys.stdout.write(f"  | {line}\n")


async def _object_text(bus: Bus, name: str) -> str | None:
    if not await bus.has_object(name):
        return None
    with tempfile.TemporaryDirectory(prefix="baro-logs-") as tmp:
        path = Path(tmp) / "object"
        await bus.get_file(name, path)
        return path.read_text("utf-8", "replace")


# --------------------------------------------------------------------------- raw streams


async def _print_stream(
    bus: Bus,
    record: s.RunRecord,
    story: str | None,
    attempt: int | None,
    stream: str,
    follow: bool,
) -> None:
    state = _one_story(record, story)
    number = attempt or state.attempt
    if number < 1:
        raise UserError(f"{state.story.id} has not started yet: nothing to print")
    if number > state.attempt:
        raise UserError(f"{state.story.id} has had {state.attempt} attempt(s), not {number}")
    name = t.agent_log_object(record.run_id, state.story.id, number, stream)
    if not await bus.has_object(name):
        # the runner stores both streams before it reports the attempt finished
        if not _running(state, number, record):
            typer.echo(
                f"no {stream} from {state.story.id} attempt {number}: the agent wrote none "
                "(or its runner stopped before storing it)",
                err=True,
            )
            return
        if not follow:
            raise UserError(
                f"{state.story.id} attempt {number} is still running: its {stream} is stored "
                f"when it ends (--follow waits for it; baro logs {record.run_id} "
                f"{state.story.id} --follow shows its events live)"
            )
        typer.echo(
            f"waiting for {state.story.id} attempt {number} to end (its {stream} is stored then)",
            err=True,
        )
        watch = _RunWatch(bus, record.run_id, stderr_tails=False)
        try:
            await watch.attempt_done(state.story.id, number).wait()
        finally:
            watch.close()
        if not await bus.has_object(name):
            typer.echo(f"{state.story.id} attempt {number} ended without any {stream}", err=True)
            return
    with tempfile.TemporaryDirectory(prefix="baro-logs-") as tmp:
        path = Path(tmp) / stream
        await bus.get_file(name, path)
        with open(path, "rb") as data:
            while chunk := data.read(1 << 16):
                sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()


def _one_story(record: s.RunRecord, story: str | None) -> s.StoryState:
    if story is not None:
        found = record.story(story)
        assert found is not None  # checked by the caller
        return found
    if len(record.stories) == 1:
        return record.stories[0]
    ids = ", ".join(st.story.id for st in record.stories) or "none yet"
    raise UserError(f"name the story whose stream to print (run {record.run_id}: {ids})")


def _running(state: s.StoryState, attempt: int, record: s.RunRecord) -> bool:
    """Whether ``attempt`` may still be going on (its streams not stored yet)."""
    return (
        record.state not in s.TERMINAL_RUN_STATES
        and state.attempt == attempt
        and state.status in ("assigned", "running")
    )
