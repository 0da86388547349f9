"""Thin helpers over nats.py: connect, publish with a Nats-Msg-Id, consume a durable pull
consumer with heartbeats, and read/write the run record with compare-and-swap.

At-least-once is the contract: a handler may see a message twice, so handlers check
state before acting and every side effect is fenced by a KV revision.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import msgspec
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, Header, ObjectInfo, ObjectMeta, ObjectMetaOptions
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from nats.nuid import NUID

from baro_shared import metrics
from baro_shared import schemas as s
from baro_shared import topology as t
from baro_shared.redact import redact, scrub
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

M = TypeVar("M")


OBJECT_TIMEOUT_S = 120.0
ACK_TIMEOUT_S = 10.0  # JetStream's answer to a publish
ONE_CHUNK = 128 * 1024  # the object store's chunk (nats.py's default)
WRONG_LAST_SEQUENCE = 10071  # JetStream's error for a failed expected-last-sequence check
_NUID = NUID()


def _read_small(path: Path, limit: int) -> tuple[bytes | None, str]:
    """A file's content when it is at most ``limit`` bytes (else None), and the object
    store's digest of it: ``SHA-256=<urlsafe base64>``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        head = fh.read(limit + 1)
        h.update(head)
        if len(head) <= limit:
            return head, _digest_text(h)
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return None, _digest_text(h)


def _digest_text(h: Any) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(h.digest()).decode()


def _matches_digest(data: bytes, digest: str | None) -> bool:
    """Whether ``data`` is what an object's ``SHA-256=<urlsafe base64>`` digest names."""
    kind, _, encoded = (digest or "").partition("=")
    if kind.upper() != "SHA-256":
        return False
    try:
        return base64.urlsafe_b64decode(encoded) == hashlib.sha256(data).digest()
    except ValueError:
        return False


class ObjectCorrupted(RuntimeError):
    """An object's content does not match the digest stored with it."""


class BusUnavailable(RuntimeError):
    """The NATS server could not be reached."""


class BusRefused(BusUnavailable):
    """The NATS server refused the credentials (its message says what to set)."""


def bus_problem(exc: BusUnavailable, advice: str) -> str:
    """The one line a user gets: a refusal says itself what to do, anything else gets
    ``advice`` (where NATS is expected)."""
    return str(exc) if isinstance(exc, BusRefused) else f"{exc}: {advice}"


# what a nats-server answers a client whose credentials it does not accept (not its
# "Authentication Timeout": a client too slow to say who it is may be let in next time)
_REFUSALS = ("authorization violation", "authentication expired", "authentication revoked")


def server_urls(nats_url: str) -> list[str]:
    """The servers of ``BARO_NATS_URL``: one URL, or a cluster's members comma-separated."""
    return [url.strip() for url in nats_url.split(",") if url.strip()]


