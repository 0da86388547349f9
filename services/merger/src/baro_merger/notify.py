"""Telling people when a run needs them or has ended: a webhook and a desktop notification.

The conductor sends ``NotifyRun`` as a run enters a state a person acts on
(``awaiting_answers``, ``awaiting_confirmation``, ``delivered``, ``needs_attention``, ``failed``). Where it goes
comes from the run itself (``--notify``) and from ``.baro.toml [notify]`` of the run's base
commit, never from anything a story wrote. The webhook gets one JSON POST per state,
retried a bounded number of times on a network error or a 5xx/429 answer; a notification
that cannot be delivered is logged and dropped, never the run's failure. Text that can
hold secrets (the goal, the reason, a source URL) is redacted before it leaves.

The body and the retry schedule are plain functions; the POST and the desktop command
are the edges.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from baro_shared import schemas as s
from baro_shared import usertools
from baro_shared.redact import redact
from baro_shared.repoconfig import NotifyConfig
from baro_shared.sources import redact_url

log = logging.getLogger(__name__)

# waits between attempts: at most len + 1 attempts, about 4 s of waiting in all
RETRY_DELAYS_S = (0.5, 1.0, 2.5)
ATTEMPT_TIMEOUT_S = 5.0
RETRIED_STATUSES = frozenset({408, 425, 429}) | frozenset(range(500, 600))
HEADLINES = {
    "awaiting_answers": "is waiting for answers to its questions",
    "awaiting_confirmation": "is waiting for you to pick its mode",
    "delivered": "delivered",
    "needs_attention": "needs attention",
    "failed": "failed",
}


@dataclass(frozen=True)
class Targets:
    webhook: str | None
    desktop: bool


def targets(cmd: s.NotifyRun, config: NotifyConfig | None) -> Targets:
    """The run's own webhook wins over the repository's; a desktop notification is only
    for a run on this machine, when the run or the repository asks for it."""
    webhook = cmd.webhook or (config.webhook if config else None)
    desktop = cmd.local and (cmd.desktop or bool(config and config.desktop))
    return Targets(webhook, desktop)


def payload(cmd: s.NotifyRun) -> dict[str, object]:
    """The webhook's JSON body."""
    return {
        "event": f"run.{cmd.state}",
        "run_id": cmd.run_id,
        "state": cmd.state,
        "goal": redact(cmd.goal),
        "reason": redact(cmd.reason) if cmd.reason else None,
        "branch": cmd.branch,
        "pr_url": cmd.pr_url,
        "repository": redact(redact_url(cmd.repository)) if cmd.repository else None,
        "totals": msgspec.to_builtins(cmd.totals),
        "text": message(cmd),
    }


def message(cmd: s.NotifyRun) -> str:
    """One line for people: what happened to which run, and where the result is."""
    goal = " ".join(redact(cmd.goal).split())
    goal = goal if len(goal) <= 80 else goal[:77] + "..."
    line = f"baro run {cmd.run_id} {HEADLINES.get(cmd.state, cmd.state)}: {goal}"
    where = cmd.pr_url or cmd.branch
    if where:
        line += f" ({where})"
    if cmd.reason and cmd.state != "delivered":
        line += f": {' '.join(redact(cmd.reason).split())[:200]}"
    return line


@dataclass(frozen=True)
class Posted:
    ok: bool
    attempts: int
    detail: str  # the last status or error


async def post_webhook(
    url: str,
    body: dict[str, object],
    *,
    key: str,
    delays: tuple[float, ...] = RETRY_DELAYS_S,
    timeout: float = ATTEMPT_TIMEOUT_S,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Posted:
    """POST ``body`` to ``url``, retrying after each of ``delays``; ``key`` is sent as
    ``Idempotency-Key`` so a receiver can drop the repeat of a redelivered command."""
    data = json.dumps(body).encode()
    detail = ""
    for attempt in range(1, len(delays) + 2):
        status, detail = await asyncio.to_thread(_post, url, data, key, timeout)
        if 200 <= status < 300:
            return Posted(True, attempt, detail)
        if status and status not in RETRIED_STATUSES:
            return Posted(False, attempt, detail)
        if attempt <= len(delays):
            await sleep(delays[attempt - 1])
    return Posted(False, len(delays) + 1, detail)


def _post(url: str, data: bytes, key: str, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", "baro")
    request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code}"
    except (OSError, ValueError) as exc:  # refused, unreachable, timed out, bad URL
        return 0, redact(str(getattr(exc, "reason", exc)))


def desktop_command(title: str, body: str) -> list[str] | None:
    """How this machine shows a notification (None: it has no way baro knows), with the
    program found when baro started (``baro_shared.usertools``: not one an agent put on
    ``PATH`` since)."""
    osascript = usertools.tool("osascript")
    if platform.system() == "Darwin" and osascript:
        script = f"display notification {json.dumps(body)} with title {json.dumps(title)}"
        return [osascript, "-e", script]
    found = usertools.tool("notify-send")
    return [found, "--app-name=baro", title, body] if found else None


async def show_desktop(cmd: s.NotifyRun) -> bool:
    argv = desktop_command(f"baro: {HEADLINES.get(cmd.state, cmd.state)}", message(cmd))
    if argv is None:
        return False
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(proc.wait(), timeout=10) == 0
    except (OSError, TimeoutError):
        return False


async def notify(cmd: s.NotifyRun, config: NotifyConfig | None) -> None:
    """Deliver one notification where the run and its repository ask; never raises."""
    chosen = targets(cmd, config)
    if chosen.webhook:
        posted = await post_webhook(chosen.webhook, payload(cmd), key=f"{cmd.run_id}.{cmd.state}")
        if not posted.ok:
            log.warning(
                "webhook for run %s (%s) not delivered after %d attempt(s): %s",
                cmd.run_id, cmd.state, posted.attempts, posted.detail,
            )  # fmt: skip
    if chosen.desktop and not await show_desktop(cmd):
        log.info("no desktop notification for run %s: nothing to show it here", cmd.run_id)
