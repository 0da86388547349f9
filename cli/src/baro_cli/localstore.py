"""This machine's runs while no baro serves them.

A local run keeps its history in the embedded server's JetStream store under
``$BARO_STATE_DIR/nats``; once ``baro run`` has ended, nothing serves it. ``baro runs``,
``status`` and ``logs`` then serve it themselves for the moment they read: they take the
store's lock (so no other baro process uses the store meanwhile), start a nats-server on it
with a fresh token and no services, read, and stop it. Nothing runs a story or changes a
run while they read; the server only applies the streams' own retention, as any start does.

When a ``baro run`` or ``baro up`` is serving the store, the commands use that server
instead (``app.embedded_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

from baro_cli.app import embedded_url
from baro_cli.stack import READER, EmbeddedStore, clients_of
from baro_cli.validate import UserError
from baro_shared.embedded import EmbeddedNats, new_token
from baro_shared.settings import Settings


def wanted(nats_url: str | None, settings: Settings) -> bool:
    """Whether a command with these options reads this machine's store itself: no NATS
    named (flag or ``BARO_NATS_URL``) and no local baro serving it now."""
    return nats_url is None and "BARO_NATS_URL" not in os.environ and not embedded_url(settings)


def has_runs(settings: Settings) -> bool:
    return (EmbeddedStore(settings).root / "jetstream").is_dir()


@contextlib.asynccontextmanager
async def served(
    settings: Settings, *, wait_s: float = 0.0, command: str = READER
) -> AsyncIterator[Settings]:
    """``settings`` for a server on this machine's store, running until the block ends;
    ``wait_s``: how long to wait for a baro that is stopping to let go of the store
    (another command reading it is waited for in any case)."""
    store = EmbeddedStore(settings)
    deadline = time.monotonic() + wait_s
    root = await store.acquire_after_readers(command)
    while root is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        root = store.acquire(command)
    if root is None:
        raise UserError(
            "another baro on this machine is starting or stopping its server: try again in a moment"
        )
    try:
        token = new_token()
        nats = EmbeddedNats(store_dir=root, token=token, inherit_fds=store.inherited_fds())
        nats.launch()  # from this thread: the server dies with it (see baro_shared.processes)
        store.record_server(nats.pid)
        try:
            await asyncio.to_thread(nats.wait_ready)
        except BaseException:
            nats.stop()
            raise
        try:
            yield clients_of(settings, nats, token)[0]  # other baro commands may read too
        finally:
            await asyncio.to_thread(nats.stop)
    finally:
        store.release()
