"""Runs go on while the cluster loses members: kill -9 of the meta leader, of the leader of
BARO_CMD, of BARO_EVT, of the baro_runs bucket, and of the member leading the most, each
restarted on its store; then one member stopped (SIGSTOP) past an election and let go on.

One world serves every fault in turn (the services are started once and never again): a
two-story parallel run is submitted, the fault hits once its first story is running, and
then the run must be delivered with each story integrated exactly once, one delivery, one
branch, every step of its history on the event stream, and every service connected again.
What each failover costs in time is measured by the benchmark (``make bench``), not here.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from baro_shared import schemas as s
from baro_shared.bus import Bus
from tests.cluster.chaos import FAULTS, connected, inject
from tests.cluster.conftest import (
    ClusterWorld,
    fetched_branch,
    parallel_run,
    poll,
    submit_bundle,
)
from tests.conftest import make_repo, run_git
from tests.faults.conftest import events_of, story_commits

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(420)]

STORIES = ("S1", "S2")
# every step a two-story run takes, in the order the run takes them
HISTORY = (
    s.RunSubmitted,
    s.ModeConfirmed,
    s.RunPrepared,
    s.PlanProposed,
    s.PlanAccepted,
    s.StoryStarted,
    s.StoryFinished,
    s.StoryIntegrated,
    s.RunDelivered,
    s.RunFinished,
)
PER_STORY = (s.StoryStarted, s.StoryFinished, s.StoryIntegrated)


async def until(
    bus: Bus, run_id: str, done: object, timeout: float, world: ClusterWorld
) -> s.RunRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = await poll(bus, run_id)
        if rec is not None and done(rec):  # type: ignore[operator]
            return rec
        await asyncio.sleep(0.2)
    rec = await poll(bus, run_id)
    state = rec and (rec.state, [(x.story.id, x.status, x.attempt) for x in rec.stories])
    pytest.fail(f"run {run_id} stuck: {state}\n{world.logs()}")


async def test_runs_survive_leaders_killed_and_a_member_paused(
    cluster: ClusterWorld, client: Bus
) -> None:
    cluster.start_core()
    cluster.start("agent-runner")
    cluster.start("agent-runner")
    services = {p.runner_id for p in cluster.processes}
    report = []
    for fault in FAULTS:
        repo = make_repo(cluster.root / f"user-{fault}", {"README.md": "# app\n"})
        spec = parallel_run(dict.fromkeys(STORIES, 3.0))
        script = spec.pop("script")
        run_id = await submit_bundle(client, repo, "write s1.txt and s2.txt", script, **spec)  # type: ignore[arg-type]
        await until(
            client, run_id, lambda r: any(x.status == "running" for x in r.stories), 90, cluster
        )
        injected = await inject(cluster.nats, fault)
        report.append(injected)
        final = await until(
            client, run_id, lambda r: r.state in s.TERMINAL_RUN_STATES, 180, cluster
        )
        why = f"after {fault} ({injected.member} down)"
        assert final.state == "delivered", f"{why}: {final.state} {final.reason}"

        history = await events_of(client, run_id)
        kinds = [type(e) for e in history]
        names = [k.__name__ for k in kinds]
        at = 0
        for step in HISTORY:  # each step there, in the order the run took them
            assert step in kinds[at:], f"{why}: no {step.__name__} after #{at} in {names}"
            at = kinds.index(step, at)
        for kind in PER_STORY:
            told = sorted(e.story_id for e in history if isinstance(e, kind))  # type: ignore[attr-defined]
            assert set(told) == set(STORIES), f"{why}: {kind.__name__} for {told}"
        integrated = [e.story_id for e in history if isinstance(e, s.StoryIntegrated)]
        assert sorted(integrated) == list(STORIES), f"{why}: integrated {integrated}"
        assert kinds.count(s.RunDelivered) == 1, f"{why}: delivered more than once"

        branch = await fetched_branch(client, cluster, run_id, repo)
        assert run_git(repo, "branch", "--list", "baro/*").split() == [branch], why
        base = run_git(repo, "rev-parse", "main")
        assert sorted(story_commits(repo, branch, base)) == list(STORIES), why

        # the same processes, never restarted, all connected to the cluster again
        assert all(p.proc is not None and p.proc.poll() is None for p in cluster.processes), why
        for _ in range(60):
            if services <= connected(cluster.nats):
                break
            await asyncio.sleep(0.5)
        assert services <= connected(cluster.nats), f"{why}: {services - connected(cluster.nats)}"
    print("\n".join(f"{r.fault}: {r.member} down, new leader in {r.leader_back_s}" for r in report))
