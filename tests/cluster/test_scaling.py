"""The scaling signal on a cluster: the lag KEDA's nats-jetstream scaler reads (pending +
ack pending of the runner consumer, from ``/jsz`` of that consumer's leader) counts a
run's stories from the moment they are dispatched with no runner up (KEDA scales from
zero on it), keeps counting them while they run (the autoscaler never removes a runner
under running work), and a runner scaled down mid-story (SIGTERM, as Kubernetes does)
hands its stories back at once to the runner that is left."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from baro_shared import topology as t
from baro_shared.bus import Bus
from tests.cluster.chaos import consumer_lag, keda_lag
from tests.cluster.conftest import ClusterWorld, parallel_run, poll, submit_bundle
from tests.conftest import make_repo
from tests.faults.conftest import wait_final

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


async def until_lag(cluster: ClusterWorld, want: int, what: str) -> None:
    for _ in range(300):
        if keda_lag(cluster.nats) == want:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"KEDA's lag is {keda_lag(cluster.nats)}, not {want}, {what}\n{cluster.logs()}")


def test_the_scaled_object_reads_the_runner_consumer() -> None:
    scaled = yaml.safe_load((ROOT / "deploy/k8s/base/scaledobject.yaml").read_text())
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"]["stream"] == t.CMD_STREAM
    assert trigger["metadata"]["consumer"] == t.RUNNER_CONSUMER


async def test_lag_counts_waiting_and_running_stories_and_a_scaled_down_runner_hands_back(
    cluster: ClusterWorld, client: Bus
) -> None:
    cluster.start_core()
    repo = make_repo(cluster.root / "user", {"README.md": "# app\n"})
    spec = parallel_run({"S1": 8.0, "S2": 8.0})
    script = spec.pop("script")
    run_id = await submit_bundle(client, repo, "two stories", script, **spec)  # type: ignore[arg-type]

    # no runner anywhere: both stories wait, and that is what KEDA sees
    await until_lag(cluster, 2, "with two stories waiting for a runner")
    info = await client.js.consumer_info(t.CMD_STREAM, t.RUNNER_CONSUMER)
    assert (info.num_pending, info.num_ack_pending) == (2, 0)
    followers = [consumer_lag(n) for n in cluster.nats.nodes]
    assert sum(1 for f in followers if f and f[0]) == 1, "exactly one member leads the consumer"

    first = cluster.start("agent-runner")
    for _ in range(600):
        rec = await poll(client, run_id)
        if rec and all(x.status == "running" for x in rec.stories):
            break
        await asyncio.sleep(0.1)
    assert rec and {x.runner for x in rec.stories} == {first.runner_id}
    await until_lag(cluster, 2, "with both stories running")
    info = await client.js.consumer_info(t.CMD_STREAM, t.RUNNER_CONSUMER)
    assert (info.num_pending, info.num_ack_pending) == (0, 2)

    # scale down to the other runner: the one removed hands its stories back at once
    second = cluster.start("agent-runner")
    await asyncio.sleep(1.0)
    assert first.stop(timeout=30) == 0, "a runner scaled down exits cleanly"
    for _ in range(100):  # well inside the 10 s ack wait: handed back, not timed out
        rec = await poll(client, run_id)
        if rec and all(x.runner == second.runner_id and x.attempt == 2 for x in rec.stories):
            break
        await asyncio.sleep(0.1)
    assert rec and all(x.runner == second.runner_id and x.attempt == 2 for x in rec.stories), [
        (x.story.id, x.runner, x.attempt) for x in rec.stories
    ]
    assert keda_lag(cluster.nats) == 2, "the handed-back stories still count"

    final = await wait_final(client, cluster, run_id, timeout=120)
    assert final.state == "delivered", final.reason
    await until_lag(cluster, 0, "once the run is done")
