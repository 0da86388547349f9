"""Private temporary directories for a service's asyncio handlers.

``tempfile.TemporaryDirectory`` makes and deletes its directory on the calling thread.
Every service of a local run shares one event loop, and on a busy disk a single
``rmdir`` waits for the filesystem's journal (10 ms and more while git and nats-server
write beside it), stalling every other story's handler meanwhile: here both happen on a
worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path


@contextlib.asynccontextmanager
async def scratch_dir(prefix: str) -> AsyncIterator[Path]:
    """A fresh private directory, removed with its contents on the way out. The removal
    runs to its end even when the awaiting task is cancelled meanwhile."""
    path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)
