"""OpenCode: ``opencode run --format json``.

Every line is ``{type, timestamp, sessionID, ...}``: ``step_start``, ``text`` and
``reasoning`` (finished parts, no deltas), ``tool_use`` (a tool part that reached
``completed`` or ``error``: there is no start event), ``step_finish`` (one per model
call, with its tokens), and ``error`` (a session error: the run failed).
"""

from __future__ import annotations

import re

from baro_shared.mappers.base import (
    TEXT_CHARS,
    ChangeKind,
    JsonObject,
    StreamMapper,
    Verdict,
    as_count,
    as_dict,
    as_float,
    as_int,
    as_str,
    classify,
    error_event,
    excerpt,
    json_excerpt,
    plus,
    status_in,
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
_PATCH_TOOLS = frozenset({"patch", "apply_patch"})
_FINISHED_REASONS = frozenset({"stop", "length", "end_turn"})  # a step that ended the turn
# A model call whose stream ended without a finish reason is a step with reason "unknown";
# OpenCode calls the model again and again after it. This many in a row is a loop.
MAX_UNFINISHED_STEPS = 3
# OpenCode's stream says only this when it failed before a model call (a provider without
# its key, an unknown model): its log lines on stderr say what happened
_GENERIC_ERROR = "check server logs"
_PATCH_FILE = re.compile(r"^\*\*\* (Add|Update|Delete) File: (.+?)\s*$", re.MULTILINE)
_PATCH_KINDS: dict[str, ChangeKind] = {"Add": "add", "Update": "update", "Delete": "delete"}


class OpenCodeMapper(StreamMapper):
    backend = "opencode"

    def __init__(self) -> None:
        super().__init__()
        self._session_error: Verdict | None = None
        self._last_step_reason: str | None = None
        self._unfinished_steps = 0
        self._generic_error = False
        self._started_calls: set[str] = set()

    def _map(self, obj: JsonObject) -> list[NormalizedEvent]:
        events = self._announce(as_str(obj.get("sessionID")))
        kind = as_str(obj.get("type"))
        part = as_dict(obj.get("part"))
        if kind == "text":
            if text := as_str(part.get("text")):
                events.append(AssistantText(text=excerpt(text, TEXT_CHARS)))
        elif kind == "reasoning":
            if text := as_str(part.get("text")):
                events.append(Thinking(text=excerpt(text, TEXT_CHARS)))
        elif kind == "tool_use":
            events.extend(self._tool(part))
        elif kind == "step_finish":
            events.extend(self._step_finish(part))
        elif kind == "error":
            events.extend(self._error(obj.get("error")))
        elif kind != "step_start":
            self.unknown_lines += 1
        return events

    def _step_finish(self, part: JsonObject) -> list[NormalizedEvent]:
        self._last_step_reason = as_str(part.get("reason"))
        unfinished = self._last_step_reason in (None, "unknown")
        self._unfinished_steps = self._unfinished_steps + 1 if unfinished else 0
        if self._unfinished_steps >= MAX_UNFINISHED_STEPS and self.looping is None:
            self.looping = (
                f"opencode: the model's stream ended without a finish reason "
                f"{self._unfinished_steps} times in a row, and opencode kept calling it again"
            )
        tokens = as_dict(part.get("tokens"))
        cache = as_dict(tokens.get("cache"))
        cache_read = as_count(cache.get("read"))
        reasoning = as_count(tokens.get("reasoning"))
        usage = token_usage(
            # OpenCode's input leaves out cache reads and writes: add them back.
            input=plus(as_count(tokens.get("input")), cache_read, as_count(cache.get("write"))),
            cached_input=cache_read,
            # OpenCode's output leaves out reasoning: add it back.
            output=plus(as_count(tokens.get("output")), reasoning),
            reasoning=reasoning,
        )
        if usage is None:
            return []
        return [Usage(usage=usage, cost_usd=as_float(part.get("cost")))]

    def _error(self, error: object) -> list[NormalizedEvent]:
        if isinstance(error, str):
            message, status, explicit = error, None, None
        else:
            fields = as_dict(error)
            data = as_dict(fields.get("data"))
            message = as_str(data.get("message")) or as_str(fields.get("name")) or "opencode error"
            status = as_int(data.get("statusCode"))
            explicit = data.get("isRetryable")
        status = status if status is not None else status_in(message)
        kind = classify(message, status)
        if _GENERIC_ERROR in message.lower() and status is None:
            # not the provider's error but OpenCode's own wrapper of one: nothing to classify
            # here, stderr explains it (``finish`` leaves the run unexplained)
            kind, self._generic_error = None, True
        if explicit is True:
            kind = "transient"  # OpenCode's own verdict (after its own retries)
        elif explicit is False and kind == "transient":
            kind = None
        if self._session_error is None:
            self._session_error = Verdict(ok=False, error=message, kind=kind, status=status)
        self._failure = message
        return [error_event(message, kind, status)]

    def _tool(self, part: JsonObject) -> list[NormalizedEvent]:
        call_id = as_str(part.get("callID"))
        name = as_str(part.get("tool")) or "unknown"
        state = as_dict(part.get("state"))
        tool_input = as_dict(state.get("input"))
        events: list[NormalizedEvent] = []
        if call_id is None or call_id not in self._started_calls:
            if call_id is not None:
                self._started_calls.add(call_id)
            events.append(
                ToolStarted(call_id=call_id, name=name, input=json_excerpt(state.get("input")))
            )
        status = state.get("status")
        if status not in ("completed", "error"):
            return events
        ok = status == "completed"
        output = as_str(state.get("output") if ok else state.get("error")) or ""
        events.append(ToolFinished(call_id=call_id, name=name, ok=ok, output=excerpt(output)))
        metadata = as_dict(state.get("metadata"))
        if name in SHELL_TOOLS:
            exit_code = as_int(metadata.get("exit"))
            if exit_code is None:
                exit_code = as_int(metadata.get("exitCode"))
            # A rejected or failed-to-start command has neither success nor an exit code.
            if ok or exit_code is not None:
                command = as_str(tool_input.get("command")) or ""
                events.append(
                    CommandRun(command=command, exit_code=exit_code, output=excerpt(output))
                )
        elif ok:
            events.extend(_file_changes(name, tool_input, metadata))
        return events

    def finish(self, exit_code: int | None = None) -> list[NormalizedEvent]:
        events = super().finish(exit_code)
        if self._generic_error:
            self.explained = False
        return events

    def _stream_verdict(self) -> Verdict | None:
        if self.looping is not None:
            return Verdict(ok=False, error=self.looping, kind="transient")
        if self._session_error is not None:
            return self._session_error
        if self._last_step_reason in _FINISHED_REASONS:
            return Verdict(ok=True)
        if self._last_step_reason == "error":
            return Verdict(ok=False, error="opencode: the model call ended with an error")
        return None


def _file_changes(tool: str, tool_input: JsonObject, metadata: JsonObject) -> list[FileChanged]:
    path = as_str(tool_input.get("filePath"))
    if tool in ("edit", "multiedit"):
        return [FileChanged(path=path, change="update")] if path else []
    if tool == "write":
        existed = metadata.get("exists")
        change = "unknown" if not isinstance(existed, bool) else ("update" if existed else "add")
        return [FileChanged(path=path, change=change)] if path else []
    if tool in _PATCH_TOOLS:
        patch = as_str(tool_input.get("patchText")) or as_str(tool_input.get("patch")) or ""
        changes = [
            FileChanged(path=match.group(2), change=_PATCH_KINDS[match.group(1)])
            for match in _PATCH_FILE.finditer(patch)
        ]
        if not changes and path:
            changes.append(FileChanged(path=path, change="update"))
        return changes
    return []
