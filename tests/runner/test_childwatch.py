"""Children's ends are read from pidfds, on whichever loop started them, with no thread
per child (Python 3.11; 3.12 does this itself)."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from baro_shared.childwatch import watch_children_by_pidfd


async def _exit_codes() -> list[int | None]:
    async def one(code: str) -> int | None:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        return await proc.wait()

    threads = threading.active_count()

    async def killed() -> int | None:
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        assert threading.active_count() == threads  # no thread waits for the child
        proc.kill()
        return await proc.wait()

    return await asyncio.gather(*(one(f"raise SystemExit({i % 4})") for i in range(12)), killed())


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python watches children by pidfd")
def test_children_of_successive_loops_and_of_a_thread_s_loop_report_their_exit() -> None:
    assert watch_children_by_pidfd()
    assert watch_children_by_pidfd()  # once is enough; again changes nothing
    expected = [i % 4 for i in range(12)] + [-9]
    assert asyncio.run(_exit_codes()) == expected
    assert asyncio.run(_exit_codes()) == expected
    in_thread: list[list[int | None]] = []
    worker = threading.Thread(target=lambda: in_thread.append(asyncio.run(_exit_codes())))
    worker.start()
    worker.join(60)
    assert in_thread == [expected]
