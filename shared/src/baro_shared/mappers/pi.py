"""Pi: ``pi --mode json``, both wire generations.

1.x opens with a ``session`` header (the session id) and sends delta-only
``message_update`` lines with a top-level ``usage``; 0.x has no header and repeats the
cumulative ``message`` on every update. Both close each message with ``message_end``,
which is the authoritative copy: text, thinking and the usage of that one model call
(also repeated on ``turn_end`` and ``agent_end``, which are not counted again). Tools run
between ``tool_execution_start`` and ``tool_execution_end``. A failed model call is an
assistant message with ``stopReason: "error"`` while the exit code stays 0.
"""

from __future__ import annotations

import re

from baro_shared.mappers.base import (
    TEXT_CHARS,
    JsonObject,
    StreamMapper,
    Verdict,
    as_count,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    classify,
    error_event,
    excerpt,
    json_excerpt,
    plus,
    status_in,
    text_of,
    token_usage,
)
from baro_shared.schemas import (
    AssistantText,
    CommandRun,
    FileChanged,
    NormalizedEvent,
    Thinking,
    ToolFinished,
    ToolStarted,
    Usage,
)

SHELL_TOOLS = frozenset({"bash"})
FILE_EDIT_TOOLS = frozenset({"edit", "write"})
_SILENT_TYPES = frozenset(
    {
        "agent_start",
        "agent_end",
        "turn_start",
        "turn_end",
        "message_start",
        "queue_update",
        "compaction_start",
        "compaction_end",
        "auto_compaction_start",
        "auto_compaction_end",
        "summarization_retry_start",
        "summarization_retry_end",
        "entry_appended",
        "session_info_changed",
        "thinking_level_changed",
    }
)
_FAILED_STOPS = frozenset({"error", "aborted"})
_EXIT_CODE = re.compile(r"exited with code (-?\d+)")


