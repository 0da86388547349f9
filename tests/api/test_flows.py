"""Runs driven through the HTTP API end to end: real nats-server, all five services, the
scripted agent as a subprocess, repositories reached by file:// URL."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import msgspec
import pytest
from click.testing import Result
from pydantic import SecretStr
from typer.testing import CliRunner

from baro_cli.main import app
from baro_cli.stack import SERVICES
from baro_intake.api import create_app
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.api.conftest import (
    TOKEN,
    Api,
    bare_remote,
    run_body,
    serve,
    sse_events,
    wait_for_state,
)
from tests.conftest import eventually, run_git
from tests.e2e.conftest import replay

pytestmark = pytest.mark.slow

DONE = {"delivered", "failed", "needs_attention", "cancelled"}


async def test_submit_by_url_runs_to_a_delivered_result(api: Api, tmp_path: Path) -> None:
    bare, head = bare_remote(tmp_path)
    before = run_git(bare, "for-each-ref")
    sent = await api.client.post("/v1/runs", json=run_body(f"file://{bare}"))
    assert sent.status_code == 202, sent.text
    run_id = sent.json()["run_id"]
    assert sent.headers["location"] == f"/v1/runs/{run_id}"

    seen = await api.client.get(f"/v1/runs/{run_id}")  # at once: from the submitted event
    assert seen.status_code == 200 and seen.json()["run_id"] == run_id

    view = await wait_for_state(api.client, run_id, DONE)
    assert view["state"] == "delivered", view["reason"]
    assert view["mode"]["mode"] == "focused"
    assert view["mode"]["source"] == "offline"
    assert 0 < view["mode"]["confidence"] <= 1 and view["mode"]["reason"]
    assert [st["status"] for st in view["stories"]] == ["integrated"]
    assert view["totals"]["tokens"] == {
        "input": 500,
        "cached_input": 100,
        "output": 40,
        "reasoning": None,
        "cost_usd": 0.0,  # the scripted agent reports a price of 0, as Claude Code's format has one
    }
    delivered = view["delivered"]
    assert delivered["published"] == "object_store"
    assert delivered["result_bundle"] == f"runs/{run_id}/result.bundle"
    assert delivered["branch"].startswith("baro/") and delivered["base"] == head
    assert delivered["files_changed"] == ["app.py"]
    assert run_git(bare, "for-each-ref") == before, "publish local never writes the remote"

    listed = await api.client.get("/v1/runs", params={"state": "delivered"})
    assert run_id in [r["run_id"] for r in listed.json()["runs"]]


async def test_events_replay_from_the_start_and_resume_after_an_id(
    api: Api, tmp_path: Path
) -> None:
    bare, _ = bare_remote(tmp_path)
    run_id = (await api.client.post("/v1/runs", json=run_body(f"file://{bare}"))).json()["run_id"]
    live = await sse_events(api.client, run_id)  # follows until run.finished
    assert live[0]["event"] == "run.submitted" and live[-1]["event"] == "run.finished"
    assert live[-1]["data"]["status"] == "delivered"
    ids = [e["id"] for e in live]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    kinds = [e["event"] for e in live]
    assert kinds.index("run.intake_decided") < kinds.index("story.started")
    assert kinds.index("story.integrated") < kinds.index("run.delivered")
    assert all(e["data"]["run_id"] == run_id for e in live)

    replayed = await sse_events(api.client, run_id, follow=False)
    assert [e["id"] for e in replayed] == ids, "a replay of a finished run is the whole history"
    resumed = await sse_events(api.client, run_id, last_id=ids[2])
    assert [e["id"] for e in resumed] == ids[3:]

    # with the agents' events: the same run events, each agent event inside its attempt
    both = await sse_events(api.client, run_id, agent=True)
    assert [e for e in both if e["event"] != "agent.event"] == [
        {**e, "id": f"{e['id']}-{m}"} for e, m in zip(live, _agent_marks(both), strict=True)
    ]
    agents = [e for e in both if e["event"] == "agent.event"]
    assert agents and {e["data"]["story_id"] for e in agents} == {"S1"}
    kinds = [e["data"]["event"]["kind"] for e in agents]
    assert kinds[0] == "session" and "file_changed" in kinds and kinds[-1] == "finished"
    order = [e["event"] for e in both]
    assert order.index("story.started") < order.index("agent.event")
    assert len(order) - order[::-1].index("agent.event") <= order.index("story.finished")
    positions = [tuple(map(int, e["id"].split("-"))) for e in both]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    middle = agents[len(agents) // 2]["id"]
    rest = await sse_events(api.client, run_id, agent=True, last_id=middle)
    assert [e["id"] for e in rest] == [e["id"] for e in both][
        [e["id"] for e in both].index(middle) + 1 :
    ]
    bad = await api.client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422


def _agent_marks(events: list[dict]) -> list[int]:
    """The agent part of each run event's id."""
    return [int(e["id"].split("-")[1]) for e in events if e["event"] != "agent.event"]