async def connect(settings: Settings, name: str) -> NATS:
    """Connect to ``settings.nats_url`` (any member of a cluster) and reconnect forever
    after a drop, to whichever member answers."""
    servers = server_urls(settings.nats_url)
    opts: dict[str, Any] = {
        "servers": servers,
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": settings.connect_timeout_s,
        "allow_reconnect": True,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        "disconnected_cb": _log_disconnected,
        "reconnected_cb": _log_reconnected,
    }
    if settings.nats_user:
        opts["user"] = settings.nats_user
        opts["password"] = (
            settings.nats_password.get_secret_value() if settings.nats_password else ""
        )
    if settings.nats_token:
        opts["token"] = settings.nats_token.get_secret_value()
    if settings.nats_creds:
        opts["user_credentials"] = str(settings.nats_creds)
    # reconnect forever after a drop, but fail fast when the server is not there at all,
    # and when it refuses the credentials (the client would try them again forever)
    await _probe_any(servers, settings.connect_timeout_s)
    refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        if any(word in str(exc).lower() for word in _REFUSALS) and not refused.done():
            refused.set_result(str(exc).removeprefix("nats: ").strip("'"))
        await _log_error(exc)

    connecting = asyncio.ensure_future(nats.connect(**opts, error_cb=on_error))
    try:
        await asyncio.wait(
            {connecting, refused},
            timeout=settings.connect_timeout_s * 3,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            if refused.done():
                raise BusRefused(
                    f"NATS at {settings.nats_url} refused baro's credentials "
                    f"({refused.result()}): set BARO_NATS_TOKEN, BARO_NATS_USER and "
                    "BARO_NATS_PASSWORD, or BARO_NATS_CREDS to what the server expects"
                )
            raise TimeoutError
        return connecting.result()
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        raise BusUnavailable(
            f"cannot reach NATS at {settings.nats_url}: {exc or type(exc).__name__}"
        ) from exc


async def _probe_any(urls: list[str], timeout: float) -> None:
    """Pass when one of ``urls`` accepts a connection; else raise the first one's reason."""
    first: BusUnavailable | None = None
    for url in urls or ["nats://127.0.0.1:4222"]:
        try:
            await _probe(url, timeout)
            return
        except BusUnavailable as exc:
            first = first or exc
    assert first is not None
    raise first


async def _probe(url: str, timeout: float) -> None:
    parsed = urlsplit(url if "://" in url else f"nats://{url}")
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=timeout)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise BusUnavailable(f"cannot reach NATS at {url} ({reason})") from None
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def _log_error(exc: Exception) -> None:
    log.debug("nats error: %s", exc)


async def _log_disconnected() -> None:
    log.info("disconnected from NATS")


async def _log_reconnected() -> None:
    log.info("reconnected to NATS")


_releasing: set[asyncio.Task[None]] = set()


