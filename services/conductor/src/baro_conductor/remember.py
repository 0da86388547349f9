"""Writing a finished run into its repository's history (KV, compare-and-swap)."""

from __future__ import annotations

import logging

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from baro_conductor import history
from baro_conductor.core import repo_key
from baro_shared import schemas as s
from baro_shared import topology as t

log = logging.getLogger(__name__)

MAX_CAS_ROUNDS = 20


async def remember_run(kv: KeyValue, record: s.RunRecord) -> bool:
    """Add a finished run to the history; False when it was there already or is not kept.

    Another conductor may write the same key at the same time: every write is a
    compare-and-swap on the revision read, retried on conflict, and a run already in the
    history is not added twice.
    """
    run = history.past_run(record)
    if run is None:
        return False
    key = t.history_key(repo_key(record.request.repo))
    for _ in range(MAX_CAS_ROUNDS):
        current, revision = await _read(kv, key)
        updated = history.with_run(current, run)
        if updated is None:
            return False
        try:
            if revision is None:
                await kv.create(key, s.encode(updated))
            else:
                await kv.update(key, s.encode(updated), last=revision)
            return True
        except KeyWrongLastSequenceError:
            continue
    log.warning("gave up recording run %s in the history: too many concurrent writers", run.run_id)
    return False


async def _read(kv: KeyValue, key: str) -> tuple[s.RepoHistory | None, int | None]:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, None
    if not entry.value:
        return None, entry.revision
    try:
        return s.history_decoder.decode(entry.value), entry.revision
    except msgspec.DecodeError:
        log.warning("replacing an unreadable history under %s", key)
        return None, entry.revision
