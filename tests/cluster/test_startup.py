"""A service that starts while the cluster cannot answer JetStream: its meta leader just
killed, and back on its store a moment later (what ``baro up --cluster`` and a rolling
restart meet). The service's creation of streams and buckets waits for the new leader
instead of failing at its first unanswered request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baro_shared import topology as t
from baro_shared.bus import connect
from baro_shared.embedded import EmbeddedNats, NatsCluster
from baro_shared.settings import Settings
from tests.cluster.conftest import REPLICAS

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

DOWN_S = 3.0  # long enough for several unanswered requests of a short timeout


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats", size=3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_streams_are_made_once_a_new_meta_leader_answers(nats: NatsCluster) -> None:
    leader = nats.node(nats.wait_meta_leader())
    survivors = ",".join(node.url for node in nats.nodes if node is not leader)
    settings = Settings(nats_url=survivors, replicas=REPLICAS)
    topo = t.build_topology(settings)
    nc = await connect(settings, "starting-service")
    try:
        leader.kill()
        back = asyncio.create_task(_restart_after(leader, DOWN_S))
        # a short request timeout: each unanswered request fails fast, as a slow election
        # would fail the service's longer one
        await t.ensure_topology(nc.jetstream(timeout=1.0), topo)
        await back
        js = nc.jetstream(timeout=10.0)
        for cfg in topo.streams:
            info = await js.stream_info(cfg.name)
            assert info.config.num_replicas == REPLICAS, cfg.name
        for spec in topo.consumers:
            assert (await js.consumer_info(spec.stream, spec.name)).name == spec.name
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def test_it_gives_up_after_its_settling_time(nats: NatsCluster) -> None:
    for node in nats.nodes[1:]:
        node.kill()  # one member of three: no quorum, nothing will ever answer
    settings = Settings(nats_url=nats.nodes[0].url, replicas=REPLICAS)
    nc = await connect(settings, "starting-service")
    try:
        with pytest.raises(t.UNSETTLED):
            await t.ensure_topology(
                nc.jetstream(timeout=0.5),
                t.build_topology(settings),
                deadline=time.monotonic() + 3.0,
            )
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _restart_after(node: EmbeddedNats, delay: float) -> None:
    await asyncio.sleep(delay)
    await asyncio.to_thread(node.restart)
