"""How a followed run is shown (``baro run``, ``watch``, ``resume``, ``submit --watch``).

On stderr: progress lines. On stdout: the summary at the end, as text or (``--json``) one
JSON object, or with ``--events`` one JSON object per line for every event of the run and
its agents, the summary last (docs/events.md).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, TextIO

import typer

from baro_cli import live, runflow
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.runstream import WatchedEvent

EVENTS_VERSION = 1  # docs/events.md: what a reader may rely on in every line
SUMMARY_TYPE = "run.summary"

EventsOption = Annotated[
    bool,
    typer.Option(
        "--events",
        help="Print every event of the run and its agents as JSON lines on stdout, the "
        "summary last (docs/events.md).",
    ),
]


class EventLines:
    """``--events``: each event as the API streams it, one JSON object per line."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def event(self, event: WatchedEvent) -> None:
        self.out.write(s.encode(event).decode() + "\n")
        self.out.flush()

    def summary(self, report: runflow.RunReport) -> None:
        self.out.write(json.dumps(summary_line(report), separators=(",", ":")) + "\n")
        self.out.flush()


def summary_line(report: runflow.RunReport) -> dict[str, Any]:
    return {"type": SUMMARY_TYPE, "v": EVENTS_VERSION, **report.as_json()}


class Shown:
    """The progress, the watchers and the ending of one followed run. In a terminal the
    progress is the live view (``baro_cli.live``), else lines."""

    def __init__(self, *, quiet: bool, as_json: bool, events: bool) -> None:
        self.progress = runflow.Progress(sys.stderr, quiet=quiet)
        self.as_json = as_json
        self.lines = EventLines(sys.stdout) if events else None
        self.live = (
            live.attach(self.progress, sys.stderr) if live.wanted(sys.stderr, quiet=quiet) else None
        )

    @property
    def watchers(self) -> list[runflow.Watcher]:
        return [w for w in (self.lines, self.live) if w is not None]

    async def replay(self, bus: Bus, request: s.RunSubmitted, *, again: bool) -> runflow.RunReport:
        """The run as a store nothing serves holds it: the events there are, shown as
        they would have been live, unless ``again`` (they were, before its server
        stopped). Lines, not a live view: nothing moves the run."""
        progress = runflow.Progress(self.progress.out, quiet=self.progress.quiet or again)
        watchers: list[runflow.Watcher] = [self.lines] if self.lines and not again else []
        return await runflow.follow(bus, request, progress, None, live=False, watchers=watchers)

    def summary(self, report: runflow.RunReport) -> None:
        if self.live is not None:
            self.live.stop()
        if self.lines is not None:
            self.lines.summary(report)
        elif self.as_json:
            typer.echo(json.dumps(report.as_json()))
        else:
            runflow.render_summary(report, sys.stdout)
