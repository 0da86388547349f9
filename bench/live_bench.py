"""Benchmark (not a test): watching a run live does not slow it, and the dashboard paints a
large run quickly.

A warm stack in this process (embedded nats-server, the five services, the intake serving
the API and its dashboard), the scripted agent, a given plan (no planner variance):

- **run wall-clock, live over headless**: a four-story parallel run (each agent works
  1 s), its own wall-clock (``run.finished``'s ``wall_s``), followed headless (progress
  lines muted) and followed with every live view on: the terminal view drawing it
  (``baro_cli.live`` on a terminal-like sink, in this same process, as ``baro run`` does)
  and the dashboard open in headless Chromium, as a user keeps it open in a tab: on the
  list of runs before the run is submitted, the new run's row clicked as soon as the list
  shows it, the run followed to its end on its page, then back to the list. They
  alternate; the figure is the ratio of their medians (target <= 1.05). Beside it, the
  same with a new browser tab opened on the run once it is submitted
  (``opened_during_run``): what starting a browser page costs while the run goes, on the
  same two cores.
- **dashboard first paint, 50 stories**: on a finished 50-story run's page, from the
  start of the navigation until the page has drawn its plan graph with all 50 stories
  (the page's own ``baro:plan-drawn`` mark; target < 1 s); the same seen from outside
  the browser (until Playwright finds the 50th node); and until its whole history
  (every event and agent event: a bar per attempt) is drawn.

Needs Debian's ``chromium`` (or ``BARO_CHROMIUM``).

    .venv/bin/python -m bench.live_bench [--repeat N] [--parts terminal,dashboard]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from baro_cli import runflow
from baro_cli.live import LiveView
from baro_intake.api_host import ApiHostedIntake
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.gitutil import BARO_IDENTITY, git_env
from baro_shared.service import Host
from bench.__main__ import figure
from bench.cluster import local_stack

TOKEN = "bench-token-0123456789abcdef"
WORK_S = 1.0
PARTS = {"terminal", "dashboard"}


class TerminalSink(io.StringIO):
    """Where the terminal view draws: a terminal to rich, discarded."""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=True, env=git_env(BARO_IDENTITY)
    )
    return out.stdout.decode().strip()


def _repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "--quiet", "--initial-branch=main")
    for i in range(1, files + 1):
        (repo / f"m{i:02}.py").write_text(f"V = {i}\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", "bench repository")
    return repo


def _request(repo: Path, stories: int, sleep_s: float) -> s.RunSubmitted:
    plan = [
        s.Story(id=f"S{i}", title=f"update m{i:02}.py", write_surface=[f"m{i:02}.py"])
        for i in range(1, stories + 1)
    ]
    script = {
        "stories": [
            {
                "match": {"id": story.id},
                "steps": [
                    {"text": f"working on {story.write_surface[0]}"},
                    *([{"sleep": sleep_s}] if sleep_s else []),
                    {"write": story.write_surface[0], "content": f'"""{story.id}."""\n'},
                    {"usage": {"input": 300, "cached": 100, "output": 30}},
                ],
            }
            for story in plan
        ]
    }
    return s.RunSubmitted(
        run_id=runflow.new_run_id(),
        goal=f"update {stories} modules",
        repo=s.RepoSource(kind="path", location=str(repo), commit=_git(repo, "rev-parse", "HEAD")),
        mode_request="parallel",
        backend="scripted",
        agent_script=json.dumps(script),
        plan=plan,
        limits=s.Limits(
            max_stories=stories, parallelism=4, story_timeout_s=300, stall_timeout_s=120
        ),
    )


async def _run(
    bus: Bus,
    request: s.RunSubmitted,
    watchers: list[Any],
    page: Any = None,
    url: str = "",
    *,
    open_tab: bool = False,
) -> float:
    """The run's own wall-clock. ``page``, the dashboard on the list of runs, opens the
    run from the list once it shows it; with ``open_tab`` it is a new tab, opened on the
    run once it is submitted."""
    progress = runflow.Progress(open(os.devnull, "w"), quiet=True)  # noqa: SIM115
    await runflow.submit(bus, request)
    if page is not None and open_tab:
        await page.goto(f"{url}/ui/?run={request.run_id}")
    elif page is not None:
        await page.locator(f"tr[data-run='{request.run_id}'] a").click()
    report = await runflow.follow(bus, request, progress, None, watchers=watchers)
    if report.status != "delivered":
        raise RuntimeError(f"bench run ended {report.status}: {report.reason}")
    return report.wall_s


async def _measure(
    repeat: int, root: Path, chromium: str, parts: set[str]
) -> dict[str, list[float]]:
    from playwright.async_api import async_playwright

    repo = _repo(root, 50)
    samples: dict[str, list[float]] = {
        "headless_wall_s": [],
        "live_wall_s": [],
        "opened_during_run_wall_s": [],
        "first_paint_50_s": [],
        "plan_seen_50_s": [],
        "history_drawn_50_s": [],
    }
    hosts: list[Host] = []
    async with local_stack(root, hosts=hosts, api_port=0, api_token=SecretStr(TOKEN)) as (
        _settings,
        bus,
    ):
        front = next(svc for svc in hosts[0].services if isinstance(svc, ApiHostedIntake))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
            context = await browser.new_context()
            await context.add_init_script(f"sessionStorage.setItem('baro.api-token', '{TOKEN}')")
            try:
                await _run(bus, _request(repo, 4, WORK_S), [])  # warm the stack
                tab = None
                if "dashboard" in parts:  # the user's tab, open on the list of runs
                    tab = await context.new_page()
                    await tab.goto(f"{front.url}/ui/")
                    await tab.locator("#run-rows[data-source='events']").wait_for()
                for _ in range(repeat):
                    samples["headless_wall_s"].append(
                        await _run(bus, _request(repo, 4, WORK_S), [])
                    )
                    terminal = LiveView(TerminalSink())
                    try:
                        samples["live_wall_s"].append(
                            await _run(
                                bus,
                                _request(repo, 4, WORK_S),
                                [terminal] if "terminal" in parts else [],
                                tab,
                                front.url,
                            )
                        )
                        if tab is not None:
                            await tab.locator("#phase[data-phase='delivered']").wait_for()
                            await tab.click(".brand")
                            await tab.locator("#runs:not([hidden])").wait_for()
                    finally:
                        terminal.stop()
                    if tab is None:
                        continue
                    terminal = LiveView(TerminalSink())
                    page = await context.new_page()
                    try:
                        samples["opened_during_run_wall_s"].append(
                            await _run(
                                bus,
                                _request(repo, 4, WORK_S),
                                [terminal] if "terminal" in parts else [],
                                page,
                                front.url,
                                open_tab=True,
                            )
                        )
                        await page.locator("#phase[data-phase='delivered']").wait_for()
                    finally:
                        terminal.stop()
                        await page.close()
                if tab is not None:
                    await tab.close()

                big = _request(repo, 50, 0.0)
                await _run(bus, big, [])
                for _ in range(repeat):
                    page = await context.new_page()
                    started = time.perf_counter()
                    await page.goto(f"{front.url}/ui/?run={big.run_id}")
                    await page.locator("#dag .node").nth(49).wait_for()
                    samples["plan_seen_50_s"].append(time.perf_counter() - started)
                    drawn = await page.evaluate(
                        "performance.getEntriesByName('baro:plan-drawn')[0].startTime"
                    )
                    samples["first_paint_50_s"].append(drawn / 1000)
                    await page.locator("#gantt .bar.success").nth(49).wait_for()
                    samples["history_drawn_50_s"].append(time.perf_counter() - started)
                    await page.close()
            finally:
                await browser.close()
    return samples


def measure(repeat: int = 5, parts: set[str] = PARTS) -> dict[str, Any]:
    chromium = os.environ.get("BARO_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("no chromium on this machine: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="baro-live-bench-") as tmp:
        samples = asyncio.run(_measure(repeat, Path(tmp), chromium, parts))
    headless = statistics.median(samples["headless_wall_s"])
    ratios = [live / headless for live in samples["live_wall_s"]]
    return {
        "live_vs_headless_wall": {
            **figure(ratios, "x", target="<= 1.05"),
            "median": round(statistics.median(samples["live_wall_s"]) / headless, 3),
        },
        "headless_wall_s": figure(samples["headless_wall_s"], "s"),
        "live_wall_s": figure(samples["live_wall_s"], "s"),
        **(
            {
                "opened_during_run_vs_headless_wall": figure(
                    [x / headless for x in samples["opened_during_run_wall_s"]], "x"
                )
            }
            if samples["opened_during_run_wall_s"]
            else {}
        ),
        "first_paint_50_s": figure(samples["first_paint_50_s"], "s", target="< 1"),
        "plan_seen_50_s": figure(samples["plan_seen_50_s"], "s"),
        "history_drawn_50_s": figure(samples["history_drawn_50_s"], "s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--parts", default=",".join(sorted(PARTS)), help="which live views to turn on"
    )
    args = parser.parse_args()
    for name, fig in measure(args.repeat, set(args.parts.split(","))).items():
        print(
            f"{name:<24} median {fig['median']:.3f} {fig['unit']}  (min {fig['min']:.3f}, "
            f"max {fig['max']:.3f}, n={fig['n']})"
            + (f"  target {fig['target']}" if "target" in fig else "")
        )


if __name__ == "__main__":
    main()
