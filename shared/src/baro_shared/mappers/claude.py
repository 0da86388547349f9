"""Claude Code: ``claude -p --output-format stream-json --verbose``.

One JSON object per line, keyed by ``type``: ``system`` (``init``, hooks, task progress),
``assistant`` (one content block per line: text, thinking, tool_use), ``user`` (tool
results), ``result`` (the terminal line: outcome, usage, cost), plus ``rate_limit_event``
and, with partial messages on, ``stream_event``.
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
    as_list,
    as_str,
    classify,
    error_event,
    excerpt,
    json_excerpt,
    kind_of_status,
    plus,
    text_of,
    token_usage,
)
from baro_shared.schemas import (
    AgentFinished,
    AssistantText,
    CommandRun,
    ErrorKind,
    FileChanged,
    NormalizedEvent,
    Thinking,
    TokenUsage,
    ToolFinished,
    ToolStarted,
    Usage,
)

FILE_EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
SHELL_TOOLS = frozenset({"Bash"})
_KNOWN_SYSTEM_SUBTYPES = frozenset(
    {
        "init",
        "hook_started",
        "hook_progress",
        "hook_response",
        "thinking_tokens",
        "task_started",
        "task_progress",
        "task_updated",
        "task_notification",
        "compact_boundary",
        "status",
        "api_retry",
        "ui_invalidate",
    }
)
_SILENT_TYPES = frozenset({"rate_limit_event", "stream_event"})
# system lines that show work going on (sub-agents, thinking) though they map to no event
_WORK_SUBTYPES = frozenset(
    {"thinking_tokens", "task_started", "task_progress", "task_updated", "task_notification"}
)
# the ``error`` code of Claude Code's synthetic API-error message
_ERROR_CODES: dict[str, ErrorKind | None] = {
    "authentication_failed": "auth",
    "billing_error": "rejected",
    "invalid_request": "rejected",
    "model_not_found": "rejected",
    "rate_limit": "transient",
    "server_error": "transient",
}
_EXIT_CODE = re.compile(r"^\s*Exit code (\d+)")
_WRITE_KINDS: dict[str, ChangeKind] = {"create": "add", "update": "update"}


class ClaudeMapper(StreamMapper):
    backend = "claude"

    def __init__(self) -> None:
        super().__init__()
        self._model: str | None = None
        self._open_calls: dict[str, tuple[str, JsonObject]] = {}  # tool_use id -> name, input
        self._api_error: str | None = None  # text of a synthetic API-error message
        self._api_error_kind: ErrorKind | None = None
        self._did_work = False  # a file changed or a command ran
        # Each model call shows its message_start usage snapshot on its assistant lines
        # (repeated on every line of one message.id): the call's whole input, but only the
        # first output tokens. Totals come only on the result line; until then, and when a
        # stopped agent never writes it, the snapshots are what is known of the spending.
        self._calls: set[str] = set()
        self._streamed = TokenUsage()

    def _map(self, obj: JsonObject) -> list[NormalizedEvent]:
        kind = as_str(obj.get("type"))
        session_id = as_str(obj.get("session_id"))
        if kind == "system":
            return self._system(obj, session_id)
        if kind == "assistant":
            return self._announce(session_id, self._model) + self._assistant(obj)
        if kind == "user":
            return self._announce(session_id, self._model) + self._user(obj)
        if kind == "result":
            return self._announce(session_id, self._model) + self._result(obj)
        if kind == "stream_event":
            self._worked()  # partial-message deltas: the model is streaming
        elif kind not in _SILENT_TYPES:
            self.unknown_lines += 1
        return []

    def _system(self, obj: JsonObject, session_id: str | None) -> list[NormalizedEvent]:
        subtype = as_str(obj.get("subtype"))
        if subtype == "init":
            self._model = as_str(obj.get("model"))
            return self._announce(session_id, self._model)
        # Hook lines can come before init: remember the id, announce it with init's model.
        if session_id and self.session_id is None:
            self.session_id = session_id
        if subtype == "api_retry":
            self._retrying(_retry_notice(obj))
        elif subtype in _WORK_SUBTYPES:
            self._worked()
        elif subtype not in _KNOWN_SYSTEM_SUBTYPES:
            self.unknown_lines += 1
        return []

    def _assistant(self, obj: JsonObject) -> list[NormalizedEvent]:
        message = as_dict(obj.get("message"))
        content = as_list(message.get("content"))
        error_code = as_str(obj.get("error"))
        if obj.get("is_api_error_message") is True or error_code:
            # A synthetic message standing for a failed API call; the result line that
            # follows carries the status, so the error is reported from there.
            text = text_of(content) or error_code or "API error"
            self._api_error = (
                f"{text} ({error_code})" if error_code and error_code not in text else text
            )
            self._api_error_kind = _ERROR_CODES.get(error_code or "") or classify(self._api_error)
            self._failure = self._api_error
            return []
        self._snapshot(message)
        events: list[NormalizedEvent] = []
        for block in content:
            if not isinstance(block, dict):
                continue
            block_type = block.get("type")
            if block_type == "text":
                if text := as_str(block.get("text")):
                    events.append(AssistantText(text=excerpt(text, TEXT_CHARS)))
            elif block_type == "thinking":
                if thinking := as_str(block.get("thinking")):
                    events.append(Thinking(text=excerpt(thinking, TEXT_CHARS)))
            elif block_type == "tool_use":
                events.append(self._tool_started(block))
        return events

    def _snapshot(self, message: JsonObject) -> None:
        call = as_str(message.get("id"))
        if call is None or call in self._calls:
            return
        self._calls.add(call)
        usage = as_dict(message.get("usage"))
        cache_read = as_count(usage.get("cache_read_input_tokens"))
        seen = token_usage(
            input=plus(
                as_count(usage.get("input_tokens")),
                as_count(usage.get("cache_creation_input_tokens")),
                cache_read,
            ),
            cached_input=cache_read,
            output=None,  # the snapshot's 1 or 2 output tokens say nothing of the call's output
            reasoning=None,
        )
        if seen is not None:
            self._streamed = self._streamed + seen

    @property
    def spent(self) -> int:
        return max(self.usage.total, self._streamed.total)

    def _unreported_usage(self) -> TokenUsage | None:
        if self.usage.is_known() or not self._streamed.is_known():
            return None
        return self._streamed

    def _tool_started(self, block: JsonObject) -> ToolStarted:
        call_id = as_str(block.get("id"))
        name = as_str(block.get("name")) or "unknown"
        tool_input = as_dict(block.get("input"))
        if call_id is not None:
            self._open_calls[call_id] = (name, tool_input)
        return ToolStarted(call_id=call_id, name=name, input=json_excerpt(block.get("input")))

    def _user(self, obj: JsonObject) -> list[NormalizedEvent]:
        content = as_list(as_dict(obj.get("message")).get("content"))
        results = [
            block
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]
        # The structured result describes the line's tool result when there is only one.
        structured = as_dict(obj.get("tool_use_result")) if len(results) == 1 else {}
        events: list[NormalizedEvent] = []
        for block in results:
            events.extend(self._tool_finished(block, structured))
        return events

    def _tool_finished(self, block: JsonObject, structured: JsonObject) -> list[NormalizedEvent]:
        call_id = as_str(block.get("tool_use_id"))
        name: str | None = None
        tool_input: JsonObject = {}
        if call_id is not None and call_id in self._open_calls:
            name, tool_input = self._open_calls.pop(call_id)
        ok = block.get("is_error") is not True
        output = text_of(block.get("content"))
        events: list[NormalizedEvent] = [
            ToolFinished(call_id=call_id, name=name, ok=ok, output=excerpt(output))
        ]
        if ok and name in FILE_EDIT_TOOLS:
            path = as_str(tool_input.get("file_path")) or as_str(tool_input.get("notebook_path"))
            if path:
                events.append(FileChanged(path=path, change=_change_kind(name, structured)))
                self._did_work = True
        elif name in SHELL_TOOLS:
            command = as_str(tool_input.get("command")) or ""
            exit_code = _bash_exit_code(ok, output, structured)
            # A Bash call refused (permissions) or cut short without an exit code never ran.
            if exit_code is not None:
                events.append(
                    CommandRun(command=command, exit_code=exit_code, output=excerpt(output))
                )
                self._did_work = True
        return events

    def _result(self, obj: JsonObject) -> list[NormalizedEvent]:
        events: list[NormalizedEvent] = []
        usage = _result_usage(obj)
        if usage is not None:
            events.append(
                Usage(usage=usage, model=self._model, cost_usd=as_float(obj.get("total_cost_usd")))
            )
        result_text = as_str(obj.get("result"))
        result = excerpt(result_text, TEXT_CHARS) if result_text else None
        verdict = self._result_verdict(obj, result_text)
        if not verdict.ok:
            self._failure = verdict.error
            events.append(
                error_event(
                    verdict.error or "claude reported an error", verdict.kind, verdict.status
                )
            )
        events.append(AgentFinished(ok=verdict.ok, error=verdict.error, result=result))
        return events

    def _result_verdict(self, obj: JsonObject, result_text: str | None) -> Verdict:
        is_error = obj.get("is_error")
        subtype = as_str(obj.get("subtype")) or ""
        # Key on is_error: API failures arrive as subtype "success" with is_error true.
        failed = is_error if isinstance(is_error, bool) else subtype.startswith("error")
        if failed:
            errors = [text for item in as_list(obj.get("errors")) if (text := as_str(item))]
            message = (
                "; ".join(errors)
                or result_text
                or self._api_error
                or (subtype if subtype and subtype != "success" else "")
                or "claude reported an error"
            )
            status = as_int(obj.get("api_error_status"))
            kind: ErrorKind | None = None
            if not subtype.startswith("error_max"):  # max turns or budget: the agent's own end
                kind = (
                    (kind_of_status(status) if status is not None else None)
                    or self._api_error_kind
                    or classify(f"{message} {self._api_error or ''}")
                )
            return Verdict(ok=False, error=message, kind=kind, status=status)
        denials = as_list(obj.get("permission_denials"))
        if denials and not self._did_work:
            # Headless Claude denies what it may not do and still exits 0: no work was done.
            tools = sorted(
                {as_str(as_dict(denial).get("tool_name")) or "unknown" for denial in denials}
            )
            return Verdict(
                ok=False, error=f"permission denied for {', '.join(tools)}; nothing was done"
            )
        return Verdict(ok=True)

    def _stream_verdict(self) -> Verdict | None:
        # The result line finishes the run; without it, only a synthetic API error speaks.
        if self._api_error is not None:
            return Verdict(ok=False, error=self._api_error, kind=self._api_error_kind)
        return None


def _retry_notice(obj: JsonObject) -> str:
    """Claude Code's ``api_retry`` line as one line of text."""
    error = as_str(obj.get("error")) or "an API error"
    status = as_int(obj.get("error_status"))
    attempt, most = as_int(obj.get("attempt")), as_int(obj.get("max_retries"))
    count = f", retry {attempt}/{most}" if attempt is not None and most is not None else ""
    return f"retrying after {error}" + (f" (status {status})" if status else "") + count


