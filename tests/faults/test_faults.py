"""Faults with real processes: killed and paused runners, restarted services and server,
duplicated commands, poison messages, misbehaving agents. Each case is bounded in time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js.api import Header

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from tests.conftest import make_repo, run_git, snapshot
from tests.faults.conftest import (
    BARO,
    Cluster,
    events_of,
    eventually,
    record,
    story_commits,
    submit_request,
    wait_final,
    wait_story,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

FILES = {"app.py": "VALUE = 0\n", "README.md": "# app\n"}
GOAL = "set VALUE to 1 in app.py"


def slow_script(seconds: float = 5.0, per_attempt: bool = False) -> dict:
    def steps(label: str) -> list[dict]:
        return [
            {"text": "working"},
            {"sleep": seconds},
            {"write": "app.py", "content": f"VALUE = 1  # {label}\n"},
        ]

    if not per_attempt:
        return {"default": {"steps": steps("fixed")}}
    return {
        "stories": [
            {"match": {}, "attempts": [n], "steps": steps(f"attempt {n}")} for n in range(1, 6)
        ],
        "default": {"steps": steps("other")},
    }


async def submit(client: Bus, request: s.RunSubmitted) -> s.RunSubmitted:
    await client.publish(request, f"{request.run_id}.submitted")
    return request


def agent_groups_alive(cluster: Cluster) -> list[int]:
    groups = cluster.root / "cache" / "agent-groups"
    alive = []
    for entry in groups.glob("*") if groups.exists() else []:
        try:
            os.killpg(int(entry.name), 0)
            alive.append(int(entry.name))
        except ProcessLookupError:
            pass
    return alive


async def test_kill_9_runner_mid_story_still_delivers_once(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.start_core()
    first = cluster.start("agent-runner")
    repo = make_repo(tmp_path / "user", FILES, dirty=True)
    before = snapshot(repo)
    req = await submit(client, submit_request(repo, GOAL, slow_script(6)))
    rec = await wait_story(client, cluster, req.run_id, "S1", "running")
    assert rec.story("S1").runner == first.runner_id
    cluster.start("agent-runner")
    first.kill()
    final = await wait_final(client, cluster, req.run_id)
    assert final.state == "delivered", final.reason
    st = final.story("S1")
    assert st.attempt == 2 and st.status == "integrated"
    assert story_commits(repo, final.delivered.branch, final.delivered.base) == ["S1"]
    integrated = [
        e for e in await events_of(client, req.run_id) if isinstance(e, s.StoryIntegrated)
    ]
    assert len(integrated) == 1
    assert snapshot(repo) == before
    assert agent_groups_alive(cluster) == [], "the killed runner's agent outlived it"


async def test_sigterm_runner_hands_its_story_back_at_once(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.start_core()
    # a long ack wait: the story can only move on quickly if the runner naks it
    first = cluster.start("agent-runner", runner_ack_wait_s="120")
    repo = make_repo(tmp_path / "user", FILES)
    req = await submit(client, submit_request(repo, GOAL, slow_script(30)))
    await wait_story(client, cluster, req.run_id, "S1", "running")
    second = cluster.start("agent-runner", runner_ack_wait_s="120")
    await asyncio.sleep(1.0)
    handed_back = time.monotonic()
    assert first.stop(timeout=30) == 0, "SIGTERM should drain and exit cleanly"
    rec = await wait_story(client, cluster, req.run_id, "S1", "running", attempt=2, timeout=60)
    assert rec.story("S1").runner == second.runner_id
    assert time.monotonic() - handed_back < 60, (
        "the story waited for the ack timeout instead of being handed back"
    )
    owners = {
        (cluster.root / "cache" / "agent-groups" / str(g)).read_text()
        for g in agent_groups_alive(cluster)
    }
    assert owners <= {second.runner_id}, "the stopped runner left its agent running"


@pytest.mark.parametrize("victim", ["conductor", "merger"])
async def test_restarting_a_core_service_mid_run_still_delivers(
    cluster: Cluster, client: Bus, tmp_path: Path, victim: str
) -> None:
    cluster.start_core()
    cluster.start("agent-runner")
    repo = make_repo(tmp_path / "user", FILES)
    req = await submit(client, submit_request(repo, GOAL, slow_script(4)))
    await wait_story(client, cluster, req.run_id, "S1", "running")
    for proc in cluster.processes:
        if proc.name == victim:
            proc.kill()
    await asyncio.sleep(1.0)
    cluster.start(victim)
    final = await wait_final(client, cluster, req.run_id)
    assert final.state == "delivered", final.reason
    assert story_commits(repo, final.delivered.branch, final.delivered.base) == ["S1"]


async def test_kill_9_nats_server_and_restart_on_the_same_store(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.start_core()
    cluster.start("agent-runner")
    repo = make_repo(tmp_path / "user", FILES)
    req = await submit(client, submit_request(repo, GOAL, slow_script(5)))
    await wait_story(client, cluster, req.run_id, "S1", "running")
    cluster.nats.kill()
    await asyncio.sleep(1.0)
    cluster.nats.start()
    final = await wait_final(client, cluster, req.run_id, timeout=180)
    assert final.state == "delivered", final.reason
    assert story_commits(repo, final.delivered.branch, final.delivered.base) == ["S1"]


async def test_every_command_delivered_twice_integrates_each_story_once(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.start_core()
    cluster.start("agent-runner")
    cluster.start("agent-runner")
    seen: set[str] = set()

    async def duplicate(msg) -> None:  # type: ignore[no-untyped-def]
        if (msg.headers or {}).get("Baro-Test-Duplicate"):
            return
        msg_id = (msg.headers or {}).get(Header.MSG_ID, "")
        if msg_id in seen:
            return
        seen.add(msg_id)
        await client.js.publish(
            msg.subject,
            msg.data,
            headers={Header.MSG_ID: f"dup-{msg_id}", "Baro-Test-Duplicate": "1"},
        )

    worker_topics = (
        "intake_decided",
        "prepared",
        "plan_proposed",
        "story_started",
        "story_agent_ended",
        "story_finished",
        "story_integrated",
        "merge_conflict",
        "delivered",
    )
    subs = [await client.nc.subscribe("baro.cmd.>", cb=duplicate)]
    subs += [
        await client.nc.subscribe(f"baro.evt.*.{topic}", cb=duplicate) for topic in worker_topics
    ]
    repo = make_repo(tmp_path / "user", {"a.py": "A = 0\n", "b.py": "B = 0\n", "c.py": "C = 0\n"})
    script = {
        "stories": [
            {
                "match": {"id": f"S{i}"},
                "steps": [{"sleep": 1}, {"write": f"s{i}.txt", "content": "x"}],
            }
            for i in (1, 2, 3)
        ]
    }
    req = await submit(
        client,
        # the stories write beside their surfaces (tests for a.py, ...): this test is about
        # duplicates, so those changes are integrated with a warning rather than refused
        submit_request(
            repo,
            "add tests for a.py, b.py and c.py",
            script,
            mode_request="parallel",
            surface="warn",
        ),
    )
    final = await wait_final(client, cluster, req.run_id, timeout=180)
    for sub in subs:
        await sub.unsubscribe()
    assert final.state == "delivered", final.reason
    ids = [st.story.id for st in final.stories]
    assert sorted(story_commits(repo, final.delivered.branch, final.delivered.base)) == sorted(ids)
    events = await events_of(client, req.run_id)
    updates = [(e.story_id, e.status, e.attempt) for e in events if isinstance(e, s.StoryUpdated)]
    assert len(updates) == len(set(updates)), "a state-changing event was emitted twice"
    assert sum(isinstance(e, s.RunFinished) for e in events) == 1
    assert len(seen) > 10, "the duplicator saw too little traffic to mean anything"


async def test_late_ack_from_a_stale_runner_does_not_win(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.start_core()
    stale = cluster.start("agent-runner")
    repo = make_repo(tmp_path / "user", FILES)
    req = await submit(client, submit_request(repo, GOAL, slow_script(4, per_attempt=True)))
    await wait_story(client, cluster, req.run_id, "S1", "running")
    stale.signal(signal.SIGSTOP)  # no heartbeats: the lease expires while it is frozen
    cluster.start("agent-runner")
    final = await wait_final(client, cluster, req.run_id)
    assert final.state == "delivered", final.reason
    assert "attempt 2" in run_git(repo, "show", f"{final.delivered.branch}:app.py")
    stale.signal(signal.SIGCONT)  # it finishes attempt 1 and acks late

    async def stale_result_recorded() -> bool:
        rec = await record(client, req.run_id)
        return bool(rec and any(k.startswith("1:") for k in rec.story("S1").counted_attempts))

    await eventually(
        stale_result_recorded, 60, "the stale attempt's result to be recorded", cluster
    )
    rec = await record(client, req.run_id)
    assert rec.state == "delivered" and rec.story("S1").result.attempt == 2
    assert "attempt 2" in run_git(repo, "show", f"{rec.delivered.branch}:app.py")
    assert story_commits(repo, rec.delivered.branch, rec.delivered.base) == ["S1"]


async def test_poison_messages_are_terminated_recorded_and_do_not_hurt_other_runs(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.start_core()
    cluster.start("agent-runner")
    for service in ("intake", "planner", "agent-runner", "merger"):
        await client.js.publish(
            t.cmd_subject(service),
            b"\x00not a command",
            headers={Header.MSG_ID: f"poison-{service}"},
        )
    await client.js.publish(
        t.evt_subject("bogus", "submitted"), b"{broken", headers={Header.MSG_ID: "poison-evt"}
    )
    repo = make_repo(tmp_path / "user", FILES)
    req = await submit(client, submit_request(repo, GOAL, slow_script(0.5)))
    final = await wait_final(client, cluster, req.run_id)
    assert final.state == "delivered", final.reason
    records: list[s.PoisonRecord] = []
    sub = await client.js.subscribe("baro.dlq.>", ordered_consumer=True)
    try:
        while True:
            msg = await sub.next_msg(timeout=3)
            records.append(msgspec.json.decode(msg.data, type=s.PoisonRecord))
    except nats.errors.TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    assert {r.service for r in records} >= {
        "intake",
        "planner",
        "agent-runner",
        "merger",
        "conductor",
    }
    assert all("undecodable" in r.reason for r in records)
    shown = await asyncio.to_thread(
        subprocess.run,
        [BARO, "dlq", "--json", "--nats-url", cluster.nats.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    listed = [json.loads(line) for line in shown.stdout.splitlines()]
    assert {e["service"] for e in listed if e["type"] == "dlq.poison"} >= {
        "intake",
        "merger",
        "conductor",
    }


async def test_exhausted_deliveries_become_a_failed_story_with_the_reason(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.env["BARO_RUNNER_MAX_DELIVER"] = "2"
    cluster.start_core()
    repo = make_repo(tmp_path / "user", FILES)
    runner = cluster.start("agent-runner")
    req = await submit(client, submit_request(repo, GOAL, slow_script(30)))
    for attempt in (1, 2):
        await wait_story(client, cluster, req.run_id, "S1", "running", attempt=attempt)
        runner.kill()
        runner = cluster.start("agent-runner")
    final = await wait_final(client, cluster, req.run_id, timeout=120)
    assert final.state == "failed"
    reason = final.story("S1").reason or ""
    assert "gave up" in reason and "2 deliveries" in reason


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"text": "thinking"}, {"hang": 300}], "stalled"),
        ([{"write": "app.py", "content": "x"}, {"crash": 9}], "9"),
    ],
)
async def test_hanging_and_crashing_agents_fail_their_story(
    cluster: Cluster, client: Bus, tmp_path: Path, steps: list[dict], expected: str
) -> None:
    cluster.start_core()
    cluster.start("agent-runner")
    repo = make_repo(tmp_path / "user", FILES)
    req = await submit(
        client,
        submit_request(
            repo,
            GOAL,
            {"default": {"steps": steps}},
            limits=s.Limits(story_timeout_s=120, stall_timeout_s=3, retries=0),
        ),
    )
    final = await wait_final(client, cluster, req.run_id)
    assert final.state == "failed"
    assert expected in (final.story("S1").reason or ""), final.story("S1").reason
    assert agent_groups_alive(cluster) == []


async def test_flooding_agent_keeps_runner_memory_bounded(
    cluster: Cluster, client: Bus, tmp_path: Path
) -> None:
    cluster.start_core()
    runner = cluster.start("agent-runner")
    repo = make_repo(tmp_path / "user", FILES)
    await asyncio.sleep(2)
    baseline = runner.peak_rss_mb()
    flood = {
        "default": {
            "steps": [
                {"flood": {"lines": 400, "bytes": 1_000_000}},
                {"flood": {"lines": 20, "bytes": 9_000_000}},
                {"write": "app.py", "content": "VALUE = 1\n"},
            ]
        }
    }
    req = await submit(client, submit_request(repo, GOAL, flood))
    final = await wait_final(client, cluster, req.run_id, timeout=180)
    assert final.state == "delivered", final.reason
    growth = runner.peak_rss_mb() - baseline
    assert growth < 200, f"runner peak memory grew by {growth:.0f} MB for ~580 MB of agent output"