def release_later(js: JetStreamContext, sub: JetStreamContext.PushSubscription) -> None:
    """Unsubscribe ``sub`` and delete its consumer, apart from the caller: a reader closed
    because its client left is cancelled, and under anyio every await of a cancelled
    stream is cancelled again, so the cleanup must not be one of them. Without the delete
    the server keeps the consumer (and sends to it) until its inactivity threshold."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # the loop is gone: the server drops the consumer when idle
        return
    task = loop.create_task(_release(js, sub))
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


async def _release(js: JetStreamContext, sub: JetStreamContext.PushSubscription) -> None:
    with contextlib.suppress(Exception):
        info = await sub.consumer_info()
        await sub.unsubscribe()
        await js.delete_consumer(info.stream_name, info.name)
    with contextlib.suppress(Exception):
        await sub.unsubscribe()


class Listening(Generic[M]):
    """The messages of a subscription made before the first read. Closing it ends the
    subscription even when nothing was read: the reading generator's own cleanup runs
    only once it has started, and an HTTP client that leaves before its first line may
    never have it started."""

    def __init__(
        self,
        js: JetStreamContext,
        sub: JetStreamContext.PushSubscription,
        messages: AsyncGenerator[M, None],
    ) -> None:
        self._js = js
        self._sub = sub
        self._messages = messages

    def __aiter__(self) -> Listening[M]:
        return self

    async def __anext__(self) -> M:
        return await anext(self._messages)

    async def aclose(self) -> None:
        release_later(self._js, self._sub)
        await self._messages.aclose()


@dataclass
class Bus:
    """A connection plus the JetStream handles every service uses."""

    nc: NATS
    js: JetStreamContext
    settings: Settings
    topology: t.Topology
    runs: KeyValue
    history: KeyValue
    claims: KeyValue
    objects: ObjectStore

    @classmethod
    async def open(cls, settings: Settings, name: str, *, ensure: bool = True) -> Bus:
        nc = await connect(settings, name)
        try:
            js = nc.jetstream(timeout=ACK_TIMEOUT_S)
            topo = t.build_topology(settings)
            deadline = time.monotonic() + t.SETTLE_S
            if ensure:
                await t.ensure_topology(js, topo, deadline=deadline)
            runs = await t.settled(lambda: js.key_value(t.RUNS_BUCKET), deadline)
            history = await t.settled(lambda: js.key_value(t.HISTORY_BUCKET), deadline)
            claims = await t.settled(lambda: js.key_value(t.CLAIMS_BUCKET), deadline)
            objects = await t.settled(lambda: js.object_store(t.OBJECTS_BUCKET), deadline)
        except Exception:
            await nc.close()
            raise
        return cls(nc, js, settings, topo, runs, history, claims, objects)

    async def close(self) -> None:
        if self.nc.is_closed:
            return
        with contextlib.suppress(Exception):
            await self.nc.drain()
        with contextlib.suppress(Exception):
            await self.nc.close()

    # ---- publishing

    async def publish(self, msg: s.BusMessage, msg_id: str) -> bool:
        """Publish a message with a Nats-Msg-Id; returns False when the server saw it already.

        Everything published is redacted here (``redact.scrub``): errors and reasons carry
        what git, agents and providers printed, credentials in URLs included."""
        subject = t.subject_for(msg)
        ack = await self.js.publish(
            subject, s.encode(scrub(msg)), headers={Header.MSG_ID: msg_id}, timeout=10
        )
        metrics.published.labels(kind=msg.__struct_config__.tag).inc()
        return not ack.duplicate

    async def publish_agent_event(self, msg: s.AgentEventMsg) -> None:
        """Publish one normalized agent event, redacted (agents echo environments and files)."""
        subject = t.agent_subject(msg.run_id, msg.story_id)
        await self.js.publish(
            subject,
            s.encode(scrub(msg)),
            headers={Header.MSG_ID: f"{msg.run_id}.{msg.story_id}.{msg.attempt}.{msg.seq}"},
            timeout=10,
        )

    # ---- run record

    async def get_record(self, run_id: str) -> tuple[s.RunRecord, int] | None:
        try:
            entry = await self.runs.get(t.run_key(run_id))
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return s.record_decoder.decode(entry.value), entry.revision or 0

    async def create_record(self, record: s.RunRecord) -> int | None:
        """Create the record; None when it exists already."""
        try:
            return await self.runs.create(t.run_key(record.run_id), s.encode(record))
        except KeyWrongLastSequenceError:
            return None

    async def cas_record(self, record: s.RunRecord, revision: int) -> int | None:
        """Write the record if it is still at ``revision``; None when someone else won."""
        try:
            return await self.runs.update(t.run_key(record.run_id), s.encode(record), last=revision)
        except KeyWrongLastSequenceError:
            metrics.cas_conflicts.labels(bucket=t.RUNS_BUCKET).inc()
            return None

    async def list_records(self) -> list[s.RunRecord]:
        out = []
        for key in await self._run_keys():
            got = await self.get_record(key.removeprefix("run."))
            if got:
                out.append(got[0])
        return out

    async def _run_keys(self) -> list[str]:
        """Every key the runs bucket has held (deleted ones read as absent later).

        Read from the stream's subjects rather than ``KeyValue.keys()``: that one's watcher
        can signal "no more keys" before handling a key the server already delivered,
        and then lists nothing."""
        prefix = f"$KV.{t.RUNS_BUCKET}."
        try:
            info = await self.js.stream_info(f"KV_{t.RUNS_BUCKET}", subjects_filter=f"{prefix}>")
        except NotFoundError:
            return []
        return [subject.removeprefix(prefix) for subject in (info.state.subjects or {})]

    async def claim(self, key: str, owner: str) -> bool:
        """Take ``key`` for ``owner``; False when someone else took it first."""
        try:
            await self.claims.create(key, owner.encode())
            return True
        except KeyWrongLastSequenceError:
            return False

    # ---- objects

    async def put_file(self, name: str, path: Path, *, description: str | None = None) -> None:
        """Store ``path`` as ``name``; a no-op when the same content is already there.
        ``description`` travels in the object's metadata (``object_description``).

        Rewriting an object purges its old chunks, which would strand a reader that has
        just read the old metadata: redelivered commands must not rewrite what they wrote.
        """
        data, digest = await asyncio.to_thread(_read_small, path, ONE_CHUNK)
        if data is not None and await self._create_small(name, data, digest, description):
            return
        with contextlib.suppress(NotFoundError, nats.js.errors.ObjectNotFoundError):
            info = await self.objects.get_info(name)
            if info.digest and info.digest.lower() == digest.lower():
                return
        meta = ObjectMeta(name=name, description=description) if description else None
        with open(path, "rb") as fh:
            await self.objects.put(name, fh, meta=meta)

    async def _create_small(
        self, name: str, data: bytes, digest: str, description: str | None
    ) -> bool:
        """Store a new object of at most one chunk as the object store's ``put`` lays it
        out (ADR-20: its chunk, then its metadata), in one round trip: the chunk's publish
        is not waited for before the metadata's, which goes in only when no object of that
        name exists (an expected last subject sequence of 0). False, with nothing left
        behind, when one does: ``put_file`` then compares and replaces as before. Most
        objects are a story's bundle, new and small, on the path from one story's end to
        the next story's start."""
        nuid = _NUID.next().decode()
        chunks = t.object_chunk_subject(nuid)
        info = ObjectInfo(
            name=name,
            description=description,
            bucket=t.OBJECTS_BUCKET,
            nuid=nuid,
            size=len(data),
            chunks=1 if data else 0,
            mtime=datetime.now(UTC).isoformat(),
            digest=digest,
            options=ObjectMetaOptions(max_chunk_size=ONE_CHUNK),
        )
        # written before the metadata on this connection, so stored before it
        chunk_stored = await self.js.publish_async(chunks, data) if data else None
        try:
            await self.js.publish(
                t.object_meta_subject(name),
                json.dumps(info.as_dict()).encode(),
                headers={Header.ROLLUP: "sub", Header.EXPECTED_LAST_SUBJECT_SEQUENCE: "0"},
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):
                if chunk_stored is not None:
                    await asyncio.wait_for(chunk_stored, ACK_TIMEOUT_S)
                await self.js.purge_stream(t.OBJECTS_STREAM, subject=chunks)
            if isinstance(exc, nats.js.errors.APIError) and exc.err_code == WRONG_LAST_SEQUENCE:
                return False
            raise
        if chunk_stored is not None:
            try:
                await asyncio.wait_for(chunk_stored, ACK_TIMEOUT_S)
            except BaseException:  # a name without its content: take the name back
                with contextlib.suppress(Exception):
                    await self.js.purge_stream(
                        t.OBJECTS_STREAM, subject=t.object_meta_subject(name)
                    )
                raise
        return True

    async def object_description(self, name: str) -> str | None:
        """The description stored with object ``name`` ("" when none), None when there is
        no such object."""
        try:
            info = await self.objects.get_info(name)
        except (NotFoundError, nats.js.errors.ObjectNotFoundError):
            return None
        return info.description or ""

    async def get_file(self, name: str, path: Path, timeout: float = OBJECT_TIMEOUT_S) -> None:
        """Fetch object ``name`` into ``path``; raises TimeoutError instead of waiting forever."""
        await asyncio.wait_for(self._get_file(name, path), timeout=timeout)

    async def _get_file(self, name: str, path: Path) -> None:
        info = await self.objects.get_info(name)
        if info.chunks == 1 and info.nuid and not info.is_link():
            # one chunk (up to 128 KiB: a story's bundle, mostly) is one stream message:
            # read it directly rather than through an ordered consumer made for it
            chunk = await self.js.get_last_msg(t.OBJECTS_STREAM, t.object_chunk_subject(info.nuid))
            data = chunk.data or b""
            if not _matches_digest(data, info.digest):
                raise ObjectCorrupted(f"object {name}: its content does not match its digest")
            path.write_bytes(data)
            return
        with open(path, "wb") as fh:
            await self.objects.get(name, writeinto=fh)

    # ---- watching a run

    async def run_events(
        self, run_id: str, *, follow: bool = True, idle_timeout: float | None = None
    ) -> AsyncIterator[s.Event]:
        """Every event of one run from the start, in stream order; then live ones if ``follow``."""
        async for event in self._replay(
            t.run_events_filter(run_id), s.event_decoder, follow, idle_timeout
        ):
            if event is not None:
                yield event

    async def agent_events(
        self, run_id: str, story_id: str | None = None, *, follow: bool, idle_s: float = 1.0
    ) -> AsyncIterator[s.AgentEventMsg | None]:
        """The normalized agent events of a run (or one story) from the start. Following, a
        ``None`` comes whenever the reader has caught up and after each ``idle_s`` without
        events, so it can decide to stop."""
        async for event in self._replay(
            t.agent_events_filter(run_id, story_id),
            s.agent_event_decoder,
            follow,
            idle_s,
            idle_marks=follow,
        ):
            yield event

    async def live_run_events(self, idle_s: float) -> Listening[s.Event | None]:
        """Every run's events from now on (none of what came before); a ``None`` after
        each ``idle_s`` without one, so the reader can decide to stop. Awaited, it is
        listening already: every event published after this returns comes out of it.
        Close it when done with it, whether it was read or not."""
        sub = await self._subscribe(t.EVERY_RUN_EVENTS_FILTER, DeliverPolicy.NEW)
        return Listening(
            self.js, sub, self._read(sub, s.event_decoder, True, idle_s, idle_marks=True)
        )

    async def _replay(
        self,
        subject_filter: str,
        decoder: msgspec.json.Decoder[M],
        follow: bool,
        idle_timeout: float | None,
        *,
        idle_marks: bool = False,
    ) -> AsyncIterator[M | None]:
        """An ordered consumer from the first message of ``subject_filter``: ``_read``."""
        sub = await self._subscribe(subject_filter, DeliverPolicy.ALL)
        async for message in self._read(sub, decoder, follow, idle_timeout, idle_marks=idle_marks):
            yield message

    async def _subscribe(
        self, subject_filter: str, since: DeliverPolicy
    ) -> JetStreamContext.PushSubscription:
        return await self.js.subscribe(
            subject_filter, ordered_consumer=True, deliver_policy=since, inactive_threshold=300
        )

    async def _read(
        self,
        sub: JetStreamContext.PushSubscription,
        decoder: msgspec.json.Decoder[M],
        follow: bool,
        idle_timeout: float | None,
        *,
        idle_marks: bool = False,
    ) -> AsyncGenerator[M | None, None]:
        """The messages of an ordered consumer's subscription ``sub``. Without ``follow``
        it ends at the last one; it ends after ``idle_timeout`` without messages, unless
        ``idle_marks``, which yields ``None`` then (and when caught up) and goes on."""
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=idle_timeout if idle_timeout else 3600)
                except NatsTimeoutError:
                    if follow and idle_marks:
                        yield None
                        continue
                    if follow and idle_timeout is None:
                        continue
                    return
                try:
                    yield decoder.decode(msg.data)
                except msgspec.DecodeError:
                    log.warning("undecodable message on %s", msg.subject)
                caught_up = msg.metadata is not None and msg.metadata.num_pending == 0
                if caught_up and not follow:
                    return
                if caught_up and idle_marks:
                    yield None
        finally:
            release_later(self.js, sub)

    async def delete_objects(self, prefix: str) -> int:
        """Delete every object whose name starts with ``prefix``; how many went."""
        try:
            infos = await self.objects.list(ignore_deletes=True)
        except (NotFoundError, nats.js.errors.ObjectNotFoundError):
            return 0
        gone = 0
        for info in infos:
            if info.name.startswith(prefix):
                with contextlib.suppress(
                    NotFoundError,
                    nats.js.errors.ObjectNotFoundError,
                    nats.js.errors.ObjectDeletedError,
                ):
                    await self.objects.delete(info.name)
                    gone += 1
        return gone

    async def has_object(self, name: str) -> bool:
        try:
            await self.objects.get_info(name)
        except (NotFoundError, nats.js.errors.ObjectNotFoundError):
            return False
        return True


