"""The conductor's handler on a real bus: the record it wrote last is where its next event
starts, and a record another conductor wrote meanwhile is read, never missed."""

from __future__ import annotations

from baro_conductor.service import Conductor
from baro_shared import schemas as s
from baro_shared.bus import Bus
from baro_shared.settings import Settings
from tests.conductor.test_core import RUN, decided, submitted


async def test_the_record_written_last_is_not_read_back(settings: Settings) -> None:
    bus = await Bus.open(settings, "conductor-test")
    reads: list[str] = []
    read = bus.get_record

    async def counted(run_id: str) -> tuple[s.RunRecord, int] | None:
        reads.append(run_id)
        return await read(run_id)

    bus.get_record = counted  # type: ignore[method-assign]
    try:
        conductor = Conductor(bus, settings)
        await conductor.apply(submitted(confirm="picker"))
        await conductor.apply(decided("focused"))
        await conductor.apply(s.ModeConfirmed(run_id=RUN, mode="sequential", source="user"))
        assert reads == [RUN], "only the first event read the record"
        record, _ = await read(RUN)
        assert record.mode == "sequential" and record.state != "awaiting_confirmation"
    finally:
        await bus.close()


async def test_a_record_another_conductor_moved_on_is_read_again(settings: Settings) -> None:
    bus_a = await Bus.open(settings, "conductor-a")
    bus_b = await Bus.open(settings, "conductor-b")
    try:
        first, second = Conductor(bus_a, settings), Conductor(bus_b, settings)
        await first.apply(submitted(confirm="picker"))  # the first keeps what it wrote
        await second.apply(decided("focused"))  # the second moves the run on
        assert (await bus_a.get_record(RUN))[0].state == "awaiting_confirmation"  # type: ignore[index]
        # on the first one's own copy the run is not waiting for a mode yet: this would be
        # nothing to do there, and the confirmation would be lost
        await first.apply(s.ModeConfirmed(run_id=RUN, mode="sequential", source="user"))
        record, _ = await bus_a.get_record(RUN)  # type: ignore[misc]
        assert record.mode == "sequential" and record.mode_source == "user"
        # and a change decided on a copy that is out of date is not written over the other
        await second.apply(s.CancelRequested(run_id=RUN, reason="changed my mind"))
        await first.apply(s.CancelRequested(run_id=RUN, reason="changed my mind"))
        record, _ = await bus_a.get_record(RUN)  # type: ignore[misc]
        assert record.mode == "sequential" and record.state == "cancelled"
    finally:
        await bus_a.close()
        await bus_b.close()
