"""Faults on a NatsCluster while runs go on, shared by the failover tests and the bench.

Each fault takes one member down the way a node fails: ``kill -9`` of the meta leader, of
the leader of a stream (``BARO_CMD``, ``BARO_EVT``, the ``baro_runs`` bucket's
``KV_baro_runs``), or of the member that leads the most; then it comes back on its store.
``pause`` stops a member with SIGSTOP for longer than an election takes, then lets it go
on: to everyone else it is partitioned away, and it comes back with a stale view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.embedded import EmbeddedNats, NatsCluster

FAULTS = ("meta", t.CMD_STREAM, t.EVT_STREAM, f"KV_{t.RUNS_BUCKET}", "most", "pause")
DOWN_S = 2.0  # how long a killed member stays down before it is restarted
# longer than nats-server's longest election timeout (9 s): the others elect without it
PAUSE_S = 10.0


@dataclass
class Injected:
    fault: str
    member: str
    # from the fault until the stream (or meta group) it hit has a leader again
    leader_back_s: float | None


def replicated_streams(bus: Bus) -> list[str]:
    topo = bus.topology
    return [
        *(cfg.name for cfg in topo.streams),
        *(f"KV_{kv.bucket}" for kv in topo.kv),
        *(f"OBJ_{obj.bucket}" for obj in topo.objects),
    ]


async def stream_leader(bus: Bus, stream: str) -> str | None:
    with contextlib.suppress(Exception):
        info = await bus.js.stream_info(stream)
        return info.cluster.leader if info.cluster else None
    return None


async def leaders(bus: Bus, cluster: NatsCluster) -> Counter[str]:
    """How many groups (the meta group and every stream) each member leads."""
    counts: Counter[str] = Counter()
    meta = await asyncio.to_thread(cluster.meta_leader)
    if meta:
        counts[meta] += 1
    for stream in replicated_streams(bus):
        leader = await stream_leader(bus, stream)
        if leader:
            counts[leader] += 1
    return counts


async def target_of(bus: Bus, cluster: NatsCluster, fault: str) -> str:
    if fault == "meta":
        leader = await asyncio.to_thread(cluster.meta_leader)
    elif fault in ("most", "pause"):
        leader = (await leaders(bus, cluster)).most_common(1)[0][0]
    else:
        leader = await stream_leader(bus, fault)
    assert leader is not None, f"no leader for {fault}"
    return leader


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    return None


async def inject(bus: Bus, cluster: NatsCluster, fault: str) -> Injected:
    """Take the fault's member down and bring it back; returns once it is back."""
    name = await target_of(bus, cluster, fault)
    node = cluster.node(name)
    watched = "meta" if fault in ("meta", "most", "pause") else fault

    async def new_leader() -> bool:
        if watched == "meta":
            leader = await asyncio.to_thread(cluster.meta_leader)
        else:
            leader = await stream_leader(bus, watched)
        return leader is not None and leader != name

    if fault == "pause":
        node.pause()
        back = await _until(new_leader, PAUSE_S)
        await asyncio.sleep(max(0.0, PAUSE_S - (back or PAUSE_S)))
        node.resume()
    else:
        await asyncio.to_thread(node.kill)
        back = await _until(new_leader, 30.0)
        await asyncio.sleep(max(0.0, DOWN_S - (back or 0.0)))
        await asyncio.to_thread(node.start)
    return Injected(fault, name, back)


def connection_names(node: EmbeddedNats) -> set[str]:
    """The names of the clients connected to one member (``/connz``)."""
    with urllib.request.urlopen(f"{node.monitor_url}/connz?limit=1024", timeout=2) as resp:
        data = json.load(resp)
    return {c.get("name", "") for c in data.get("connections") or []}


def connected(cluster: NatsCluster) -> set[str]:
    names: set[str] = set()
    for node in cluster.nodes:
        if node.running():
            with contextlib.suppress(OSError, ValueError):
                names |= connection_names(node)
    return names
