"""Notifications: the body and the targets (plain functions), a real HTTP receiver for the
webhook's POST and its bounded retries, and a stand-in `notify-send` for the desktop."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from baro_cli import validate
from baro_merger.notify import Targets, message, notify, payload, post_webhook, targets
from baro_shared import schemas as s
from baro_shared import usertools
from baro_shared.bus import Bus
from baro_shared.repoconfig import NotifyConfig, RepoConfigError, parse_repo_config
from tests.conftest import make_repo
from tests.doctor.test_defaults import submitted
from tests.doctor.test_doctor import clean_env
from tests.e2e.conftest import request_for, run_to_end

from .conftest import show

SECRET = "sk-ant-notify-0123456789abcdefghijkl"


def command(**kw: object) -> s.NotifyRun:
    fields: dict[str, object] = dict(
        run_id="20260101-000000-abcdef",
        state="needs_attention",
        goal="fix the parser",
        reason=f"S2 failed: the agent printed {SECRET}",
        branch="baro/fix-the-parser",
        repository="https://user:tok3n-secret-value@example.com/team/app.git",
        totals=s.Totals(wall_s=12.5, stories=2, stories_integrated=1),
    )
    fields.update(kw)
    return s.NotifyRun(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pure


def test_the_body_names_the_run_and_holds_no_secret() -> None:
    body = payload(command())
    assert body["run_id"] == "20260101-000000-abcdef" and body["state"] == "needs_attention"
    assert body["event"] == "run.needs_attention" and body["branch"] == "baro/fix-the-parser"
    totals = body["totals"]
    assert isinstance(totals, dict)
    assert (totals["wall_s"], totals["stories"], totals["stories_integrated"]) == (12.5, 2, 1)
    text = json.dumps(body)
    assert SECRET not in text and "tok3n-secret-value" not in text
    assert "[redacted]" in str(body["reason"])


def test_the_line_for_people_says_what_and_where() -> None:
    delivered = command(state="delivered", reason=None, pr_url="https://example.com/pr/7")
    assert message(delivered) == (
        "baro run 20260101-000000-abcdef delivered: fix the parser (https://example.com/pr/7)"
    )
    assert message(command()).startswith(
        "baro run 20260101-000000-abcdef needs attention: fix the parser (baro/fix-the-parser): "
        "S2 failed"
    )


def test_the_runs_own_webhook_wins_and_the_desktop_is_for_local_runs() -> None:
    repo = NotifyConfig(webhook="https://hooks.example.com/team", desktop=True)
    assert targets(command(), repo) == Targets("https://hooks.example.com/team", False)
    assert targets(command(webhook="https://mine.example.com", local=True), repo) == Targets(
        "https://mine.example.com", True
    )
    assert targets(command(desktop=True, local=True), None) == Targets(None, True)
    assert targets(command(), None) == Targets(None, False)


def test_the_notify_table_is_checked() -> None:
    config = parse_repo_config('[notify]\nwebhook = "https://h.example.com/x"\ndesktop = true\n')
    assert config.notify == NotifyConfig("https://h.example.com/x", True)
    for wrong, problem in (
        ('webhook = "ftp://h/x"', "[notify] webhook must be an http:// or https:// URL"),
        ('desktop = "yes"', "[notify] desktop must be true or false"),
        ('url = "https://h"', "[notify] has no key 'url'"),
    ):
        with pytest.raises(RepoConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
            parse_repo_config(f"[notify]\n{wrong}\n")


# --------------------------------------------------------------------------- a real receiver


class Receiver:
    """A local HTTP server that answers each POST with the next of ``statuses`` (then the
    last one again) and keeps what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.got: list[tuple[dict[str, str], dict[str, object]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                receiver.got.append((dict(self.headers), body))
                status = receiver.statuses[min(len(receiver.got), len(receiver.statuses)) - 1]
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(getattr(request, "param", [200]))
    try:
        yield server
    finally:
        server.close()


async def no_wait(_: float) -> None:
    return None


async def test_one_post_with_the_body_and_an_idempotency_key(receiver: Receiver) -> None:
    posted = await post_webhook(receiver.url, payload(command()), key="r.needs_attention")
    assert posted.ok and posted.attempts == 1
    ((headers, body),) = receiver.got
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "r.needs_attention"
    assert body["state"] == "needs_attention" and SECRET not in json.dumps(body)


@pytest.mark.parametrize("receiver", [[503, 500, 200]], indirect=True)
async def test_server_errors_are_retried_until_it_answers(receiver: Receiver) -> None:
    posted = await post_webhook(receiver.url, {"x": 1}, key="k", sleep=no_wait)
    assert posted.ok and posted.attempts == 3 and len(receiver.got) == 3


@pytest.mark.parametrize("receiver", [[500]], indirect=True)
async def test_retries_are_bounded(receiver: Receiver) -> None:
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    posted = await post_webhook(receiver.url, {"x": 1}, key="k", delays=(0.5, 1.0, 2.5), sleep=wait)
    assert not posted.ok and posted.attempts == 4 and posted.detail == "HTTP 500"
    assert len(receiver.got) == 4 and waits == [0.5, 1.0, 2.5]


@pytest.mark.parametrize("receiver", [[404]], indirect=True)
async def test_a_refusal_is_not_retried(receiver: Receiver) -> None:
    posted = await post_webhook(receiver.url, {"x": 1}, key="k", sleep=no_wait)
    assert not posted.ok and posted.attempts == 1 and len(receiver.got) == 1


async def test_an_unreachable_receiver_is_given_up_on_without_raising() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    posted = await post_webhook(f"http://127.0.0.1:{port}/", {"x": 1}, key="k", sleep=no_wait)
    assert not posted.ok and posted.attempts == 4


# --------------------------------------------------------------------------- desktop


async def test_a_local_run_shows_a_desktop_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = tmp_path / "shown.txt"
    fake = tmp_path / "bin" / "notify-send"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shown}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    await notify(command(state="delivered", reason=None, local=True, desktop=True), None)
    assert shown.read_text().splitlines() == [
        "--app-name=baro",
        "baro: delivered",
        "baro run 20260101-000000-abcdef delivered: fix the parser (baro/fix-the-parser)",
    ]
    shown.unlink()
    await notify(command(state="delivered", local=False, desktop=True), None)  # a cluster's run
    assert not shown.exists()


async def test_a_notify_send_put_on_the_path_later_is_not_what_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merger shows a notification outside the fence, as the user: the program is the
    one found when baro started, not one an agent put in a folder of ``PATH`` since."""
    early, late = tmp_path / "early", tmp_path / "late"
    for folder, marker in ((early, "planted"), (late, "shown")):
        folder.mkdir()
        (folder / "notify-send").write_text(f"#!/bin/sh\ntouch {tmp_path}/{marker}\n")
        (folder / "notify-send").chmod(0o755)
    (early / "notify-send").rename(tmp_path / "not-yet")
    monkeypatch.setenv("PATH", f"{early}{os.pathsep}{late}{os.pathsep}{os.environ['PATH']}")
    usertools.settle()  # baro starts
    (tmp_path / "not-yet").rename(early / "notify-send")  # an agent plants its own
    await notify(command(state="delivered", reason=None, local=True, desktop=True), None)
    assert (tmp_path / "shown").exists()
    assert not (tmp_path / "planted").exists()


# --------------------------------------------------------------------------- whole runs


async def _received(receiver: Receiver, count: int, timeout: float = 20.0) -> None:
    """Wait until ``receiver`` got ``count`` POSTs (the notification follows the run's end)."""
    for _ in range(int(timeout * 10)):
        if len(receiver.got) >= count:
            return
        await asyncio.sleep(0.1)


FILES = {"app.py": "print('helo')\n"}


async def test_a_run_posts_its_end_to_the_repositorys_webhook_and_a_story_cannot_redirect_it(
    bus: Bus, tmp_path: Path
) -> None:
    team, other = Receiver([200]), Receiver([200])
    try:
        toml = f'[notify]\nwebhook = "{team.url}"\n'
        repo = make_repo(tmp_path / "user", {**FILES, ".baro.toml": toml})
        script = {
            "default": {
                "steps": [
                    {"write": ".baro.toml", "content": f'[notify]\nwebhook = "{other.url}"\n'},
                    {"write": "app.py", "content": "print('hello')\n"},
                ]
            }
        }
        # the goal asks for the .baro.toml change, so it is delivered: still, the run's
        # notification goes where the run's base says
        goal = "fix the typo in app.py and point .baro.toml elsewhere"
        request = request_for(repo, goal, script, mode_request="focused")
        report = await run_to_end(bus, request)
        assert report.status == "delivered", report.reason
        assert show(repo, report.branch or "", ".baro.toml") == (
            f'[notify]\nwebhook = "{other.url}"\n'
        )
        await _received(team, 1)
        await asyncio.sleep(1.0)  # room for a second POST that must not come
        assert [body["state"] for _, body in team.got] == ["delivered"]
        body = team.got[0][1]
        assert body["run_id"] == request.run_id and body["branch"] == report.branch
        assert other.got == [], "a story's .baro.toml chose where the notification went"
    finally:
        team.close()
        other.close()


async def test_a_failing_receiver_does_not_change_the_run(bus: Bus, tmp_path: Path) -> None:
    failing = Receiver([500])
    try:
        repo = make_repo(tmp_path / "user", FILES)
        script = {"default": {"steps": [{"write": "app.py", "content": "print('hello')\n"}]}}
        request = request_for(
            repo, "fix the typo in app.py", script, mode_request="focused",
            notify_webhook=failing.url,
        )  # fmt: skip
        report = await run_to_end(bus, request)
        assert report.status == "delivered", report.reason
        await _received(failing, 4)
        await asyncio.sleep(1.0)
        assert len(failing.got) == 4, "retried a bounded number of times"
        got = await bus.get_record(request.run_id)
        assert got is not None and got[0].state == "delivered"
    finally:
        failing.close()


# --------------------------------------------------------------------------- baro run --notify


def test_notify_takes_one_webhook_and_desktop() -> None:
    assert validate.notify([]) == (None, False)
    assert validate.notify(["https://h.example.com/x", "desktop"]) == (
        "https://h.example.com/x",
        True,
    )
    with pytest.raises(validate.UserError, match="a webhook must be an http:// or https:// URL"):
        validate.notify(["hooks.example.com"])
    with pytest.raises(validate.UserError, match="one webhook URL"):
        validate.notify(["https://a.example.com", "https://b.example.com"])


def test_baro_run_notify_reaches_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    env = clean_env(tmp_path)
    request = submitted(
        monkeypatch, env, repo, "--backend", "scripted",
        "--notify", "http://127.0.0.1:9/hook", "--notify", "desktop",
    )  # fmt: skip
    assert (request.notify_webhook, request.notify_desktop) == ("http://127.0.0.1:9/hook", True)