class PiMapper(StreamMapper):
    backend = "pi"

    def __init__(self) -> None:
        super().__init__()
        self._open_calls: dict[str, tuple[str, JsonObject]] = {}  # toolCallId -> name, args
        self._last_call: Verdict | None = None  # outcome of the latest assistant message
        self._retries_failed: Verdict | None = None
        self._aborted = False

    def _map(self, obj: JsonObject) -> list[NormalizedEvent]:
        kind = as_str(obj.get("type"))
        if kind == "session":
            return self._announce(as_str(obj.get("id")))
        if kind == "message_end":
            return self._message_end(as_dict(obj.get("message")))
        if kind == "tool_execution_start":
            return self._tool_started(obj)
        if kind == "tool_execution_end":
            return self._tool_finished(obj)
        if kind == "auto_retry_end":
            return self._retries_ended(obj)
        if kind == "auto_retry_start":
            self._retrying(_retry_notice(obj))
            return []
        if kind in ("message_update", "tool_execution_update"):
            self._worked()  # streamed deltas, a running tool's output
            return []
        if kind == "agent_settled":
            self._aborted = obj.get("aborted") is True
            return []
        if kind not in _SILENT_TYPES:
            self.unknown_lines += 1
        return []

    def _message_end(self, message: JsonObject) -> list[NormalizedEvent]:
        if message.get("role") != "assistant":
            return []
        events: list[NormalizedEvent] = []
        for block in as_list(message.get("content")):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and (text := as_str(block.get("text"))):
                events.append(AssistantText(text=excerpt(text, TEXT_CHARS)))
            elif block.get("type") == "thinking" and (thinking := as_str(block.get("thinking"))):
                events.append(Thinking(text=excerpt(thinking, TEXT_CHARS)))
        counts = as_dict(message.get("usage"))
        cache_read = as_count(counts.get("cacheRead"))
        usage = token_usage(
            # Pi's input is the uncached part: add cache reads and writes.
            input=plus(
                as_count(counts.get("input")), cache_read, as_count(counts.get("cacheWrite"))
            ),
            cached_input=cache_read,
            # Pi's output already includes reasoning: input + output + cacheRead + cacheWrite
            # equals totalTokens in real captures (33254+23+113 = 33390 with reasoning 12).
            output=as_count(counts.get("output")),
            reasoning=as_count(counts.get("reasoning")),
        )
        if usage is not None:
            cost = as_float(as_dict(counts.get("cost")).get("total"))
            events.append(Usage(usage=usage, model=as_str(message.get("model")), cost_usd=cost))
        stop = as_str(message.get("stopReason"))
        if stop in _FAILED_STOPS:
            error = as_str(message.get("errorMessage")) or f"pi: the model call ended with {stop}"
            status = status_in(error)
            kind = classify(error, status) if stop == "error" else None
            self._last_call = Verdict(ok=False, error=error, kind=kind, status=status)
            self._failure = error
            events.append(error_event(error, kind, status))
        else:
            self._last_call = Verdict(ok=True)
        return events

    def _tool_started(self, obj: JsonObject) -> list[NormalizedEvent]:
        call_id = as_str(obj.get("toolCallId"))
        name = as_str(obj.get("toolName")) or "unknown"
        if call_id is not None:
            self._open_calls[call_id] = (name, as_dict(obj.get("args")))
        return [ToolStarted(call_id=call_id, name=name, input=json_excerpt(obj.get("args")))]

    def _tool_finished(self, obj: JsonObject) -> list[NormalizedEvent]:
        call_id = as_str(obj.get("toolCallId"))
        events: list[NormalizedEvent] = []
        if call_id is not None and call_id in self._open_calls:
            name, args = self._open_calls.pop(call_id)
        else:  # an end without a start: announce the call so starts and ends still pair
            name = as_str(obj.get("toolName")) or "unknown"
            args = as_dict(obj.get("args"))
            events.append(
                ToolStarted(call_id=call_id, name=name, input=json_excerpt(obj.get("args")))
            )
        result = as_dict(obj.get("result"))
        output = text_of(result.get("content"))
        ok = obj.get("isError") is not True
        events.append(ToolFinished(call_id=call_id, name=name, ok=ok, output=excerpt(output)))
        if name in SHELL_TOOLS:
            exit_code = _exit_code(result, output, ok)
            if ok or exit_code is not None:
                command = as_str(args.get("command")) or ""
                events.append(
                    CommandRun(command=command, exit_code=exit_code, output=excerpt(output))
                )
        elif ok and name in FILE_EDIT_TOOLS:
            path = as_str(args.get("path")) or as_str(args.get("file_path"))
            if path:
                events.append(
                    FileChanged(path=path, change="update" if name == "edit" else "unknown")
                )
        return events

    def _retries_ended(self, obj: JsonObject) -> list[NormalizedEvent]:
        if obj.get("success") is not False:
            self._retries_failed = None
            return []
        error = (
            as_str(obj.get("finalError"))
            or as_str(obj.get("errorMessage"))
            or (self._last_call.error if self._last_call and not self._last_call.ok else None)
            or "pi: automatic retries failed"
        )
        status = status_in(error)
        # The retries were for a transient failure and ran out: still worth retrying later.
        self._retries_failed = Verdict(ok=False, error=error, kind="transient", status=status)
        self._failure = error
        if (
            self._last_call is not None
            and not self._last_call.ok
            and self._last_call.error == error
        ):
            return []
        return [error_event(error, "transient", status)]

    def _stream_verdict(self) -> Verdict | None:
        if self._retries_failed is not None:
            return self._retries_failed
        if self._aborted:
            return Verdict(ok=False, error="pi: the run was aborted")
        return self._last_call


def _exit_code(result: JsonObject, output: str, ok: bool) -> int | None:
    for details in (as_dict(result.get("structuredContent")), as_dict(result.get("details"))):
        for key in ("exit_code", "exitCode"):
            if (code := as_int(details.get(key))) is not None:
                return code
    if ok:
        return None
    match = _EXIT_CODE.search(output)
    return int(match.group(1)) if match else None


def _retry_notice(obj: JsonObject) -> str:
    """Pi's ``auto_retry_start`` line as one line of text."""
    error = as_str(obj.get("errorMessage")) or "a failed model call"
    attempt, most = as_int(obj.get("attempt")), as_int(obj.get("maxAttempts"))
    count = f" (retry {attempt}/{most})" if attempt is not None and most is not None else ""
    return f"retrying after {error}{count}"