async def test_picker_run_waits_then_confirm_takes_the_suggestion(api: Api, tmp_path: Path) -> None:
    bare, _ = bare_remote(tmp_path)
    body = run_body(f"file://{bare}", confirm="picker")
    run_id = (await api.client.post("/v1/runs", json=body)).json()["run_id"]
    waiting = await wait_for_state(api.client, run_id, {"awaiting_confirmation"})
    assert waiting["mode"]["awaiting_confirmation"] is True
    assert waiting["mode"]["mode"] is None and waiting["mode"]["suggested"] == "focused"

    confirmed = await api.client.post(f"/v1/runs/{run_id}/mode")
    assert confirmed.status_code == 202, confirmed.text
    assert confirmed.json() == {"run_id": run_id, "mode": "focused", "source": "intake"}
    view = await wait_for_state(api.client, run_id, DONE)
    assert view["state"] == "delivered", view["reason"]
    assert view["mode"]["source"] == "offline", "accepting keeps intake as the decider"

    again = await api.client.post(f"/v1/runs/{run_id}/mode", json={"mode": "parallel"})
    assert again.status_code == 409
    assert "not awaiting_confirmation" in again.json()["error"]


async def test_picker_run_override_is_recorded_as_the_user_s(api: Api, tmp_path: Path) -> None:
    bare, _ = bare_remote(tmp_path)
    body = run_body(f"file://{bare}", confirm="picker")
    run_id = (await api.client.post("/v1/runs", json=body)).json()["run_id"]
    await wait_for_state(api.client, run_id, {"awaiting_confirmation"})
    chosen = await api.client.post(f"/v1/runs/{run_id}/mode", json={"mode": "sequential"})
    assert chosen.status_code == 202, chosen.text
    assert chosen.json()["source"] == "user"
    view = await wait_for_state(api.client, run_id, DONE)
    assert view["state"] == "delivered", view["reason"]
    assert view["mode"]["mode"] == "sequential" and view["mode"]["source"] == "user"
    assert view["mode"]["suggested"] == "focused"


