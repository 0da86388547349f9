"""Every subject, stream, consumer and bucket baro uses, declared once.

``ensure_topology`` creates them idempotently; each service calls it at start, so the
first one up creates what is missing and later ones find it in place (or update a
changed setting).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

from baro_shared import schemas as s
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

CMD_STREAM = "BARO_CMD"
EVT_STREAM = "BARO_EVT"
AGENT_STREAM = "BARO_AGENT"
DLQ_STREAM = "BARO_DLQ"

RUNS_BUCKET = "baro_runs"
HISTORY_BUCKET = "baro_history"  # past-run statistics per repository, for intake estimates
CLAIMS_BUCKET = "baro_claims"  # which runner took which story attempt (first writer wins)
OBJECTS_BUCKET = "baro_objects"
# the object store's own stream and chunk subjects (NATS ADR-20: Object Store)
OBJECTS_STREAM = f"OBJ_{OBJECTS_BUCKET}"


SERVICES = ("intake", "planner", "conductor", "agent-runner", "merger")

# consumer names (one durable per service kind, shared by all its replicas)
INTAKE_CONSUMER = "intake"
PLANNER_CONSUMER = "planner"
RUNNER_CONSUMER = "agent-runner"
MERGER_CONSUMER = "merger"
CONDUCTOR_CONSUMER = "conductor"
DLQ_CONSUMER = "conductor-dlq"

CANCEL_SUBJECT_PREFIX = "baro.ctl.cancel"  # core NATS broadcast, not persisted


def cmd_subject(service: str) -> str:
    return f"baro.cmd.{service}"


def evt_subject(run_id: str, topic: str) -> str:
    return f"baro.evt.{run_id}.{topic}"


def agent_subject(run_id: str, story_id: str) -> str:
    return f"baro.agent.{run_id}.{_token(story_id)}"


def agent_events_filter(run_id: str, story_id: str | None = None) -> str:
    return f"baro.agent.{run_id}.{_token(story_id) if story_id else '*'}"


def agent_log_object(run_id: str, story_id: str, attempt: int, stream: str) -> str:
    """The object holding one attempt's raw agent ``stream`` (stdout or stderr)."""
    return f"runs/{run_id}/logs/{_token(story_id)}/{attempt}/{stream}"


def run_events_filter(run_id: str) -> str:
    return f"baro.evt.{run_id}.>"


EVERY_RUN_EVENTS_FILTER = "baro.evt.*.>"  # every run's own events (agents' are baro.agent.)


def run_key(run_id: str) -> str:
    return f"run.{run_id}"


def object_meta_subject(name: str) -> str:
    """Where the metadata of the object ``name`` is (its name in URL-safe base64)."""
    return f"$O.{OBJECTS_BUCKET}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def object_chunk_subject(nuid: str) -> str:
    """Where the chunks of the object stored under ``nuid`` are (its ``ObjectInfo.nuid``)."""
    return f"$O.{OBJECTS_BUCKET}.C.{nuid}"


def claim_key(run_id: str, story_id: str, attempt: int) -> str:
    return f"{run_id}.{_token(story_id)}.{attempt}"


def history_key(repo_key: str) -> str:
    """The history bucket's key for one repository: a hash, since paths and URLs hold
    characters a KV key may not."""
    return "repo." + hashlib.sha256(repo_key.encode("utf-8")).hexdigest()[:40]


def cancel_subject(run_id: str) -> str:
    return f"{CANCEL_SUBJECT_PREFIX}.{run_id}"


def dlq_subject(service: str) -> str:
    return f"baro.dlq.{service}"


