"""The live terminal view of a run (rich): the plan as a table that follows every story,
the mode decision with its reason, the latest progress lines, and a summary at the end.

It draws on stderr and only in a terminal; anywhere else the progress stays the stable
lines of ``runflow.Progress``. It starts once the mode is settled, so a mode picker asks
its question on a quiet screen, and it draws its last frame when the run finishes. What
it shows is ``runview.RunView``: a fold of the same events ``--events`` prints.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from baro_cli import runflow
from baro_cli.runview import RunView, StoryView, apply
from baro_shared import schemas as s
from baro_shared.runstream import WatchedEvent

REFRESH_PER_S = 2
ACTION_WIDTH = 60
STYLE = {
    "running": "yellow",
    "assigned": "yellow",
    "reviewing": "cyan",
    "finished": "cyan",
    "integrated": "green",
    "replaced": "green",
    "replanning": "magenta",
    "delivered": "green",
    "failed": "red",
    "conflict": "red",
    "cancelled": "red",
    "needs_attention": "red",
    "timeout": "red",
    "stalled": "red",
    "budget_exceeded": "red",
    "retryable": "magenta",
    "blocked": "magenta",
}


def wanted(out: TextIO, *, quiet: bool) -> bool:
    """Whether to draw the live view on ``out``: a terminal that can move its cursor."""
    if quiet or os.environ.get("TERM") == "dumb" or os.environ.get("BARO_LIVE") == "0":
        return False
    return out.isatty()


class LiveView:
    """Sees every event of the run (a ``runflow.Watcher``) and takes the progress lines
    (a ``runflow.LineSink``) while it draws."""

    def __init__(self, out: TextIO) -> None:
        self.view = RunView()
        self.console = Console(file=out, highlight=False)
        self.live: Live | None = None
        self.done = False

    def event(self, event: WatchedEvent) -> None:
        if self.done:
            return  # an agent's last events, read after the run ended: the frame is final
        apply(self.view, event)
        if self.live is None and isinstance(event, s.ModeConfirmed | s.PlanAccepted):
            self.live = Live(
                console=self.console,
                get_renderable=self.render,
                refresh_per_second=REFRESH_PER_S,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.live.start()
            atexit.register(self.stop)  # a run that ends in an error leaves a usable terminal
        if isinstance(event, s.RunFinished):
            self.stop()
        # otherwise the next frame shows it: frames are drawn REFRESH_PER_S times a second,
        # not once an event (an agent can report dozens a second)

    def take_line(self, text: str) -> bool:
        if self.live is None:
            return False
        self.view.notes.append(text)
        return True

    def stop(self) -> None:
        self.done = True
        if self.live is not None:
            self.live.refresh()
            self.live.stop()
            self.live = None

    def render(self) -> RenderableType:
        return render(self.view, time.time())


def render(view: RunView, now: float) -> RenderableType:
    """One frame: the run and its mode, the stories, the latest lines, and at the end the
    summary."""
    parts: list[RenderableType] = [_heading(view), _stories(view, now)]
    if view.notes:
        parts.append(Text("\n".join(view.notes), style="dim"))
    if view.finished:
        parts.append(_summary(view))
    return Group(*parts)


def _heading(view: RunView) -> Text:
    line = Text()
    line.append(f"run {view.run_id} ", style="bold")
    line.append(view.phase.replace("_", " "), style=STYLE.get(view.phase, "bold"))
    if view.mode:
        line.append(f"  mode {view.mode}", style="bold")
        decided = [view.mode_source or ""]
        if view.confidence is not None:
            decided.append(f"{view.confidence:.2f}")
        shown = ", ".join(d for d in decided if d)
        line.append(f" ({shown})" if shown else "")
        if view.mode_reason:
            line.append(f": {view.mode_reason}", style="italic")
    if view.enforcement:
        line.append("\nenforced: " + "; ".join(view.enforcement), style="yellow")
    return line


COLUMNS = (
    ("story", 32),
    ("after", 10),
    ("state", 10),
    ("try", 3),
    ("elapsed", 8),
    ("tokens in/out", 14),
    ("cost", 8),
    ("surface", 30),
    ("last agent action", ACTION_WIDTH),
)


def _stories(view: RunView, now: float) -> Text:
    """The stories as fixed columns: plain text with one style per state, cheap to draw
    (a frame is drawn in the process that runs the services)."""
    rows = [
        (
            f"{st.id} {st.title}",
            ",".join(st.depends_on) or "-",
            st.status,
            str(st.attempt or ""),
            _seconds(st.elapsed(now)),
            _tokens(st),
            f"${st.cost_usd:.4f}" if st.cost_usd is not None else "",
            st.surface(),
            st.last_action,
        )
        for st in view.stories.values()
    ]
    widths = [
        min(limit, max([len(name), *(len(row[i]) for row in rows)]))
        for i, (name, limit) in enumerate(COLUMNS)
    ]
    out = Text()
    out.append(_cells([name for name, _ in COLUMNS], widths), style="bold")
    for row in rows:
        out.append("\n")
        cells = _cells(list(row), widths)
        start = sum(widths[:2]) + 4
        out.append(cells[:start])
        out.append(cells[start : start + widths[2]], style=STYLE.get(row[2], ""))
        out.append(cells[start + widths[2] :])
    return out


def _cells(values: list[str], widths: list[int]) -> str:
    cells = []
    for value, width in zip(values, widths, strict=True):
        cut = value if len(value) <= width else value[: width - 1] + "…"
        cells.append(cut.ljust(width))
    return "  ".join(cells).rstrip()


def _summary(view: RunView) -> Panel:
    tokens = view.spent()
    lines = [
        f"{view.status}" + (f": {view.reason}" if view.reason else ""),
        f"wall-clock {_seconds(view.wall_s(0.0))}"
        + (
            f", agent time {_seconds(view.totals.agent_s)}"
            + (f", speedup {view.totals.speedup:.2f}x" if view.totals.speedup else "")
            if view.totals
            else ""
        ),
        f"tokens in {_n(tokens.input)} (cached {_n(tokens.cached_input)}), out {_n(tokens.output)}",
    ]
    if view.branch:
        lines.append(f"branch {view.branch}" + (f"  {view.pr_url}" if view.pr_url else ""))
    if view.dropped:
        lines.append("dropped: " + ", ".join(view.dropped))
    return Panel(
        "\n".join(lines), title="summary", border_style=STYLE.get(view.status or "", "bold")
    )


def _tokens(st: StoryView) -> str:
    spent = st.spent
    if spent.input is None and spent.output is None:
        return ""
    return f"{_n(spent.input)}/{_n(spent.output)}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def attach(progress: runflow.Progress, out: TextIO) -> LiveView:
    """A live view on ``out`` that takes ``progress``'s lines while it draws."""
    shown = LiveView(out)
    progress.view = shown
    return shown
