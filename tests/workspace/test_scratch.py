"""Scratch directories are made and removed off the event loop, whatever happens inside."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from baro_shared.scratch import scratch_dir


async def test_a_scratch_directory_is_private_and_gone_afterwards() -> None:
    async with scratch_dir("baro-test-") as tmp:
        assert tmp.is_dir() and tmp.name.startswith("baro-test-")
        assert tmp.stat().st_mode & 0o777 == 0o700
        (tmp / "nested").mkdir()
        (tmp / "nested" / "file").write_text("x")
    assert not tmp.exists()


async def test_it_is_removed_when_the_body_fails_or_is_cancelled() -> None:
    seen: list[Path] = []
    with pytest.raises(RuntimeError):
        async with scratch_dir("baro-test-") as tmp:
            seen.append(tmp)
            raise RuntimeError("boom")
    started = asyncio.Event()

    async def hold() -> None:
        async with scratch_dir("baro-test-") as tmp:
            seen.append(tmp)
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen and not any(os.path.exists(p) for p in seen)