def _token(value: str) -> str:
    """A subject token from an id: no dots, wildcards or whitespace."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in value) or "_"


# topic of each event type, and the service each command goes to
EVENT_TOPICS: dict[type, str] = {
    s.RunSubmitted: "submitted",
    s.IntakeDecided: "intake_decided",
    s.QuestionsAsked: "questions_asked",
    s.AnswersGiven: "answers_given",
    s.ModeConfirmed: "mode_confirmed",
    s.CancelRequested: "cancel_requested",
    s.RunPrepared: "prepared",
    s.RunPrepareFailed: "prepare_failed",
    s.PlanProposed: "plan_proposed",
    s.PlanFailed: "plan_failed",
    s.PlanAccepted: "plan_accepted",
    s.StoryStarted: "story_started",
    s.StoryAgentEnded: "story_agent_ended",
    s.StoryFinished: "story_finished",
    s.StoryUpdated: "story_updated",
    s.StoryIntegrated: "story_integrated",
    s.StoryRejected: "story_rejected",
    s.MergeConflict: "merge_conflict",
    s.IntegrationFailed: "integration_failed",
    s.StoryReviewed: "story_reviewed",
    s.StoryReplanned: "story_replanned",
    s.RunGateChecked: "gate_checked",
    s.RunDecision: "decision",
    s.RunDelivered: "delivered",
    s.DeliveryFailed: "delivery_failed",
    s.CommandDeadLettered: "dead_lettered",
    s.RunInterrupted: "interrupted",
    s.RunResumed: "resumed",
    s.RunFinished: "finished",
}
COMMAND_SERVICE: dict[type, str] = {
    s.ClassifyGoal: "intake",
    s.PlanGoal: "planner",
    s.ReviewStory: "planner",
    s.ReplanStory: "planner",
    s.RunStory: "agent-runner",
    s.PrepareRun: "merger",
    s.IntegrateStories: "merger",
    s.ArchiveAttempt: "merger",
    s.DeliverRun: "merger",
    s.GateRun: "merger",
    s.CleanupRun: "merger",
    s.NotifyRun: "merger",
}
# events the conductor reacts to (it also publishes questions_asked, plan_accepted,
# story_updated, interrupted, finished)
CONDUCTOR_TOPICS = (
    "submitted",
    "intake_decided",
    "answers_given",
    "mode_confirmed",
    "cancel_requested",
    "prepared",
    "prepare_failed",
    "plan_proposed",
    "plan_failed",
    "story_started",
    "story_agent_ended",
    "story_finished",
    "story_integrated",
    "story_rejected",
    "merge_conflict",
    "integration_failed",
    "story_reviewed",
    "story_replanned",
    "gate_checked",
    "delivered",
    "delivery_failed",
    "dead_lettered",
    "resumed",
)


def subject_for(msg: s.BusMessage) -> str:
    """The subject a bus message is published on."""
    kind = type(msg)
    if kind in EVENT_TOPICS:
        return evt_subject(msg.run_id, EVENT_TOPICS[kind])
    return cmd_subject(COMMAND_SERVICE[kind])


@dataclass(frozen=True)
class ConsumerSpec:
    stream: str
    name: str
    filter_subjects: tuple[str, ...]
    ack_wait: float
    max_deliver: int
    max_ack_pending: int
    backoff: tuple[float, ...] = ()


@dataclass(frozen=True)
class Topology:
    streams: tuple[StreamConfig, ...]
    consumers: tuple[ConsumerSpec, ...] = field(default_factory=tuple)
    kv: tuple[KeyValueConfig, ...] = field(default_factory=tuple)
    objects: tuple[ObjectStoreConfig, ...] = field(default_factory=tuple)

    def consumer(self, name: str) -> ConsumerSpec:
        for c in self.consumers:
            if c.name == name:
                return c
        raise KeyError(name)


DAY = 86400.0


def build_topology(cfg: Settings) -> Topology:
    storage = StorageType.FILE
    streams = (
        StreamConfig(
            name=CMD_STREAM,
            subjects=["baro.cmd.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=storage,
            num_replicas=cfg.replicas,
            duplicate_window=cfg.dedup_window_s,
            max_age=cfg.cmd_max_age_s,
            discard=DiscardPolicy.OLD,
        ),
        StreamConfig(
            name=EVT_STREAM,
            subjects=["baro.evt.>"],
            retention=RetentionPolicy.LIMITS,
            storage=storage,
            num_replicas=cfg.replicas,
            duplicate_window=cfg.dedup_window_s,
            max_age=cfg.evt_max_age_s,
            max_bytes=cfg.evt_max_bytes,
            discard=DiscardPolicy.OLD,
        ),
        StreamConfig(
            name=AGENT_STREAM,
            subjects=["baro.agent.>"],
            retention=RetentionPolicy.LIMITS,
            storage=storage,
            num_replicas=cfg.replicas,
            duplicate_window=cfg.dedup_window_s,
            max_age=cfg.agent_max_age_s,
            max_bytes=cfg.agent_max_bytes,
            discard=DiscardPolicy.OLD,
        ),
        StreamConfig(
            name=DLQ_STREAM,
            subjects=[
                f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{CMD_STREAM}.*",
                f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{CMD_STREAM}.*",
                "baro.dlq.>",
            ],
            retention=RetentionPolicy.LIMITS,
            storage=storage,
            num_replicas=cfg.replicas,
            max_age=cfg.evt_max_age_s,
            discard=DiscardPolicy.OLD,
        ),
    )
    consumers = (
        ConsumerSpec(CMD_STREAM, INTAKE_CONSUMER, (cmd_subject("intake"),), 30.0, 5, 256),
        ConsumerSpec(CMD_STREAM, PLANNER_CONSUMER, (cmd_subject("planner"),), 60.0, 5, 256),
        ConsumerSpec(
            CMD_STREAM,
            RUNNER_CONSUMER,
            (cmd_subject("agent-runner"),),
            cfg.runner_ack_wait_s,
            cfg.runner_max_deliver,
            cfg.max_running_agents,
        ),
        ConsumerSpec(CMD_STREAM, MERGER_CONSUMER, (cmd_subject("merger"),), 60.0, 8, 256),
        ConsumerSpec(
            EVT_STREAM,
            CONDUCTOR_CONSUMER,
            tuple(f"baro.evt.*.{t}" for t in CONDUCTOR_TOPICS),
            30.0,
            50,
            4096,
        ),
        ConsumerSpec(DLQ_STREAM, DLQ_CONSUMER, (">",), 30.0, 10, 256),
    )
    kv = (
        KeyValueConfig(bucket=RUNS_BUCKET, history=5, storage=storage, replicas=cfg.replicas),
        KeyValueConfig(bucket=HISTORY_BUCKET, history=1, storage=storage, replicas=cfg.replicas),
        KeyValueConfig(
            bucket=CLAIMS_BUCKET,
            history=1,
            storage=storage,
            replicas=cfg.replicas,
            ttl=cfg.evt_max_age_s,
        ),
    )
    objects = (
        ObjectStoreConfig(
            bucket=OBJECTS_BUCKET,
            storage=storage,
            replicas=cfg.replicas,
            ttl=cfg.objects_max_age_s,
        ),
    )
    return Topology(streams=streams, consumers=consumers, kv=kv, objects=objects)


# What JetStream answers (or fails to) while a cluster elects its meta leader: a service
# that starts with the cluster, or while one of its servers restarts, waits it out.
UNSETTLED = (NatsTimeoutError, ServiceUnavailableError)


SETTLE_S = 60.0  # how long a starting service waits for JetStream to answer


async def ensure_topology(
    js: JetStreamContext, topo: Topology, *, deadline: float | None = None
) -> None:
    """Create or update every stream, consumer and bucket; safe to call from every service.

    Each step is retried while JetStream has no leader to answer it, until ``deadline``
    (``time.monotonic``; by default ``SETTLE_S`` from now); every step is idempotent, so
    one that took effect without its answer reaching us is simply found done the next
    time."""
    deadline = time.monotonic() + SETTLE_S if deadline is None else deadline
    for cfg in topo.streams:
        await settled(lambda cfg=cfg: _ensure_stream(js, cfg), deadline)
    for kv in topo.kv:
        await settled(lambda kv=kv: js.create_key_value(config=kv), deadline)
    for obj in topo.objects:
        await settled(lambda obj=obj: js.create_object_store(obj.bucket, config=obj), deadline)
    for spec in topo.consumers:
        await settled(lambda spec=spec: _ensure_consumer(js, spec), deadline)


async def settled(step: Callable[[], Awaitable[T]], deadline: float) -> T:
    """``step()``, tried again while JetStream does not answer it, until ``deadline``
    (``time.monotonic``); ``step`` must be safe to repeat."""
    pause = 0.25
    while True:
        try:
            return await step()
        except UNSETTLED as exc:
            if time.monotonic() + pause >= deadline:
                raise
            log.warning("JetStream did not answer (%s); trying again", type(exc).__name__)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


async def _ensure_stream(js: JetStreamContext, cfg: StreamConfig) -> None:
    try:
        info = await js.stream_info(cfg.name)
    except NotFoundError:
        try:
            await js.add_stream(cfg)
            return
        except BadRequestError:
            # another service created it between our check and our add
            info = await js.stream_info(cfg.name)
    current = info.config
    if (
        sorted(current.subjects or []) != sorted(cfg.subjects or [])
        or current.max_age != cfg.max_age
        or current.duplicate_window != cfg.duplicate_window
        or current.max_bytes != cfg.max_bytes
    ):
        await js.update_stream(cfg)


async def _ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    multi = len(spec.filter_subjects) > 1
    config = ConsumerConfig(
        durable_name=spec.name,
        name=spec.name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=None if multi else spec.filter_subjects[0],
        filter_subjects=list(spec.filter_subjects) if multi else None,
        backoff=list(spec.backoff) if spec.backoff else None,
    )
    # add_consumer with an existing durable name updates the mutable fields
    await js.add_consumer(spec.stream, config)
