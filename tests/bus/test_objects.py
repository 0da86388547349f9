"""Object store helpers: rewriting the same content is a no-op (a reader is never stranded)."""

from __future__ import annotations

from pathlib import Path

from baro_shared.bus import Bus
from baro_shared.settings import Settings


async def test_putting_the_same_content_again_keeps_the_stored_object(
    settings: Settings, tmp_path: Path
) -> None:
    bus = await Bus.open(settings, "objects-test")
    try:
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
    finally:
        await bus.close()