# --------------------------------------------------------------------------- consuming


@dataclass(frozen=True)
class Ack:
    pass


@dataclass(frozen=True)
class Nak:
    delay: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class Term:
    reason: str


Outcome = Ack | Nak | Term
FETCH_WAIT_S = 0.5  # a pull request's lifetime: also how long a stopping worker waits for it
ACK = Ack()


@dataclass
class Delivery(Generic[M]):
    """One delivery of a command or event, as a handler sees it."""

    message: M
    attempt: int  # num_delivered: 1 on first delivery
    subject: str
    stream_seq: int
    shutdown: asyncio.Event  # set when the process is draining
    raw: Msg
    _release: Callable[[], None] | None = None

    async def in_progress(self) -> None:
        with contextlib.suppress(Exception):
            await self.raw.in_progress()

    def free_slot(self) -> None:
        """Let the worker take its next message while this handler still finishes (the
        message stays unsettled, and heartbeated, until the handler returns). Once."""
        release, self._release = self._release, None
        if release is not None:
            release()


Handler = Callable[[Delivery[M]], Awaitable[Outcome]]


class Worker(Generic[M]):
    """A durable pull consumer loop with ``slots`` concurrent handlers.

    Each in-flight message is heartbeated with ``in_progress`` every ``heartbeat_s``,
    so a handler can work for longer than ``ack_wait``; if this process dies, the
    heartbeats stop and the server redelivers after ``ack_wait``. A message that does
    not decode is terminated (poison) and recorded on the DLQ stream. On ``stop()``
    the loop stops fetching, signals handlers through ``Delivery.shutdown`` and waits
    for them; their outcomes (typically ``Nak``) are applied before the loop exits.
    ``check`` may refuse a decoded message (it returns why): it is poison as well, so a
    message no handler could carry out is recorded once instead of failing every delivery.
    """

    def __init__(
        self,
        bus: Bus,
        consumer: str,
        decoder: msgspec.json.Decoder[M],
        handler: Handler[M],
        *,
        slots: int = 1,
        heartbeat_s: float = 5.0,
        service: str,
        check: Callable[[M], str | None] | None = None,
    ) -> None:
        self.bus = bus
        self.check = check
        self.spec = bus.topology.consumer(consumer)
        self.decoder = decoder
        self.handler = handler
        self.slots = max(1, slots)
        self.heartbeat_s = heartbeat_s
        self.service = service
        self.shutdown = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._free = asyncio.Semaphore(self.slots)
        self._freed: set[asyncio.Task[None]] = set()  # handlers whose slot was freed early
        self.ready = asyncio.Event()

    @property
    def busy(self) -> int:
        return len(self._inflight)

    def stop(self) -> None:
        self.shutdown.set()

    async def run(self) -> None:
        sub = await self.bus.js.pull_subscribe_bind(self.spec.name, stream=self.spec.stream)
        self.ready.set()
        try:
            while not self.shutdown.is_set():
                await self._free.acquire()
                if self.shutdown.is_set():
                    self._free.release()
                    break
                msgs = await self._fetch(sub)
                if not msgs:
                    self._free.release()
                    continue
                for i, msg in enumerate(msgs):
                    if i:
                        await self._free.acquire()
                    task = asyncio.create_task(self._handle(msg))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
        finally:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if task not in self._freed:
            self._free.release()
        self._freed.discard(task)

    async def _fetch(self, sub: JetStreamContext.PullSubscription) -> list[Msg]:
        try:
            msgs = await sub.fetch(1, timeout=FETCH_WAIT_S)
        except NatsTimeoutError:
            return []
        except Exception as exc:  # connection trouble: back off and retry
            log.debug("fetch failed on %s: %s", self.spec.name, exc)
            await asyncio.sleep(0.5)
            return []
        if self.shutdown.is_set():
            # The pull request was already on the server when shutdown began; whatever it
            # brought goes straight back, or it would sit unacked here until ack_wait.
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.nak()
            return []
        return msgs

    async def _handle(self, msg: Msg) -> None:
        meta = msg.metadata
        try:
            message = self.decoder.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._poison(msg, f"undecodable message: {exc}")
            return
        problem = self.check(message) if self.check is not None else None
        if problem is not None:
            await self._refuse(msg, message, problem)
            return
        delivery = Delivery(
            message=message,
            attempt=meta.num_delivered or 1,
            subject=msg.subject,
            stream_seq=meta.sequence.stream,
            shutdown=self.shutdown,
            raw=msg,
            _release=self._freeing(asyncio.current_task()),
        )
        if delivery.attempt > 1:
            metrics.redeliveries.labels(consumer=self.spec.name).inc()
        beat = asyncio.create_task(self._heartbeat(msg))
        try:
            outcome = await self.handler(delivery)
        except asyncio.CancelledError:
            outcome = Nak(0.0, "cancelled")
        except Exception as exc:
            log.exception("%s handler failed on %s", self.service, msg.subject)
            metrics.handler_errors.labels(service=self.service).inc()
            outcome = Nak(min(30.0, 0.5 * 2 ** (delivery.attempt - 1)), f"handler error: {exc}")
        finally:
            beat.cancel()
        await self._settle(msg, outcome)

    def _freeing(self, handler: asyncio.Task[Any] | None) -> Callable[[], None] | None:
        if handler is None:
            return None

        def release() -> None:
            if handler in self._inflight and handler not in self._freed:
                self._freed.add(handler)
                self._free.release()

        return release

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _settle(self, msg: Msg, outcome: Outcome) -> None:
        settled = (
            "ack" if isinstance(outcome, Ack) else "nak" if isinstance(outcome, Nak) else "term"
        )
        metrics.handled.labels(service=self.service, outcome=settled).inc()
        try:
            if isinstance(outcome, Ack):
                await msg.ack()
            elif isinstance(outcome, Nak):
                await msg.nak(delay=outcome.delay or None)
            else:
                await self._poison(msg, outcome.reason)
        except Exception as exc:
            log.warning("could not settle %s: %s", msg.subject, exc)

    async def _refuse(self, msg: Msg, message: M, problem: str) -> None:
        """Poison, and for a command the run's failure: its run must not wait for it."""
        await self._poison(msg, f"refused message: {problem}")
        if not isinstance(message, s.Command):
            return
        meta = msg.metadata
        tag = message.__struct_config__.tag
        event = gave_up(
            message,
            (meta.num_delivered if meta else None) or 1,
            f"the {self.service} service refused {tag}: {problem}",
        )
        seq = meta.sequence.stream if meta else 0
        with contextlib.suppress(Exception):
            await self.bus.publish(event, f"{message.run_id}.refused.{seq}")

    async def _poison(self, msg: Msg, reason: str) -> None:
        log.error("terminating message on %s: %s", msg.subject, reason)
        metrics.poison_messages.labels(service=self.service).inc()
        with contextlib.suppress(Exception):
            await msg.term()
        record = s.PoisonRecord(
            service=self.service,
            subject=msg.subject,
            reason=redact(reason[:2000]),
            payload=redact(msg.data[:4096].decode("utf-8", "replace")),
            stream_seq=msg.metadata.sequence.stream if msg.metadata else 0,
        )
        with contextlib.suppress(Exception):
            await self.bus.js.publish(t.dlq_subject(self.service), s.encode(record))


def gave_up(command: s.Command, deliveries: int, reason: str) -> s.CommandDeadLettered:
    """The event saying a command will not be carried out, for the story or run it served."""
    story_id = attempt = None
    integrations: dict[str, int] = {}
    if isinstance(command, s.RunStory):  # every delivery of a story command is an attempt
        story_id, attempt = command.story.id, command.attempt + deliveries - 1
    elif isinstance(command, s.IntegrateStories):
        integrations = {item.story.id: item.attempt for item in command.stories}
    return s.CommandDeadLettered(
        run_id=command.run_id,
        command=str(command.__struct_config__.tag),
        deliveries=deliveries,
        reason=reason,
        story_id=story_id,
        attempt=attempt,
        integrations=integrations,
    )


def process_name(service: str) -> str:
    return f"baro-{service}@{socket.gethostname()}:{os.getpid()}"