async def test_cancel_stops_a_running_run(api: Api, tmp_path: Path) -> None:
    bare, _ = bare_remote(tmp_path)
    slow = {"default": {"steps": [{"write": "app.py", "content": "x\n"}, {"sleep": 120}]}}
    body = run_body(f"file://{bare}", agent_script=slow)
    run_id = (await api.client.post("/v1/runs", json=body)).json()["run_id"]
    await wait_for_state(api.client, run_id, {"running"})
    cancelled = await api.client.post(f"/v1/runs/{run_id}/cancel", json={"reason": "not needed"})
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["run_id"] == run_id
    view = await wait_for_state(api.client, run_id, DONE)
    assert view["state"] == "cancelled"
    assert view["reason"] == "not needed"
    assert all(st["status"] in ("cancelled", "failed") for st in view["stories"])
    again = await api.client.post(f"/v1/runs/{run_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]


async def _listeners(bus: Bus, subject: str) -> set[str]:
    """The event stream's consumers reading ``subject``, by name: only the request's, not
    the stack's own consumers, which its services make and remove as they go."""
    return {
        info.name
        for info in await bus.js.consumers_info(t.EVT_STREAM)
        if subject in (info.config.filter_subject, *(info.config.filter_subjects or ()))
    }


async def _none_made_since(bus: Bus, subject: str, before: set[str]) -> bool:
    """No consumer of ``subject`` is left but those of ``before``."""
    return not await _listeners(bus, subject) - before


async def test_a_client_leaving_the_event_stream_releases_its_consumer(
    api: Api, tmp_path: Path
) -> None:
    bare, _ = bare_remote(tmp_path)
    body = run_body(f"file://{bare}", confirm="picker")  # waits: the stream stays open
    run_id = (await api.client.post("/v1/runs", json=body)).json()["run_id"]
    await wait_for_state(api.client, run_id, {"awaiting_confirmation"})
    bus = await Bus.open(api.settings, "test-observer", ensure=False)
    subject = t.run_events_filter(run_id)
    try:
        before = await _listeners(bus, subject)
        async with api.client.stream("GET", f"/v1/runs/{run_id}/events") as resp:
            async for line in resp.aiter_lines():
                if line.startswith("event: run.intake_decided"):
                    break
            assert len(await _listeners(bus, subject) - before) == 1
        await eventually(
            lambda: _none_made_since(bus, subject, before),
            30,
            "the stream's consumer to end with its client",
        )
    finally:
        await bus.close()
    cancelled = await api.client.post(f"/v1/runs/{run_id}/cancel")
    assert cancelled.status_code == 202


async def test_a_client_gone_before_its_first_line_leaves_nothing_listening(api: Api) -> None:
    """GET /v1/events listens before it answers; a client that hangs up before the
    first line must not leave that subscription behind (the server would keep sending it
    every event of every run for minutes)."""
    bus = await Bus.open(api.settings, "test-observer", ensure=False)
    try:
        before = await _listeners(bus, t.EVERY_RUN_EVENTS_FILTER)

        async def listening() -> bool:
            return not await _none_made_since(bus, t.EVERY_RUN_EVENTS_FILTER, before)

        url = httpx.URL(api.url)
        # five hang up at once (the server may not even have called the endpoint), five
        # once the server listens for them: nothing of the answer is read either way
        for wait_for_the_listener in (False,) * 5 + (True,) * 5:
            _, writer = await asyncio.open_connection(url.host, url.port)
            writer.write(
                f"GET /v1/events HTTP/1.1\r\nHost: {url.host}\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
            )
            if wait_for_the_listener:
                await eventually(listening, 10, "GET /v1/events to listen")
            writer.close()
            await writer.wait_closed()
        await eventually(
            lambda: _none_made_since(bus, t.EVERY_RUN_EVENTS_FILTER, before),
            10,
            "every subscription to end with its client",
        )
    finally:
        await bus.close()


async def test_a_server_that_cannot_start_the_answer_still_ends_the_subscription(
    settings: Settings,
) -> None:
    """Under ASGI 2.4 a server reports a client already gone by raising from the first
    send: the body, and the reader's own cleanup, never start. The subscription made for
    GET /v1/events must end all the same."""
    bus = await Bus.open(settings, "test-api")
    try:
        cfg = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
        app = create_app(bus, cfg, ready=lambda: True)

        async def receive() -> dict:
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            raise OSError("the client is gone")

        before = await _listeners(bus, t.EVERY_RUN_EVENTS_FILTER)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/events",
            "raw_path": b"/v1/events",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"baro"), (b"authorization", f"Bearer {TOKEN}".encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        with contextlib.suppress(Exception):
            await app(scope, receive, send)
        await eventually(
            lambda: _none_made_since(bus, t.EVERY_RUN_EVENTS_FILTER, before),
            5,
            "the subscription to end with its client",
        )
    finally:
        await bus.close()


async def test_every_run_s_changes_stream_live_without_the_past(api: Api, tmp_path: Path) -> None:
    """GET /v1/events: one short line per event of any run, from the moment the client
    connects; what came before is not replayed (the list is read with GET /v1/runs)."""
    bare, _ = bare_remote(tmp_path)
    earlier = (await api.client.post("/v1/runs", json=run_body(f"file://{bare}"))).json()
    await wait_for_state(api.client, earlier["run_id"], {"delivered"})
    assert (await api.client.get("/v1/events", headers={"Authorization": ""})).status_code == 401

    seen: list[dict] = []
    async with api.client.stream("GET", "/v1/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.aiter_lines()
        assert await anext(lines) == "retry: 3000"
        run_id = (await api.client.post("/v1/runs", json=run_body(f"file://{bare}"))).json()[
            "run_id"
        ]
        kind = None
        async for line in lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert set(data) == {"run_id", "type", "ts"} and data["type"] == kind
                seen.append(data)
                if data["run_id"] == run_id and kind == "run.finished":
                    break
    assert {d["run_id"] for d in seen} == {run_id}, "nothing of the earlier run is replayed"
    kinds = [d["type"] for d in seen]
    assert kinds[0] == "run.submitted" and "run.delivered" in kinds, kinds


async def test_agent_events_reach_clients_redacted(api: Api, tmp_path: Path) -> None:
    """An agent event that carries a key (say, one a runner of an older version let
    through) is masked by the API before any client sees it, like every other view."""
    bare, _ = bare_remote(tmp_path)
    run_id = (
        await api.client.post("/v1/runs", json=run_body(f"file://{bare}", confirm="picker"))
    ).json()["run_id"]
    await wait_for_state(api.client, run_id, {"awaiting_confirmation"})
    key = "sk-ant-" + "a1B2" * 8
    bus = await Bus.open(api.settings, "api-test", ensure=False)
    try:
        await bus.publish_agent_event(
            s.AgentEventMsg(
                run_id=run_id, story_id="S1", attempt=1, seq=1,
                event=s.AssistantText(text=f"using ANTHROPIC_API_KEY={key} now"),
            )
        )  # fmt: skip
    finally:
        await bus.close()
    seen = await sse_events(api.client, run_id, follow=False, agent=True)
    (said,) = [e for e in seen if e["event"] == "agent.event"]
    assert key not in said["data"]["event"]["text"]
    assert "[redacted]" in said["data"]["event"]["text"]
    await api.client.post(f"/v1/runs/{run_id}/cancel")


async def test_a_token_in_the_repository_url_never_leaves_a_service(api: Api) -> None:
    """A clone that fails prints its URL; the token in it is masked in every event on the
    bus and in every answer of the API."""
    token = "ghp_" + "Z9y8X7w6" * 5
    url = f"https://{token}@127.0.0.1:9/owner/app.git"  # nothing listens on port 9
    got = await api.client.post("/v1/runs", json=run_body(url))
    assert got.status_code == 202, got.text
    run_id = got.json()["run_id"]
    view = await wait_for_state(api.client, run_id, {"failed"})
    assert view["reason"].startswith("could not prepare the repository: ")
    answers = [
        json.dumps(view),
        (await api.client.get("/v1/runs")).text,
        json.dumps(await sse_events(api.client, run_id, follow=False)),
    ]
    bus = await Bus.open(api.settings, "redaction-test", ensure=False)
    try:
        stored = [msgspec.json.encode(e).decode() for e in await replay(bus, run_id)]
    finally:
        await bus.close()
    assert any("prepare_failed" in e for e in stored)
    for text in [*answers, *stored[1:]]:  # [0] is the submitted request itself
        assert token not in text
    assert "[redacted]@127.0.0.1:9" in answers[0]


async def test_a_vague_goal_waits_for_answers_then_runs_the_clarified_goal(
    api: Api, tmp_path: Path
) -> None:
    bare, _ = bare_remote(tmp_path)
    body = run_body(f"file://{bare}", goal="make it faster", clarify="ask")
    run_id = (await api.client.post("/v1/runs", json=body)).json()["run_id"]
    waiting = await wait_for_state(api.client, run_id, {"awaiting_answers"})
    ids = ["target", "outcome", "untouched"]
    assert [q["id"] for q in waiting["clarification"]["questions"]] == ids
    assert waiting["clarification"]["status"] == "asked" and waiting["stories"] == []
    assert waiting["links"]["answers"] == f"/v1/runs/{run_id}/answers"
    history = await sse_events(api.client, run_id, follow=False)
    (asked,) = [e for e in history if e["event"] == "run.questions_asked"]
    assert [q["id"] for q in asked["data"]["questions"]] == ids

    answers_url = f"/v1/runs/{run_id}/answers"
    wrong = await api.client.post(answers_url, json={"answers": [{"question_id": "nope"}]})
    assert wrong.status_code == 422 and "no question 'nope'" in wrong.json()["error"]
    answers = [
        {"question_id": "target", "text": "greet() in app.py"},
        {"question_id": "outcome", "text": "it says hello"},
    ]
    sent = await api.client.post(answers_url, json={"answers": answers})
    assert sent.status_code == 202, sent.text
    assert sent.json() == {"run_id": run_id, "answered": 2, "skipped": 1}
    view = await wait_for_state(api.client, run_id, DONE)
    assert view["state"] == "delivered", view["reason"]
    assert view["clarification"]["status"] == "answered"
    assert view["clarification"]["answered_by"] == "api"
    assert view["envelope"]["objective"] == "make it faster — greet() in app.py"
    assert view["envelope"]["acceptance_criteria"] == ["it says hello"]
    again = await api.client.post(answers_url, json={"answers": answers})
    assert again.status_code == 409 and "not awaiting_answers" in again.json()["error"]


async def test_baro_answer_continues_a_run_and_one_left_unanswered_is_cancelled(
    settings: Settings, tmp_path: Path
) -> None:
    quick = settings.model_copy(
        update={"api_port": 0, "api_token": SecretStr(TOKEN), "answer_timeout_s": 4.0}
    )
    services = {name: SERVICES[name] for name in ("conductor", "intake")}
    async for served in serve(quick, services):
        bare, _ = bare_remote(tmp_path)
        body = run_body(f"file://{bare}", goal="make it faster", clarify="ask")
        answered = (await served.client.post("/v1/runs", json=body)).json()["run_id"]
        left = (await served.client.post("/v1/runs", json=body)).json()["run_id"]
        await wait_for_state(served.client, answered, {"awaiting_answers"})
        nats = quick.nats_url
        wrong = await asyncio.to_thread(baro_answer, nats, answered, "nope=x")
        assert wrong.exit_code == 2 and "has no question 'nope'" in wrong.output
        done = await asyncio.to_thread(baro_answer, nats, answered, "target=greet() in app.py")
        assert done.exit_code == 0, done.output
        assert "answered 1, skipped 2" in done.output
        view = await wait_for_state(served.client, answered, {"planning"})  # no planner here
        assert view["clarification"]["answered_by"] == "cli"
        assert view["envelope"]["objective"] == "make it faster — greet() in app.py"

        view = await wait_for_state(served.client, left, {"cancelled"}, timeout=60)
        assert "not answered within 4s" in view["reason"]
        assert view["clarification"]["status"] == "timed_out"


def baro_answer(nats_url: str, run_id: str, answer: str) -> Result:
    """`baro answer` in process (call it in a thread: the command runs its own loop)."""
    args = ["answer", run_id, "--answer", answer]
    return CliRunner().invoke(app, args, env={"BARO_NATS_URL": nats_url})
