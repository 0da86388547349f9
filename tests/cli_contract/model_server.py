"""A scripted model server speaking the three wire APIs the agent CLIs use.

Anthropic Messages (``/v1/messages``), OpenAI Responses (``/responses``) and OpenAI Chat
Completions (``/chat/completions``), streaming SSE with usage (and plain JSON when a
client asks without ``stream``). It is stateless: each answer is decided from the request
body alone.

- no tools in the request -> a plain text answer (a one-shot question, or a CLI's own
  side request such as a session title);
- a tool result already in the conversation -> the final text;
- otherwise exactly one tool call, the tool picked from the request's own tools (a write
  tool first, then ``apply_patch``, then a shell tool), its arguments built from that
  tool's schema, writing ``target`` with ``content`` in the working directory the CLI
  states in its prompt.

``fail_status`` makes every model call answer with that HTTP status instead, and
``cut_stream`` makes every streamed answer stop after its first events, without the API's
terminal event: ``"chunked"`` sends the body in chunks, as the providers do, and closes
the connection before the last one (the client sees a broken response); ``"close"`` ends
a body delimited by the connection (the client sees a stream that just ends). Every
exchange is recorded, with the usage the server reported in baro's convention (input
includes cache reads and writes, output includes reasoning), so a test can compare.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

# Per model call. Anthropic reports input without the cache parts; OpenAI includes them.
PROMPT_TOKENS = 100
CACHE_READ_TOKENS = 40
CACHE_WRITE_TOKENS = 10  # Anthropic only
COMPLETION_TOKENS = 20
REASONING_TOKENS = 5  # OpenAI only

WRITE_TOOLS = ("Write", "write", "write_file", "create_file")
SHELL_TOOLS = ("Bash", "bash", "exec_command", "shell", "local_shell")
PATH_KEYS = ("file_path", "filePath", "path", "absolute_path")
# What real providers say (no status code in the text: the mappers must classify by meaning).
FAILURES = {
    400: ("invalid_request_error", "Invalid request: the scripted server rejects this call."),
    401: ("authentication_error", "invalid x-api-key"),
    429: ("rate_limit_error", "Rate limit reached for requests. Please try again later."),
}
CUT_AFTER_CHUNKS = 3  # a cut stream: the opening events and one delta, then the connection closes
TOOL_RESULT_TYPES = ("tool_result", "function_call_output", "custom_tool_call_output")
CWD_PATTERNS = (
    re.compile(r"<cwd>\s*([^<\s]+)\s*</cwd>"),
    re.compile(r"[Ww]orking directory:\s*(/[^\s<>\"']+)"),
)


@dataclass
class Exchange:
    api: str  # messages | responses | chat
    path: str
    answer: str  # tool_call | final | text | error
    tool: str | None = None
    status: int = 200
    usage: dict[str, int | None] | None = None  # in baro's convention
    tools: tuple[str, ...] = ()  # the tools the request offered
    credential: str | None = None  # the API key the CLI sent
    model: str | None = None


@dataclass
class Tool:
    name: str
    custom: bool  # a freeform (grammar) tool: its input is one string
    schema: dict[str, Any]


@dataclass
class Script:
    target: str = "hello.txt"
    content: str = "hello from the model\n"
    answer_text: str = "PONG"
    final_text: str = "Done: the file is written."
    fail_status: int | None = None
    tool_order: tuple[str, ...] = (*WRITE_TOOLS, "apply_patch", *SHELL_TOOLS)
    text_only: bool = False  # answer with text even when the request offers tools
    cut_stream: Literal["chunked", "close"] | None = None  # see the module's docstring


@dataclass
class Decision:
    answer: str
    text: str = ""
    tool: Tool | None = None
    arguments: str = ""  # JSON text (function tools) or the raw input (custom tools)


class ScriptedModelServer:
    def __init__(self) -> None:
        self.script = Script()
        self.exchanges: list[Exchange] = []
        # called with every model request's body (tests look into what a CLI sent)
        self.on_body: Callable[[dict[str, Any]], None] | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        handler = type("Handler", (_Handler,), {"model_server": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ScriptedModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self, script: Script) -> None:
        with self._lock:
            self.script = script
            self.exchanges = []
            self.on_body = None

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def next_id(self) -> int:
        return next(self._ids)

    def model_calls(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)


# --------------------------------------------------------------------------- decisions


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def working_directory(body: dict[str, Any]) -> str | None:
    for text in strings_in(body):
        for pattern in CWD_PATTERNS:
            match = pattern.search(text)
            if match:
                return match.group(1).rstrip(".,;:")
    return None


def has_tool_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "tool":
            return True
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") in TOOL_RESULT_TYPES for block in content
        ):
            return True
    items = body.get("input")
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("type") in TOOL_RESULT_TYPES for item in items
    )


def tools_of(body: dict[str, Any]) -> list[Tool]:
    tools: list[Tool] = []
    for raw in body.get("tools") or []:
        if not isinstance(raw, dict):
            continue
        if isinstance(raw.get("function"), dict):  # chat completions
            fn = raw["function"]
            tools.append(Tool(str(fn.get("name")), False, fn.get("parameters") or {}))
        elif raw.get("type") == "custom":  # responses freeform tool
            tools.append(Tool(str(raw.get("name")), True, {}))
        elif "name" in raw:  # messages (input_schema) or responses function (parameters)
            schema = raw.get("input_schema") or raw.get("parameters") or {}
            tools.append(Tool(str(raw["name"]), False, schema))
    return tools


def pick_tool(tools: list[Tool], order: tuple[str, ...]) -> Tool | None:
    by_name = {tool.name: tool for tool in tools}
    for name in order:
        if name in by_name:
            return by_name[name]
    return None


def _properties(tool: Tool) -> dict[str, Any]:
    props = tool.schema.get("properties")
    return props if isinstance(props, dict) else {}


def tool_arguments(tool: Tool, script: Script, cwd: str | None) -> str:
    absolute = f"{cwd.rstrip('/')}/{script.target}" if cwd else script.target
    if tool.name == "apply_patch":
        added = "".join(f"+{line}\n" for line in script.content.splitlines())
        patch = f"*** Begin Patch\n*** Add File: {absolute}\n{added}*** End Patch\n"
        if tool.custom:
            return patch
        key = next((k for k in ("input", "patch") if k in _properties(tool)), "input")
        return json.dumps({key: patch})
    props = _properties(tool)
    if tool.name in WRITE_TOOLS:
        key = next((k for k in PATH_KEYS if k in props), "file_path")
        return json.dumps({key: absolute, "content": script.content})
    quoted = script.content.replace("'", "'\\''")
    command = f"printf '%s' '{quoted}' > '{absolute}'"
    key = "cmd" if "cmd" in props else "command"
    args: dict[str, Any] = {
        key: ["bash", "-lc", command] if props.get(key, {}).get("type") == "array" else command
    }
    if "workdir" in props and cwd:
        args["workdir"] = cwd
    return json.dumps(args)


def schema_instance(schema: object) -> object:
    """A small value that fits a JSON schema (for structured-output side requests)."""
    if not isinstance(schema, dict):
        return "ok"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: schema_instance(sub) for name, sub in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return "ok"


def structured_schema(body: dict[str, Any]) -> object | None:
    fmt = (body.get("output_config") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("schema"):
        return fmt["schema"]
    return None


def decide(body: dict[str, Any], script: Script) -> Decision:
    tools = tools_of(body)
    if not tools or script.text_only:
        schema = structured_schema(body)
        if schema is not None:
            return Decision("text", json.dumps(schema_instance(schema)))
        return Decision("text", script.answer_text)
    if has_tool_result(body):
        return Decision("final", script.final_text)
    tool = pick_tool(tools, script.tool_order)
    if tool is None:
        return Decision("final", "No tool to write with.")
    return Decision(
        "tool_call", tool=tool, arguments=tool_arguments(tool, script, working_directory(body))
    )


# --------------------------------------------------------------------------- usage


def anthropic_usage() -> dict[str, int]:
    return {
        "input_tokens": PROMPT_TOKENS - CACHE_READ_TOKENS - CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "output_tokens": COMPLETION_TOKENS,
    }


def openai_reported_usage() -> dict[str, int | None]:
    return {
        "input": PROMPT_TOKENS,
        "cached_input": CACHE_READ_TOKENS,
        "output": COMPLETION_TOKENS,
        "reasoning": REASONING_TOKENS,
    }


def anthropic_reported_usage() -> dict[str, int | None]:
    return {
        "input": PROMPT_TOKENS,
        "cached_input": CACHE_READ_TOKENS,
        "output": COMPLETION_TOKENS,
        "reasoning": None,
    }


# --------------------------------------------------------------------------- HTTP


def sse(event: str | None, data: object) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    model_server: ScriptedModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # ---- plumbing

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        cut = self.model_server.script.cut_stream
        if cut is not None:
            chunks = chunks[:CUT_AFTER_CHUNKS]
        if cut == "chunked":
            # the connection closes before the terminating empty chunk
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.close_connection = True
            return
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)
            self.wfile.flush()
        self.close_connection = True

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "mock-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {path}"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._body()
        if path.endswith("/messages/count_tokens"):
            self._json(200, {"input_tokens": PROMPT_TOKENS})
            return
        api = (
            "messages"
            if path.endswith("/messages")
            else "responses"
            if path.endswith("/responses")
            else "chat"
            if path.endswith("/chat/completions")
            else None
        )
        if api is None:
            self._json(404, {"error": {"message": f"no route {path}"}})
            return
        script = self.model_server.script
        if self.model_server.on_body is not None:
            self.model_server.on_body(body)
        model = str(body.get("model") or "mock-model")
        exchange = Exchange(
            api,
            path,
            "error",
            tools=tuple(tool.name for tool in tools_of(body)),
            credential=self._credential(),
            model=model,
        )
        if script.fail_status is not None:
            exchange.status = script.fail_status
            self.model_server.record(exchange)
            self._fail(api, script.fail_status)
            return
        decision = decide(body, script)
        stream = bool(body.get("stream"))
        exchange.answer = decision.answer
        exchange.tool = decision.tool.name if decision.tool else None
        exchange.usage = (
            anthropic_reported_usage() if api == "messages" else openai_reported_usage()
        )
        self.model_server.record(exchange)
        if api == "messages":
            self._messages(decision, model, stream)
        elif api == "responses":
            self._responses(decision, model)
        else:
            self._chat(decision, model, stream)

    def _credential(self) -> str | None:
        auth = self.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return self.headers.get("x-api-key") or None

    def _fail(self, api: str, status: int) -> None:
        kind, message = FAILURES.get(status, ("api_error", "The server had an error."))
        if api == "messages":
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": message},
            }
        else:
            payload = {"error": {"message": message, "type": kind, "code": kind}}
        headers = {"retry-after": "0", "x-should-retry": "false"} if status == 429 else {}
        self._json(status, payload, headers)

    # ---- Anthropic Messages

    def _messages(self, d: Decision, model: str, stream: bool) -> None:
        n = self.model_server.next_id()
        usage = anthropic_usage()
        if d.tool is not None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": f"toolu_{n:04d}",
                "name": d.tool.name,
                "input": json.loads(d.arguments),
            }
            stop = "tool_use"
        else:
            block = {"type": "text", "text": d.text}
            stop = "end_turn"
        message = {
            "id": f"msg_{n:04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not stream:
            self._json(200, message)
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        chunks = [sse("message_start", {"type": "message_start", "message": start})]
        if d.tool is not None:
            chunks.append(
                sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {**block, "input": {}},
                    },
                )
            )
            for piece in _pieces(d.arguments):
                delta = {"type": "input_json_delta", "partial_json": piece}
                chunks.append(
                    sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": delta},
                    )
                )
        else:
            chunks.append(
                sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            for piece in _pieces(d.text):
                chunks.append(
                    sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                )
        chunks += [
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": usage,
                },
            ),
            sse("message_stop", {"type": "message_stop"}),
        ]
        self._stream(chunks)

    # ---- OpenAI Responses (always streamed: Codex only streams)

    def _responses(self, d: Decision, model: str) -> None:
        n = self.model_server.next_id()
        seq = itertools.count()
        resp_id = f"resp_{n:04d}"
        base = {"id": resp_id, "object": "response", "model": model, "output": []}
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": {**base, "status": "in_progress"}}),
            ("response.in_progress", {"response": {**base, "status": "in_progress"}}),
        ]
        if d.tool is not None and d.tool.custom:
            item = {
                "type": "custom_tool_call",
                "id": f"ctc_{n:04d}",
                "call_id": f"call_{n:04d}",
                "name": d.tool.name,
                "input": d.arguments,
                "status": "completed",
            }
            events.append(
                (
                    "response.output_item.added",
                    {"output_index": 0, "item": {**item, "input": "", "status": "in_progress"}},
                )
            )
            for piece in _pieces(d.arguments):
                events.append(
                    (
                        "response.custom_tool_call_input.delta",
                        {"item_id": item["id"], "output_index": 0, "delta": piece},
                    )
                )
            events.append(
                (
                    "response.custom_tool_call_input.done",
                    {"item_id": item["id"], "output_index": 0, "input": d.arguments},
                )
            )
        elif d.tool is not None:
            item = {
                "type": "function_call",
                "id": f"fc_{n:04d}",
                "call_id": f"call_{n:04d}",
                "name": d.tool.name,
                "arguments": d.arguments,
                "status": "completed",
            }
            events.append(
                (
                    "response.output_item.added",
                    {"output_index": 0, "item": {**item, "arguments": "", "status": "in_progress"}},
                )
            )
            for piece in _pieces(d.arguments):
                events.append(
                    (
                        "response.function_call_arguments.delta",
                        {"item_id": item["id"], "output_index": 0, "delta": piece},
                    )
                )
            events.append(
                (
                    "response.function_call_arguments.done",
                    {"item_id": item["id"], "output_index": 0, "arguments": d.arguments},
                )
            )
        else:
            part = {"type": "output_text", "text": d.text, "annotations": []}
            item = {
                "type": "message",
                "id": f"msg_{n:04d}",
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            events += [
                (
                    "response.output_item.added",
                    {"output_index": 0, "item": {**item, "content": [], "status": "in_progress"}},
                ),
                ("response.content_part.added", {**where, "part": {**part, "text": ""}}),
                *(("response.output_text.delta", {**where, "delta": p}) for p in _pieces(d.text)),
                ("response.output_text.done", {**where, "text": d.text}),
                ("response.content_part.done", {**where, "part": part}),
            ]
        usage = {
            "input_tokens": PROMPT_TOKENS,
            "input_tokens_details": {"cached_tokens": CACHE_READ_TOKENS},
            "output_tokens": COMPLETION_TOKENS,
            "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        }
        events += [
            ("response.output_item.done", {"output_index": 0, "item": item}),
            (
                "response.completed",
                {"response": {**base, "status": "completed", "output": [item], "usage": usage}},
            ),
        ]
        self._stream(
            [
                sse(name, {"type": name, "sequence_number": next(seq), **data})
                for name, data in events
            ]
        )

    # ---- OpenAI Chat Completions

    def _chat(self, d: Decision, model: str, stream: bool) -> None:
        n = self.model_server.next_id()
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": CACHE_READ_TOKENS},
            "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        }
        call_id = f"call_{n:04d}"
        finish = "tool_calls" if d.tool is not None else "stop"
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": d.text or None}
            if d.tool is not None:
                message["tool_calls"] = [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": d.tool.name, "arguments": d.arguments},
                    }
                ]
            self._json(
                200,
                {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
            )
            return
        base = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return sse(None, {**base, "choices": [choice]})

        chunks = [chunk({"role": "assistant", "content": ""})]
        if d.tool is not None:
            chunks.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": d.tool.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for piece in _pieces(d.arguments):
                chunks.append(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                )
        else:
            chunks += [chunk({"content": piece}) for piece in _pieces(d.text)]
        chunks += [
            chunk({}, finish),
            sse(None, {**base, "choices": [], "usage": usage}),
            sse(None, "[DONE]"),
        ]
        self._stream(chunks)


def _pieces(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