def _change_kind(tool: str, structured: JsonObject) -> ChangeKind:
    if tool == "Write":
        return _WRITE_KINDS.get(as_str(structured.get("type")) or "", "unknown")
    return "update"


def _bash_exit_code(ok: bool, output: str, structured: JsonObject) -> int | None:
    """Claude Code reports no exit code: a failed command is an error result starting
    "Exit code N"; a successful, uninterrupted one exited 0."""
    if ok:
        return None if structured.get("interrupted") is True else 0
    match = _EXIT_CODE.match(output)
    return int(match.group(1)) if match else None


def _result_usage(result: JsonObject) -> TokenUsage | None:
    usage = as_dict(result.get("usage"))
    reasoning = as_count(as_dict(usage.get("output_tokens_details")).get("thinking_tokens"))
    # result.modelUsage holds every model call of the run, sub-agents included (its cost
    # matches total_cost_usd); result.usage leaves sub-agent calls out.
    by_model = _model_usage_total(as_dict(result.get("modelUsage")))
    if by_model is not None:
        return TokenUsage(
            input=by_model.input,
            cached_input=by_model.cached_input,
            output=by_model.output,
            reasoning=reasoning,
        )
    cache_read = as_count(usage.get("cache_read_input_tokens"))
    cache_write = as_count(usage.get("cache_creation_input_tokens"))
    return token_usage(
        # Anthropic's input_tokens is the uncached part: add cache writes and reads.
        input=plus(as_count(usage.get("input_tokens")), cache_write, cache_read),
        cached_input=cache_read,
        output=as_count(usage.get("output_tokens")),  # thinking is part of output_tokens
        reasoning=reasoning,
    )


def _model_usage_total(model_usage: JsonObject) -> TokenUsage | None:
    total = TokenUsage()
    for entry in model_usage.values():
        counts = as_dict(entry)
        cache_read = as_count(counts.get("cacheReadInputTokens"))
        cache_write = as_count(counts.get("cacheCreationInputTokens"))
        total = total + TokenUsage(
            # inputTokens is the uncached part, as in the Messages API: add the cache.
            input=plus(as_count(counts.get("inputTokens")), cache_write, cache_read),
            cached_input=cache_read,
            output=as_count(counts.get("outputTokens")),
        )
    return total if total.input is not None and total.output is not None else None
