"""What every stream mapper shares: decoding, counting, usage totals, the one AgentFinished.

A mapper turns one wire line into zero or more normalized events (DESIGN §3). It keeps a
little state (open tool calls, the outcome so far) but does no I/O, and it never raises:
a line that is not a JSON object is counted in ``skipped_lines``, a well-formed line of a
kind the mapper does not know is counted in ``unknown_lines``, and both are skipped. Lines
of kinds the mapper knows but has nothing to say about (hooks, deltas, turn markers) are
neither.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, NamedTuple

import msgspec

from baro_shared.schemas import (
    AgentError,
    AgentFinished,
    AssistantText,
    CommandRun,
    ErrorKind,
    FileChanged,
    NormalizedEvent,
    SessionStarted,
    Thinking,
    TokenUsage,
    ToolFinished,
    ToolStarted,
    Usage,
)

EXCERPT_CHARS = 2000  # tool inputs, tool outputs, command outputs
TEXT_CHARS = 32_000  # assistant text, thinking, final results (keeps bus messages small)
_MAX_INT64 = 2**63 - 1

JsonObject = dict[str, Any]
ChangeKind = Literal["add", "update", "delete", "unknown"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


# --------------------------------------------------------------------------- decoding


def decode_line(line: bytes | str) -> object:
    """Decode one wire line; raises on anything that is not exactly one JSON value."""
    try:
        return _decode(line)
    except msgspec.DecodeError:
        # msgspec rejects escaped lone surrogates, which JavaScript's JSON.stringify emits
        # for text cut in the middle of a surrogate pair; the stdlib accepts them.
        return _without_lone_surrogates(json.loads(line))


def _without_lone_surrogates(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    return value


# --------------------------------------------------------------------------- typed access


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_dict(value: object) -> JsonObject:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: object) -> int | None:
    """An integer that fits in int64 (bools are not integers here)."""
    if type(value) is int and -_MAX_INT64 <= value <= _MAX_INT64:
        return value
    return None


def as_count(value: object) -> int | None:
    """A token count: a non-negative int64, else unknown."""
    number = as_int(value)
    return number if number is not None and number >= 0 else None


def as_float(value: object) -> float | None:
    if type(value) is int and -_MAX_INT64 <= value <= _MAX_INT64:
        return float(value)
    if type(value) is float and math.isfinite(value):
        return value
    return None


def text_of(content: object) -> str:
    """Text of a string, or of a list of content blocks with ``text`` fields."""
    if isinstance(content, str):
        return content
    parts = [
        text
        for block in as_list(content)
        if isinstance(block, dict) and (text := as_str(block.get("text")))
    ]
    return "\n".join(parts)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more chars]"


def json_excerpt(value: object, limit: int = EXCERPT_CHARS) -> str:
    """A bounded JSON text of a decoded value ('' for null)."""
    if value is None:
        return ""
    try:
        return excerpt(_encode(value).decode(), limit)
    except (TypeError, ValueError, OverflowError):
        return ""


def token_usage(
    input: int | None,
    cached_input: int | None,
    output: int | None,
    reasoning: int | None,
) -> TokenUsage | None:
    """A TokenUsage, or None when the line carried no count at all."""
    usage = TokenUsage(input=input, cached_input=cached_input, output=output, reasoning=reasoning)
    return usage if usage.is_known() else None


def plus(total: int | None, *parts: int | None) -> int | None:
    """``total`` plus the known parts; unknown stays unknown."""
    if total is None:
        return None
    return total + sum(part for part in parts if part is not None)


# --------------------------------------------------------------------------- errors
# What a failure means for a retry, read from the status when the CLI gives one and from
# the real wordings of the four CLIs otherwise (tests/mappers/cli_failures/).

_AUTH_PHRASES = (
    "invalid api key",
    "invalid x-api-key",
    "incorrect api key",
    "invalid_api_key",
    "api key not valid",
    "no api key",
    "missing api key",
    "api key is missing",
    "not logged in",
    "authentication_error",
    "authentication_failed",
    "authentication failed",
    "unauthorized",
    "invalid bearer token",
    "oauth token has expired",
    "permission_error",
)
_TRANSIENT_PHRASES = (
    "rate limit",
    "rate_limit",
    "ratelimit",
    "too many requests",
    "overloaded",
    "usage limit",
    "high demand",
    "capacity",
    "temporarily unavailable",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "internal server error",
    "server_error",
    "server error",
    "timed out",
    "timeout",
    "try again later",
    "reconnecting",
    # the connection or the stream broke: the same request may well pass next time
    "stream disconnected",
    "stream ended without",
    "stream closed before",
    "connection reset",
    "connection refused",
    "connection error",
    "connection closed",
    "connection failed",
    "econnreset",
    "econnrefused",
    "etimedout",
    "eai_again",
    "socket hang up",
    "network error",
    "fetch failed",
    "premature close",
    "unable to connect",
    "cannot connect",
    "waiting for network",
    "error decoding response body",
)
_TRANSIENT_START = re.compile(r"^\s*terminated\b", re.IGNORECASE)  # undici: a cut response
_REJECTED_PHRASES = (
    "invalid_request",
    "invalid request",
    "bad request",
    "model_not_found",
    "not_found_error",
    "context_length_exceeded",
    "context length",
    "prompt is too long",
    "credit balance",
    "billing",
    "no longer supported",
)
_MODEL_NOT_FOUND = re.compile(r"\bmodel\b[^\n]{0,200}?\b(?:not found|does not exist)", re.I)
_LEADING_STATUS = re.compile(
    r"^\s*(?:api error:?\s*|http(?:/[\d.]+)?\s*|error:?\s*)?([1-5]\d\d)\b", re.IGNORECASE
)
_LABELLED_STATUS = re.compile(
    r"\b(?:status(?:[ _]?code)?|http)\s*[:=]?\s*([1-5]\d\d)\b", re.IGNORECASE
)


def status_in(message: str) -> int | None:
    """An HTTP status stated in an error message ("400 {...}", "status code 429")."""
    match = _LEADING_STATUS.match(message) or _LABELLED_STATUS.search(message)
    return int(match.group(1)) if match else None


def kind_of_status(status: int) -> ErrorKind | None:
    if status in (401, 403):
        return "auth"
    if status in (408, 425, 429) or 500 <= status <= 599:
        return "transient"
    if 400 <= status <= 499:
        return "rejected"
    return None


def classify(message: str, status: int | None = None) -> ErrorKind | None:
    """What a provider failure means for a retry: ``transient`` (rate limits, overload,
    5xx, a cut stream, no network), ``rejected`` (a request the provider refused: 400,
    404, an unknown model), ``auth`` (401, 403, a missing or bad key), or None (nothing
    says: the agent's own failure)."""
    if status is None:
        status = status_in(message)
    if status is not None and (kind := kind_of_status(status)) is not None:
        return kind
    lowered = message.lower()
    if any(phrase in lowered for phrase in _AUTH_PHRASES):
        return "auth"
    if _TRANSIENT_START.match(message) or any(p in lowered for p in _TRANSIENT_PHRASES):
        return "transient"
    if any(phrase in lowered for phrase in _REJECTED_PHRASES) or _MODEL_NOT_FOUND.search(message):
        return "rejected"
    return None


def is_retryable(message: str, status: int | None = None) -> bool:
    return classify(message, status) == "transient"


def error_event(message: str, kind: ErrorKind | None, status: int | None) -> AgentError:
    return AgentError(message=message, retryable=kind == "transient", status=status, category=kind)


class Verdict(NamedTuple):
    """How a run ended, as far as the stream tells."""

    ok: bool
    error: str | None = None
    kind: ErrorKind | None = None
    status: int | None = None

    @property
    def retryable(self) -> bool:
        return self.kind == "transient"


def verdict_from_exit_code(backend: str, exit_code: int | None) -> Verdict:
    if exit_code == 0:
        return Verdict(ok=True)
    if exit_code is None:
        return Verdict(ok=False, error=f"{backend}: the stream ended without a result")
    return Verdict(ok=False, error=f"{backend} exited with code {exit_code} without a result")


# --------------------------------------------------------------------------- progress

PROGRESS_EVENTS = (AssistantText, Thinking, ToolStarted, ToolFinished, FileChanged, CommandRun)


def is_progress(event: NormalizedEvent) -> bool:
    """Whether an event shows the model or its tools doing work: text, thinking, tool
    calls, file changes, commands, or a model call that used tokens. A session start, an
    error and the outcome are not work."""
    if isinstance(event, Usage):
        return event.usage.total > 0
    return isinstance(event, PROGRESS_EVENTS)


# --------------------------------------------------------------------------- the base class


class StreamMapper:
    """Maps one backend's wire stream, line by line, onto normalized events."""

    backend: str = ""

    def __init__(self) -> None:
        self.skipped_lines = 0
        self.unknown_lines = 0
        self.session_id: str | None = None
        self.usage = TokenUsage()
        self._session_announced = False
        self._finished: AgentFinished | None = None
        self._failure: str | None = None  # the latest fatal error the stream reported
        self._errors_emitted = 0
        self._last_text: str | None = None
        self._mapping_failures = 0  # lines whose mapping raised (a bug; tests keep it at 0)
        self._error_kind: ErrorKind | None = None  # the kind of the latest AgentError
        # Progress: how many times the stream showed the model or its tools at work
        # (events of PROGRESS_EVENTS, and lines of work the mapper has no event for, such
        # as streamed deltas). A CLI's retry notices are not progress: the latest one since
        # the last progress is kept in ``retry_notice``.
        self.progress = 0
        self.retry_notice: str | None = None
        # False when the stream ended without saying how the run went (the exit code
        # decided): the agent's stderr is then the only explanation there is
        self.explained = True
        # set when the stream shows the CLI in a loop that does not end by itself (why, in
        # one sentence): the runner stops the agent, as a transient failure
        self.looping: str | None = None

    # ---- public API

    def feed(self, line: bytes | str) -> list[NormalizedEvent]:
        """Normalized events of one wire line. Never raises."""
        try:
            if not line or line.isspace():
                return []
            obj = decode_line(line)
        except Exception:
            self.skipped_lines += 1
            return []
        if type(obj) is not dict:
            self.skipped_lines += 1
            return []
        try:
            events = self._map(obj)
        except Exception:
            self.skipped_lines += 1
            self._mapping_failures += 1
            return []
        return self._record(events)

    def finish(self, exit_code: int | None = None) -> list[NormalizedEvent]:
        """The closing events once the stream has ended: exactly one AgentFinished per
        mapper overall (nothing here if the stream already carried its terminal result).
        The outcome comes from the stream; the exit code decides only when it is silent."""
        if self._finished is not None:
            return []
        try:
            verdict = self._stream_verdict()
        except Exception:
            self._mapping_failures += 1
            verdict = None
        if verdict is None:
            verdict = verdict_from_exit_code(self.backend, exit_code)
            self.explained = verdict.ok
        else:
            self.explained = True
        events: list[NormalizedEvent] = []
        if not verdict.ok and self._errors_emitted == 0:
            events.append(
                error_event(verdict.error or f"{self.backend} failed", verdict.kind, verdict.status)
            )
        unreported = self._unreported_usage()
        if unreported is not None:
            events.append(Usage(usage=unreported))
        result = excerpt(self._last_text, TEXT_CHARS) if self._last_text else None
        events.append(AgentFinished(ok=verdict.ok, error=verdict.error, result=result))
        return self._record(events)

    @property
    def spent(self) -> int:
        """Tokens the run used so far, as far as the stream tells while it runs: what the
        token budgets are checked against. The reported usage, or more where the stream
        shows model calls before it reports their totals (Claude Code)."""
        return self.usage.total

    def _unreported_usage(self) -> TokenUsage | None:
        """At the end of a stream that never reported its usage (the agent was stopped or
        died before its totals): what the stream showed of it, if anything."""
        return None

    @property
    def outcome_ok(self) -> bool | None:
        """None until the run's outcome is known (the terminal result or ``finish``)."""
        return None if self._finished is None else self._finished.ok

    @property
    def error(self) -> str | None:
        if self._finished is not None:
            return self._finished.error
        return self._failure

    @property
    def failure_kind(self) -> ErrorKind | None:
        """What the stream's failure means for a retry (None: success, or nothing says)."""
        if self._finished is not None and self._finished.ok:
            return None
        return self._error_kind

    # ---- for subclasses

    def _map(self, obj: JsonObject) -> list[NormalizedEvent]:
        raise NotImplementedError

    def _stream_verdict(self) -> Verdict | None:
        """The outcome the stream states so far, or None when it says nothing."""
        raise NotImplementedError

    def _worked(self) -> None:
        """A line showing the model or a tool at work that maps to no event."""
        self.progress += 1
        self.retry_notice = None

    def _retrying(self, notice: str) -> None:
        """A line saying the CLI is retrying a failed model call (not progress)."""
        self.retry_notice = notice

    def _announce(self, session_id: str | None, model: str | None = None) -> list[NormalizedEvent]:
        """SessionStarted, once, as soon as a session id is known."""
        if session_id and self.session_id is None:
            self.session_id = session_id
        if self._session_announced or self.session_id is None:
            return []
        self._session_announced = True
        return [SessionStarted(session_id=self.session_id, model=model)]

    def _record(self, events: list[NormalizedEvent]) -> list[NormalizedEvent]:
        kept: list[NormalizedEvent] = []
        for event in events:
            if isinstance(event, AgentFinished):
                if self._finished is not None:
                    continue
                self._finished = event
            elif isinstance(event, Usage):
                self.usage = self.usage + event.usage + TokenUsage(cost_usd=event.cost_usd)
            elif isinstance(event, AgentError):
                self._errors_emitted += 1
                self._error_kind = event.category
            elif isinstance(event, AssistantText):
                self._last_text = event.text
            if is_progress(event):
                self._worked()
            kept.append(event)
        return kept
