"""Object store helpers: rewriting the same content is a no-op (a reader is never stranded);
what comes back is what was stored, or an error."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from baro_shared import topology as t
from baro_shared.bus import Bus, ObjectCorrupted
from baro_shared.settings import Settings


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    bus = await Bus.open(settings, "objects-test")
    try:
        yield bus
    finally:
        await bus.close()


async def test_putting_the_same_content_again_keeps_the_stored_object(
    bus: Bus, tmp_path: Path
) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 300_000)
    await bus.put_file("runs/r/a.bin", src)
    first = await bus.objects.get_info("runs/r/a.bin")
    await bus.put_file("runs/r/a.bin", src)
    again = await bus.objects.get_info("runs/r/a.bin")
    assert again.nuid == first.nuid, "identical content was written again"
    src.write_bytes(b"y" * 10)
    await bus.put_file("runs/r/a.bin", src)
    changed = await bus.objects.get_info("runs/r/a.bin")
    assert changed.nuid != first.nuid and changed.size == 10
    out = tmp_path / "out.bin"
    await bus.get_file("runs/r/a.bin", out)
    assert out.read_bytes() == b"y" * 10


@pytest.mark.parametrize("size", [0, 1, 131_072, 131_073, 700_001])
async def test_an_object_comes_back_byte_for_byte_in_one_chunk_or_many(
    bus: Bus, tmp_path: Path, size: int
) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(size))
    await bus.put_file("runs/r/a.bin", src)
    out = tmp_path / "out.bin"
    await bus.get_file("runs/r/a.bin", out)
    assert out.read_bytes() == src.read_bytes()


async def test_a_chunk_that_does_not_match_its_digest_is_refused(bus: Bus, tmp_path: Path) -> None:
    src = tmp_path / "a.bundle"
    src.write_bytes(b"the runner's bundle")
    await bus.put_file("runs/r/a.bundle", src)
    info = await bus.objects.get_info("runs/r/a.bundle")
    # another chunk written under the object's subject after it was stored
    await bus.js.publish(t.object_chunk_subject(info.nuid), b"something else")
    with pytest.raises(ObjectCorrupted):
        await bus.get_file("runs/r/a.bundle", tmp_path / "out.bundle")


async def _chunk_subjects(bus: Bus) -> dict[str, int]:
    info = await bus.js.stream_info(t.OBJECTS_STREAM, subjects_filter=t.object_chunk_subject(">"))
    return dict(info.state.subjects or {})


@pytest.mark.parametrize("size", [0, 5, 131_072])
async def test_a_small_new_object_reads_back_through_the_object_store_itself(
    bus: Bus, tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "a.bundle"
    src.write_bytes(os.urandom(size))

    async def library_put(*args: object, **kwargs: object) -> None:
        raise AssertionError("a new small object is written in one round trip, not by put")

    monkeypatch.setattr(bus.objects, "put", library_put)
    await bus.put_file("runs/r/a.bundle", src, description="a story's result")
    monkeypatch.undo()
    got = await bus.objects.get("runs/r/a.bundle")  # the library's own reader
    assert got.data == src.read_bytes()
    assert got.info.size == size and got.info.chunks == (1 if size else 0)
    assert await bus.object_description("runs/r/a.bundle") == "a story's result"
    assert len(await _chunk_subjects(bus)) == (1 if size else 0)


async def test_a_small_object_written_again_leaves_no_stray_chunk(bus: Bus, tmp_path: Path) -> None:
    src = tmp_path / "a.bundle"
    src.write_bytes(b"first")
    await bus.put_file("runs/r/a.bundle", src)
    first = await bus.objects.get_info("runs/r/a.bundle")
    await bus.put_file("runs/r/a.bundle", src)  # a redelivered command's upload
    assert (await bus.objects.get_info("runs/r/a.bundle")).nuid == first.nuid
    src.write_bytes(b"second")
    await bus.put_file("runs/r/a.bundle", src)
    out = tmp_path / "out.bundle"
    await bus.get_file("runs/r/a.bundle", out)
    assert out.read_bytes() == b"second"
    assert list(await _chunk_subjects(bus)) == [
        t.object_chunk_subject((await bus.objects.get_info("runs/r/a.bundle")).nuid)
    ]


async def test_two_uploads_of_one_small_object_at_once_store_it_once(
    bus: Bus, tmp_path: Path
) -> None:
    src = tmp_path / "a.bundle"
    src.write_bytes(b"the same result, delivered twice")
    await asyncio.gather(*(bus.put_file("runs/r/a.bundle", src) for _ in range(4)))
    out = tmp_path / "out.bundle"
    await bus.get_file("runs/r/a.bundle", out)
    assert out.read_bytes() == src.read_bytes()
    assert len(await _chunk_subjects(bus)) == 1


async def test_a_small_object_can_be_stored_again_after_it_was_deleted(
    bus: Bus, tmp_path: Path
) -> None:
    src = tmp_path / "a.bundle"
    src.write_bytes(b"before the run was cleaned")
    await bus.put_file("runs/r/a.bundle", src)
    assert await bus.delete_objects("runs/r/") == 1
    src.write_bytes(b"after")
    await bus.put_file("runs/r/a.bundle", src)
    out = tmp_path / "out.bundle"
    await bus.get_file("runs/r/a.bundle", out)
    assert out.read_bytes() == b"after"
    assert len(await _chunk_subjects(bus)) == 1
