"""BARO_NATS_URL naming a cluster: every member comma-separated, any one answering will do."""

from __future__ import annotations

import pytest

from baro_shared.bus import Bus, BusUnavailable, server_urls
from baro_shared.embedded import free_port
from baro_shared.settings import Settings


def test_a_cluster_url_lists_each_member() -> None:
    assert server_urls("nats://a:4222, nats://b:4222,,nats://c:4222 ") == [
        "nats://a:4222",
        "nats://b:4222",
        "nats://c:4222",
    ]
    assert server_urls("nats://one:4222") == ["nats://one:4222"]


async def test_a_member_that_is_down_does_not_stop_the_connection(settings: Settings) -> None:
    down = f"nats://127.0.0.1:{free_port()}"
    listed = settings.model_copy(update={"nats_url": f"{down},{settings.nats_url}"})
    bus = await Bus.open(listed, "cluster-urls")
    try:
        assert bus.nc.connected_url is not None
        assert bus.nc.connected_url.port == int(settings.nats_url.rsplit(":", 1)[1])
    finally:
        await bus.close()


async def test_no_member_answering_is_one_clear_error(settings: Settings) -> None:
    first, second = (f"nats://127.0.0.1:{free_port()}" for _ in range(2))
    nowhere = settings.model_copy(update={"nats_url": f"{first},{second}"})
    with pytest.raises(BusUnavailable, match="cannot reach NATS"):
        await Bus.open(nowhere, "cluster-urls")
