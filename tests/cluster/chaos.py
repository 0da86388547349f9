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
from baro_shared.embedded import EmbeddedNats, NatsCluster

FAULTS = ("meta", t.CMD_STREAM, t.EVT_STREAM, f"KV_{t.RUNS_BUCKET}", "most", "pause")
DOWN_S = 2.0  # how long a killed member stays down before it is restarted
# longer than nats-server's longest election timeout (9 s): the others elect without it
PAUSE_S = 10.0


@dataclass
class Injected:
    fault: str
    member: str
    # from the fault until every group the member led has another leader (as the other
    # members see it)
    leader_back_s: float | None


def group_leaders(cluster: NatsCluster, skip: str | None = None) -> dict[str, str]:
    """The leader of the meta group (``meta``) and of every stream, as the first member
    that answers sees them (``skip``: a member not to ask, e.g. a paused one)."""
    for node in cluster.nodes:
        if not node.running() or node.server_name == skip:
            continue
        try:
            url = f"{node.monitor_url}/jsz?acc=$G&streams=true"
            with urllib.request.urlopen(url, timeout=2) as resp:
                data = json.load(resp)
        except (OSError, ValueError):
            continue
        out: dict[str, str] = {}
        meta = (data.get("meta_cluster") or {}).get("leader")
        if meta:
            out["meta"] = meta
        for acc in data.get("account_details") or []:
            for stream in acc.get("stream_detail") or []:
                leader = (stream.get("cluster") or {}).get("leader")
                if leader:
                    out[stream["name"]] = leader
        return out
    return {}


def target_of(cluster: NatsCluster, fault: str) -> str:
    """The member a fault takes down: the leader it names, or the one leading the most."""
    now = group_leaders(cluster)
    if fault in ("most", "pause"):
        return Counter(now.values()).most_common(1)[0][0]
    assert fault in now, f"no leader for {fault}: {now}"
    return now[fault]


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    return None


async def inject(cluster: NatsCluster, fault: str) -> Injected:
    """Take the fault's member down and bring it back; returns once it is back."""
    name = await asyncio.to_thread(target_of, cluster, fault)
    node = cluster.node(name)
    led = {
        group
        for group, leader in (await asyncio.to_thread(group_leaders, cluster)).items()
        if leader == name
    }

    async def moved() -> bool:
        now = await asyncio.to_thread(group_leaders, cluster, name)
        return all(now.get(group) not in (None, name) for group in led)

    if fault == "pause":
        node.pause()
        back = await _until(moved, PAUSE_S)
        await asyncio.sleep(max(0.0, PAUSE_S - (back or PAUSE_S)))
        node.resume()
    else:
        await asyncio.to_thread(node.kill)
        back = await _until(moved, 30.0)
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


def consumer_lag(node: EmbeddedNats) -> tuple[bool, int] | None:
    """(is this member the consumer's leader, pending + ack pending) from its ``/jsz``, the
    query KEDA's scaler makes."""
    url = f"{node.monitor_url}/jsz?acc=$G&consumers=true&config=true"
    with urllib.request.urlopen(url, timeout=2) as resp:
        data = json.load(resp)
    for acc in data.get("account_details") or []:
        for stream in acc.get("stream_detail") or []:
            if stream.get("name") != t.CMD_STREAM:
                continue
            for c in stream.get("consumer_detail") or []:
                if c.get("name") == t.RUNNER_CONSUMER:
                    lead = (c.get("cluster") or {}).get("leader") == node.server_name
                    return lead, int(c.get("num_pending", 0)) + int(c.get("num_ack_pending", 0))
    return None


def keda_lag(cluster: NatsCluster) -> int | None:
    """The number KEDA's nats-jetstream scaler acts on: pending + ack pending of the runner
    consumer, from ``/jsz`` of the member leading that consumer (the others lag behind)."""
    for node in cluster.nodes:
        if node.running():
            with contextlib.suppress(OSError, ValueError):
                got = consumer_lag(node)
                if got is not None and got[0]:
                    return got[1]
    return None
