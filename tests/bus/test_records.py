"""Listing run records: every record is listed on a fresh connection, deleted ones are not."""

from __future__ import annotations

from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.bus import Bus
from baro_shared.settings import Settings

REPO = s.RepoSource(kind="path", location="/src/app", commit="base")


def record(run_id: str) -> s.RunRecord:
    request = s.RunSubmitted(run_id=run_id, goal="fix a.py", repo=REPO, backend="scripted")
    return s.RunRecord(run_id=run_id, request=request)


async def test_a_fresh_reader_lists_every_record_every_time(settings: Settings) -> None:
    writer = await Bus.open(settings, "records-writer")
    try:
        assert await writer.list_records() == []
        await writer.create_record(record("r-one"))
        # a single key is where the watcher-based listing lost its race most often
        for _ in range(40):
            reader = await Bus.open(settings, "records-reader", ensure=False)
            try:
                assert [r.run_id for r in await reader.list_records()] == ["r-one"]
            finally:
                await reader.close()
        await writer.create_record(record("r-two"))
        await writer.runs.delete(t.run_key("r-one"))
        assert [r.run_id for r in await writer.list_records()] == ["r-two"]
    finally:
        await writer.close()
