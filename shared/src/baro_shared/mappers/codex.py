"""OpenAI Codex: ``codex exec --json``.

Lines: ``thread.started`` (the session id), ``turn.started``, ``item.started`` /
``item.updated`` / ``item.completed`` (agent messages, reasoning, commands, file changes,
MCP calls, web searches, todo lists, warnings), then ``turn.completed`` (usage) or
``turn.failed``. A top-level ``error`` is fatal, except the "Reconnecting... n/N" notices
Codex prints while it retries.
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
    as_int,
    as_list,
    as_str,
    classify,
    error_event,
    excerpt,
    json_excerpt,
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

_SILENT_ITEM_TYPES = frozenset({"todo_list", "error"})  # "error" items are warnings
_CHANGE_KINDS: dict[str, ChangeKind] = {"add": "add", "update": "update", "delete": "delete"}
_RECONNECTING = re.compile(r"^\s*reconnecting\b", re.IGNORECASE)


class CodexMapper(StreamMapper):
    backend = "codex"

    def __init__(self) -> None:
        super().__init__()
        self._started_items: set[str] = set()
        self._turn: Verdict | None = None  # outcome of the latest turn, None while silent
        self._reconnects = 0  # retry notices seen in the current turn

    def _map(self, obj: JsonObject) -> list[NormalizedEvent]:
        kind = as_str(obj.get("type"))
        if kind == "thread.started":
            return self._announce(as_str(obj.get("thread_id")))
        if kind == "turn.started":
            self._turn = None
            self._reconnects = 0
            return []
        if kind == "turn.completed":
            return self._turn_completed(obj)
        if kind == "turn.failed":
            message = as_str(as_dict(obj.get("error")).get("message")) or "codex turn failed"
            return self._fail(message, authoritative=True)
        if kind == "error":
            message = as_str(obj.get("message")) or "codex reported an error"
            if _RECONNECTING.match(message):
                self._reconnects += 1
                self._retrying(message)
                return []
            return self._fail(message, authoritative=False)
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._item(as_dict(obj.get("item")), completed=kind == "item.completed")
        self.unknown_lines += 1
        return []

    def _turn_completed(self, obj: JsonObject) -> list[NormalizedEvent]:
        self._turn = Verdict(ok=True)
        counts = as_dict(obj.get("usage"))
        usage = token_usage(
            # OpenAI counts: input_tokens already includes the cached (and cache-write) part,
            # output_tokens already includes the reasoning part.
            input=as_count(counts.get("input_tokens")),
            cached_input=as_count(counts.get("cached_input_tokens")),
            output=as_count(counts.get("output_tokens")),
            reasoning=as_count(counts.get("reasoning_output_tokens")),
        )
        return [] if usage is None else [Usage(usage=usage)]

    def _fail(self, message: str, *, authoritative: bool) -> list[NormalizedEvent]:
        """A fatal error line or turn.failed. Codex prints the final error and then
        turn.failed with the same text: report it once; turn.failed's text wins."""
        status = status_in(message)
        kind = classify(message, status)
        if kind is None and self._reconnects > 0:
            kind = "transient"  # failing after "Reconnecting..." notices: the retries ran out
        previous = self._turn
        if previous is None or previous.ok or authoritative:
            self._turn = Verdict(ok=False, error=message, kind=kind, status=status)
            self._failure = message
        if previous is not None and not previous.ok and previous.error == message:
            return []
        return [error_event(message, kind, status)]

    def _item(self, item: JsonObject, *, completed: bool) -> list[NormalizedEvent]:
        item_type = as_str(item.get("type"))
        if item_type == "agent_message":
            text = as_str(item.get("text"))
            return [AssistantText(text=excerpt(text, TEXT_CHARS))] if completed and text else []
        if item_type == "reasoning":
            text = as_str(item.get("text"))
            return [Thinking(text=excerpt(text, TEXT_CHARS))] if completed and text else []
        if item_type == "command_execution":
            return self._command(item, completed)
        if item_type == "file_change":
            return self._file_change(item, completed)
        if item_type == "mcp_tool_call":
            return self._mcp_call(item, completed)
        if item_type == "web_search":
            started = self._start(item, "web_search", {"query": item.get("query")})
            return started + ([_finished(item, "web_search", ok=True)] if completed else [])
        if item_type == "todo_list":
            self._worked()  # the model updating its plan
        elif item_type not in _SILENT_ITEM_TYPES:
            self.unknown_lines += 1
        return []

    def _start(self, item: JsonObject, name: str, tool_input: object) -> list[NormalizedEvent]:
        """ToolStarted the first time an item id shows up (file changes only complete)."""
        item_id = as_str(item.get("id"))
        if item_id is not None:
            if item_id in self._started_items:
                return []
            self._started_items.add(item_id)
        return [ToolStarted(call_id=item_id, name=name, input=json_excerpt(tool_input))]

    def _command(self, item: JsonObject, completed: bool) -> list[NormalizedEvent]:
        command = as_str(item.get("command")) or ""
        events = self._start(item, "command_execution", {"command": command})
        if not completed:
            return events
        exit_code = as_int(item.get("exit_code"))
        output = as_str(item.get("aggregated_output")) or ""
        status = as_str(item.get("status"))
        ok = status not in ("failed", "declined") and exit_code in (None, 0)
        events.append(_finished(item, "command_execution", ok=ok, output=output))
        if status != "declined":  # a declined command never ran
            events.append(CommandRun(command=command, exit_code=exit_code, output=excerpt(output)))
        return events

    def _file_change(self, item: JsonObject, completed: bool) -> list[NormalizedEvent]:
        changes = [change for change in as_list(item.get("changes")) if isinstance(change, dict)]
        events = self._start(item, "file_change", {"changes": changes})
        if not completed:
            return events
        ok = item.get("status") == "completed"
        events.append(_finished(item, "file_change", ok=ok))
        if ok:
            for change in changes:
                path = as_str(change.get("path"))
                kind = as_str(change.get("kind"))
                if path:
                    events.append(
                        FileChanged(path=path, change=_CHANGE_KINDS.get(kind or "", "unknown"))
                    )
        return events

    def _mcp_call(self, item: JsonObject, completed: bool) -> list[NormalizedEvent]:
        server = as_str(item.get("server")) or "unknown"
        tool = as_str(item.get("tool")) or "unknown"
        name = f"mcp__{server}__{tool}"
        events = self._start(item, name, item.get("arguments"))
        if not completed:
            return events
        error = as_str(as_dict(item.get("error")).get("message"))
        ok = item.get("status") == "completed" and error is None
        output = error if error is not None else text_of(as_dict(item.get("result")).get("content"))
        events.append(_finished(item, name, ok=ok, output=output))
        return events

    def _stream_verdict(self) -> Verdict | None:
        return self._turn


def _finished(item: JsonObject, name: str, *, ok: bool, output: str = "") -> ToolFinished:
    return ToolFinished(call_id=as_str(item.get("id")), name=name, ok=ok, output=excerpt(output))
