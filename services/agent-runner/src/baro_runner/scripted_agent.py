"""baro's scripted agent: a TEST/DEMO stand-in for Claude Code in headless mode.

It is invoked like `claude -p PROMPT --output-format stream-json --verbose` and writes
Claude Code's stream-json lines, but no model is ever called: every action comes from a
small JSON script (see docs/scripted-agent.md). Standard library only, and kept cheap to
import, because the runner starts it once per story: no ``typing`` at run time, ``_signal``
rather than ``signal`` (whose enums cost more than the two handlers it sets), no
``contextlib``, and ``argparse`` only for a command line the quick reading below does not
take (``--help``, a mistake), ``shlex`` and ``subprocess`` only for the steps that need them.
"""

from __future__ import annotations

import _signal
import json
import os
import re
import sys
import time
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping
    from typing import Any, NoReturn

LABEL = "baro scripted agent: test/demo only, no model was called"
VERSION = "0.1.0+baro.scripted"
DEFAULT_MODEL = "baro-scripted"
TOOLS = ["Bash", "Edit", "Read", "Write"]
# Claude Code cuts Bash output at 30000 characters; so does this agent.
BASH_OUTPUT_LIMIT = 30_000
FALLBACK_CHANGE_FILE = "CHANGES.md"

# Reported in result.usage when the script has no `usage` step. Every field is non-zero
# so a mapper that drops one of them shows up in tests: normalized input = 1000.
DEFAULT_USAGE = {"input": 100, "cache_write": 200, "cached": 700, "output": 50}
USAGE_FIELDS = {
    "input": "input_tokens",
    "cache_write": "cache_creation_input_tokens",
    "cached": "cache_read_input_tokens",
    "output": "output_tokens",
}
# Like Claude Code's message_start snapshot on assistant lines; never the totals.
MESSAGE_USAGE_SNAPSHOT = {
    "input_tokens": 2,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 1,
    "service_tier": "standard",
}

FILE_CONTENT_STEPS = frozenset({"write", "append"})
# Story ids of the one-shot questions baro asks an agent CLI (baro-intake, baro-planner, ...).
QUESTION_PREFIX = "baro-"
# Set by baro_shared.oneshot when it asks a question: the agent then answers without tools,
# as the real CLIs do there (a script's steps that would change a file or start a process
# are refused, whatever the script says).
QUESTION_ENV = "BARO_QUESTION"
# the steps a question refuses, and the tool each would have used
SIDE_EFFECT_TOOLS = {
    "write": "Write", "append": "Edit", "delete": "Bash", "run": "Bash", "record": "Write",
    "spawn_child": "Bash", "probe": "Bash", "save_prompt": "Write",
}  # fmt: skip
# extra keys a step kind takes besides its own
STEP_OPTIONS: dict[str, frozenset[str]] = {
    **dict.fromkeys(FILE_CONTENT_STEPS, frozenset({"content"})),
    "probe": frozenset({"paths"}),
}

# How the default change line is marked in a file, by extension ("" = no extension).
_EXTENSIONS_BY_LINE_PREFIX: dict[str, tuple[str, ...]] = {
    "": ("", ".md", ".markdown", ".txt", ".rst", ".adoc"),
    "# ": (".py", ".sh", ".bash", ".rb", ".r", ".toml", ".yaml", ".yml", ".cfg", ".ini"),
    "// ": (".js", ".jsx", ".mjs", ".ts", ".tsx", ".go", ".rs", ".c", ".h", ".cc", ".cpp"),
}
LINE_PREFIX_BY_EXTENSION = {
    extension: prefix
    for prefix, extensions in _EXTENSIONS_BY_LINE_PREFIX.items()
    for extension in extensions
}
GLOB_CHARS = frozenset("*?[")

Step = dict  # dict[str, Any]: a step of the script, as JSON gives it


class ScriptError(Exception):
    """The script or the environment is unusable: reported on stderr, exit code 2."""


class ToolFailure(Exception):
    """A tool step failed: reported as an error tool_result, and the run goes on."""


# id: str, title: str, attempt: int, write_surface: list[str]
Story = namedtuple("Story", "id title attempt write_surface")
Finish = namedtuple("Finish", "exit_code")


# --- script loading and validation --------------------------------------------------


def load_script(env: Mapping[str, str]) -> tuple[Any, str]:
    """Return the parsed script (None when absent) and where it came from."""
    inline = env.get("BARO_AGENT_SCRIPT", "")
    if inline.strip():
        return _parse_json(inline, "BARO_AGENT_SCRIPT"), "env:BARO_AGENT_SCRIPT"
    path = env.get("BARO_AGENT_SCRIPT_FILE", "")
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise ScriptError(f"cannot read BARO_AGENT_SCRIPT_FILE {path!r}: {exc}") from exc
        return _parse_json(text, path), f"file:{path}"
    return None, "none"


def _parse_json(text: str, origin: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"{origin} is not valid JSON: {exc}") from exc


def validate_script(script: Any) -> None:
    """Check every rule and step up front, so a typo fails loudly even in an unused rule."""
    if not isinstance(script, dict):
        raise ScriptError("the script must be a JSON object")
    _reject_unknown_keys(script, {"stories", "default"}, "script")
    stories = script.get("stories", [])
    if not isinstance(stories, list):
        raise ScriptError("script.stories must be a list")
    for index, rule in enumerate(stories):
        _validate_rule(rule, f"stories[{index}]")
    if "default" in script:
        default = script["default"]
        if not isinstance(default, dict):
            raise ScriptError("script.default must be an object")
        _reject_unknown_keys(default, {"steps"}, "default")
        _validate_steps(default.get("steps"), "default")


def _validate_rule(rule: Any, where: str) -> None:
    if not isinstance(rule, dict):
        raise ScriptError(f"{where} must be an object")
    _reject_unknown_keys(rule, {"match", "attempts", "steps"}, where)
    match = rule.get("match", {})
    if not isinstance(match, dict):
        raise ScriptError(f"{where}.match must be an object")
    _reject_unknown_keys(match, {"id", "title", "prompt"}, f"{where}.match")
    if "id" in match and not isinstance(match["id"], str):
        raise ScriptError(f"{where}.match.id must be a string")
    for key in ("title", "prompt"):
        if key not in match:
            continue
        if not isinstance(match[key], str):
            raise ScriptError(f"{where}.match.{key} must be a string (a regular expression)")
        try:
            re.compile(match[key])
        except re.error as exc:
            raise ScriptError(f"{where}.match.{key} is not a valid regex: {exc}") from exc
    attempts = rule.get("attempts")
    if attempts is not None and not (
        isinstance(attempts, list) and all(_is_int(a) and a >= 1 for a in attempts)
    ):
        raise ScriptError(f"{where}.attempts must be a list of attempt numbers (1, 2, ...)")
    _validate_steps(rule.get("steps"), where)


def _validate_steps(steps: Any, where: str) -> None:
    if not isinstance(steps, list):
        raise ScriptError(f"{where}.steps must be a list")
    for index, step in enumerate(steps):
        _validate_step(step, f"{where}.steps[{index}]")


def _validate_step(step: Any, where: str) -> None:
    if not isinstance(step, dict):
        raise ScriptError(f"{where} must be an object")
    kinds = [key for key in step if key in STEP_KINDS]
    if len(kinds) != 1:
        raise ScriptError(
            f"{where} must have exactly one of {sorted(STEP_KINDS)} (got {sorted(step)})"
        )
    kind = kinds[0]
    _reject_unknown_keys(step, {kind, *STEP_OPTIONS.get(kind, ())}, where)
    value = step[kind]
    problem = _step_value_problem(kind, value, step)
    if problem:
        raise ScriptError(f"{where}: {kind} {problem}")


def _step_value_problem(kind: str, value: Any, step: Step) -> str | None:
    if kind in ("write", "append"):
        if not isinstance(value, str) or not value:
            return "needs a non-empty path"
        if not isinstance(step.get("content"), str):
            return "needs a string 'content'"
    elif kind in ("delete", "run", "text", "fail", "stderr", "record", "save_prompt"):
        if not isinstance(value, str) or not value:
            return "needs a non-empty string"
    elif kind == "probe":
        if not isinstance(value, str) or not value:
            return "needs a non-empty report path"
        paths = step.get("paths", [])
        if not (isinstance(paths, list) and all(isinstance(p, str) and p for p in paths)):
            return "paths must be a list of paths"
    elif kind in ("sleep", "spawn_child"):
        if not _is_seconds(value):
            return "needs a number of seconds >= 0"
    elif kind == "hang":
        if value is not None and not _is_seconds(value):
            return "needs a number of seconds >= 0, or null for forever"
    elif kind == "crash":
        if not (_is_int(value) and 0 <= value <= 255):
            return "needs an exit code 0..255"
    elif kind in ("usage", "model_call"):
        keys = {*USAGE_FIELDS, "cost_usd"}
        if not isinstance(value, dict) or not set(value) <= keys:
            return f"needs an object with keys among {sorted(keys)}"
        counts = [count for name, count in value.items() if name != "cost_usd"]
        if not all(_is_int(count) and count >= 0 for count in counts):
            return "counts must be integers >= 0"
        cost = value.get("cost_usd", 0)
        if not (isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0):
            return "cost_usd must be a number >= 0"
    elif kind == "api_error":
        if not isinstance(value, dict) or not set(value) <= {"status", "message"}:
            return "needs an object {status, message}"
        if not (_is_int(value.get("status")) and 100 <= value["status"] <= 599):
            return "needs an HTTP status 100..599"
        if not isinstance(value.get("message", ""), str):
            return "message must be a string"
    elif kind == "flood":
        if not isinstance(value, dict) or set(value) != {"lines", "bytes"}:
            return "needs an object {lines, bytes}"
        if not all(_is_int(count) and count >= 0 for count in value.values()):
            return "lines and bytes must be integers >= 0"
    return None


def _reject_unknown_keys(
    obj: dict[str, Any], allowed: set[str] | frozenset[str], where: str
) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ScriptError(f"{where} has unknown keys {unknown} (allowed: {sorted(allowed)})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


# --- choosing the steps ------------------------------------------------------------


def select_steps(
    script: Any, story: Story, workspace: str, prompt: str = ""
) -> tuple[list[Step], str]:
    """Return the steps to run and a name for the rule that supplied them."""
    if script is not None:
        validate_script(script)
        for index, rule in enumerate(script.get("stories", [])):
            if _rule_applies(rule, story, prompt):
                return rule["steps"], f"stories[{index}]"
        if "default" in script:
            return script["default"]["steps"], "default"
    return builtin_default_steps(story, workspace), "builtin-default"


def _rule_applies(rule: Step, story: Story, prompt: str = "") -> bool:
    match = rule.get("match", {})
    if "id" in match and match["id"] != story.id:
        return False
    if "title" in match and not re.search(match["title"], story.title):
        return False
    if "prompt" in match and not re.search(match["prompt"], prompt):
        return False
    attempts = rule.get("attempts")
    return attempts is None or story.attempt in attempts


def builtin_default_steps(story: Story, workspace: str) -> list[Step]:
    """Append one line naming the story to a file it may write, else to CHANGES.md in a
    directory it may write, else to CHANGES.md at the root."""
    target, prefix = FALLBACK_CHANGE_FILE, ""
    directories = [d for d in (_directory(e, workspace) for e in story.write_surface) if d]
    if directories:
        target = f"{directories[0]}/{FALLBACK_CHANGE_FILE}"
    for entry in story.write_surface:
        if _is_concrete_file(entry, workspace):
            extension = os.path.splitext(entry)[1].lower()
            if extension in LINE_PREFIX_BY_EXTENSION:
                target, prefix = entry, LINE_PREFIX_BY_EXTENSION[extension]
                break
    title = story.title or "scripted change"
    separator = "" if _ends_with_newline_or_empty(os.path.join(workspace, target)) else "\n"
    return [
        {"text": f"Recording story {story.id or '(no id)'} in {target}."},
        {"append": target, "content": f"{separator}{prefix}- {title}\n"},
    ]


def _is_concrete_file(entry: str, workspace: str) -> bool:
    if not entry or entry.endswith("/") or GLOB_CHARS & set(entry):
        return False
    return not os.path.isdir(os.path.join(workspace, entry))


def _directory(entry: str, workspace: str) -> str | None:
    """The directory a surface entry gives whole (``docs/``, ``src/**``, an existing
    directory), or None."""
    name = entry.removesuffix("/**").rstrip("/")
    if not name or GLOB_CHARS & set(name):
        return None
    if entry.endswith("/") or entry.endswith("/**") or os.path.isdir(os.path.join(workspace, name)):
        return name
    return None


def _ends_with_newline_or_empty(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return True
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"
    except OSError:
        return True


# --- the stream --------------------------------------------------------------------


def _uuid4() -> str:
    # The uuid module imports `platform` on Linux; this keeps start-up short.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    hex_ = raw.hex()
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _anthropic_id(prefix: str) -> str:
    return prefix + "01" + "".join(_BASE62[byte % 62] for byte in os.urandom(22))


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _encode(event: dict[str, Any]) -> bytes:
    line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
    # Lone surrogates (possible in script JSON) cannot be UTF-8 encoded as they are.
    return line.encode("utf-8", "replace")


def _write_line(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # The reader went away; there is nobody left to report to.
        os._exit(1)


# --- the agent ---------------------------------------------------------------------


class ScriptedAgent:
    def __init__(
        self,
        story: Story,
        workspace: str,
        model: str,
        session_id: str,
        invocation: dict[str, Any] | None = None,
        question: bool = False,
    ) -> None:
        self.story = story
        self.question = question  # a tool-less question: no side effects
        self.workspace = workspace
        self.model = model
        self.session_id = session_id
        self.invocation = invocation or {}
        self.last_text: str | None = None
        self.started = time.monotonic()
        self.turns = 0
        self.steps_done = 0
        self.usage: dict[str, int] | None = None
        self.cost_usd = 0.0  # total_cost_usd: what `usage` and `model_call` steps priced

    def emit(self, event: dict[str, Any]) -> None:
        _write_line(_encode(event))

    def emit_init(self, permission_mode: str, script_source: str, rule: str) -> None:
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": self.workspace,
                "session_id": self.session_id,
                "tools": TOOLS,
                "mcp_servers": [],
                "model": self.model,
                "permissionMode": permission_mode,
                "slash_commands": [],
                "apiKeySource": "none",
                "claude_code_version": VERSION,
                "output_style": "default",
                "agents": [],
                "skills": [],
                "plugins": [],
                "uuid": _uuid4(),
                "scripted_agent": {"label": LABEL, "script": script_source, "rule": rule},
            }
        )

    def run(self, steps: list[Step]) -> int:
        for step in steps:
            kind = next(key for key in step if key in STEP_KINDS)
            if self.question and kind in SIDE_EFFECT_TOOLS:
                self.refuse(kind, step)
                self.steps_done += 1
                continue
            outcome = self.STEP_HANDLERS[kind](self, step[kind], step)
            self.steps_done += 1
            if isinstance(outcome, Finish):
                return outcome.exit_code
        story = self.story
        if story.id.startswith(QUESTION_PREFIX) and self.last_text is not None:
            # a question baro asks (intake, planner, architect): its answer is the last word,
            # as with a real CLI answering without tools
            closing = self.last_text
        else:
            closing = (
                f"Finished {self.steps_done} scripted step(s) "
                f"for story {story.id or '(no id)'}, attempt {story.attempt}."
            )
            self.assistant_text(closing)
        self.emit_result(
            subtype="success",
            is_error=False,
            text=closing,
            stop_reason="end_turn",
            terminal_reason="completed",
        )
        return 0

    # -- line builders

    def assistant_line(
        self, block: dict[str, Any], *, message_id: str | None = None, model: str | None = None
    ) -> dict[str, Any]:
        if message_id is None:
            message_id = self.new_message_id()
        return {
            "type": "assistant",
            "message": {
                "model": model or self.model,
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "content": [block],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": MESSAGE_USAGE_SNAPSHOT,
            },
            "parent_tool_use_id": None,
            "session_id": self.session_id,
            "uuid": _uuid4(),
            "timestamp": _timestamp(),
        }

    def new_message_id(self) -> str:
        self.turns += 1
        return _anthropic_id("msg_")

    def assistant_text(self, text: str) -> None:
        self.last_text = text
        self.emit(self.assistant_line({"type": "text", "text": text}))

    def tool(self, name: str, tool_input: dict[str, Any], perform: Callable[[], Any]) -> None:
        """Emit a tool_use, carry it out, emit its tool_result.

        `perform` returns (content, tool_use_result) or raises ToolFailure.
        """
        tool_id = _anthropic_id("toolu_")
        self.emit(
            self.assistant_line(
                {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
            )
        )
        result: dict[str, Any] = {"tool_use_id": tool_id, "type": "tool_result"}
        try:
            content, tool_use_result = perform()
        except ToolFailure as failure:
            content, tool_use_result = str(failure), f"Error: {failure}"
            result["is_error"] = True
        result["content"] = content
        self.emit(
            {
                "type": "user",
                "message": {"role": "user", "content": [result]},
                "parent_tool_use_id": None,
                "session_id": self.session_id,
                "uuid": _uuid4(),
                "timestamp": _timestamp(),
                "tool_use_result": tool_use_result,
            }
        )

    def refuse(self, kind: str, step: Step) -> None:
        """A side-effect step in a question: reported as a tool call the CLI denied."""

        def denied() -> tuple[str, dict[str, Any]]:
            raise ToolFailure(
                f"Refused: {kind} is not available when answering a question (no tools)"
            )

        self.tool(SIDE_EFFECT_TOOLS[kind], {kind: step[kind]}, denied)

    def emit_result(
        self,
        *,
        subtype: str,
        is_error: bool,
        text: str,
        stop_reason: str | None,
        terminal_reason: str,
        api_error_status: int | None = None,
        errors: list[str] | None = None,
    ) -> None:
        counts = self.usage if self.usage is not None else DEFAULT_USAGE
        usage = {wire: counts.get(name, 0) for name, wire in USAGE_FIELDS.items()}
        event: dict[str, Any] = {
            "type": "result",
            "subtype": subtype,
            "is_error": is_error,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
            "duration_api_ms": 0,
            "num_turns": self.turns,
            "result": f"{text} [{LABEL}]",
            "stop_reason": stop_reason,
            "session_id": self.session_id,
            "total_cost_usd": self.cost_usd,
            "usage": {
                **usage,
                "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": "standard",
            },
            "modelUsage": {
                self.model: {
                    "inputTokens": usage["input_tokens"],
                    "outputTokens": usage["output_tokens"],
                    "cacheReadInputTokens": usage["cache_read_input_tokens"],
                    "cacheCreationInputTokens": usage["cache_creation_input_tokens"],
                    "webSearchRequests": 0,
                    "costUSD": self.cost_usd,
                }
            },
            "permission_denials": [],
            "terminal_reason": terminal_reason,
            "api_error_status": api_error_status,
            "uuid": _uuid4(),
        }
        if errors is not None:
            event["errors"] = errors
        self.emit(event)

    # -- paths

    def display_path(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.workspace, path))

    def resolve_inside(self, path: str) -> str:
        """The real path of `path`, or ToolFailure when it (or a symlink on it) leaves the workspace."""
        real = os.path.realpath(os.path.join(self.workspace, path))
        if real != self.workspace and not real.startswith(self.workspace + os.sep):
            raise ToolFailure(f"Refused: {path} is outside the workspace {self.workspace}")
        return real

    # -- step handlers: each takes the step's value and the whole step

    def do_write(self, path: str, step: Step) -> None:
        content: str = step["content"]
        shown = self.display_path(path)

        def perform() -> tuple[str, dict[str, Any]]:
            real = self.resolve_inside(path)
            original = _read_text_or_none(real)
            try:
                os.makedirs(os.path.dirname(real), exist_ok=True)
                with open(real, "w", encoding="utf-8", newline="") as file:
                    file.write(content)
            except OSError as exc:
                raise ToolFailure(f"{exc.strerror or exc}: {shown}") from exc
            if original is None:
                message = f"File created successfully at: {shown}"
            else:
                message = f"The file {shown} has been updated successfully."
            return message, {
                "type": "create" if original is None else "update",
                "filePath": shown,
                "content": content,
                "structuredPatch": [],
                "originalFile": original,
                "userModified": False,
            }

        self.tool("Write", {"file_path": shown, "content": content}, perform)

    def do_append(self, path: str, step: Step) -> None:
        content: str = step["content"]
        shown = self.display_path(path)
        try:
            original = _read_text_or_none(self.resolve_inside(path))
        except ToolFailure:
            original = None
        if not original:
            # Appending to a missing or empty file is what Claude would do with Write.
            self.do_write(path, step)
            return
        # Claude appends by editing the file's last line: old_string = that line.
        tail = original[original.rstrip("\n").rfind("\n") + 1 :]

        def perform() -> tuple[str, dict[str, Any]]:
            real = self.resolve_inside(path)
            try:
                with open(real, "a", encoding="utf-8", newline="") as file:
                    file.write(content)
            except OSError as exc:
                raise ToolFailure(f"{exc.strerror or exc}: {shown}") from exc
            return f"The file {shown} has been updated successfully.", {
                "filePath": shown,
                "oldString": tail,
                "newString": tail + content,
                "originalFile": original,
                "structuredPatch": [],
                "userModified": False,
                "replaceAll": False,
            }

        tool_input = {
            "file_path": shown,
            "old_string": tail,
            "new_string": tail + content,
            "replace_all": False,
        }
        self.tool("Edit", tool_input, perform)

    def do_delete(self, path: str, step: Step) -> None:
        # Claude Code has no delete tool; it runs `rm` through Bash.
        def perform() -> tuple[str, dict[str, Any]]:
            real = self.resolve_inside(path)
            try:
                os.remove(real)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ToolFailure(f"Exit code 1\nrm: cannot remove '{path}': {reason}") from exc
            return "", _bash_tool_use_result("", "")

        import shlex

        command = f"rm -- {shlex.quote(path)}"
        self.tool("Bash", {"command": command, "description": f"Delete {path}"}, perform)

    def do_run(self, command: str, step: Step) -> None:
        def perform() -> tuple[str, dict[str, Any]]:
            exit_code, stdout, stderr = _run_shell(command, self.workspace)
            output = "\n".join(part for part in (stdout.rstrip("\n"), stderr.rstrip("\n")) if part)
            output = output[:BASH_OUTPUT_LIMIT]
            if exit_code != 0:
                raise ToolFailure(f"Exit code {exit_code}\n{output}".rstrip("\n"))
            return output, _bash_tool_use_result(
                stdout[:BASH_OUTPUT_LIMIT], stderr[:BASH_OUTPUT_LIMIT]
            )

        self.tool("Bash", {"command": command, "description": "Run a scripted command"}, perform)

    def do_text(self, text: str, step: Step) -> None:
        self.assistant_text(text)

    def do_record(self, path: str, step: Step) -> None:
        """Write how this agent was started (its prompt and command line) to ``path``."""
        content = json.dumps(self.invocation, indent=2) + "\n"
        self.do_write(path, {"write": path, "content": content})

    def do_sleep(self, seconds: float, step: Step) -> None:
        time.sleep(seconds)

    def do_save_prompt(self, path: str, step: Step) -> None:
        """Keep the prompt as received, for a test to read (a path outside the workspace
        keeps it out of the story's change)."""
        target = path if os.path.isabs(path) else os.path.join(self.workspace, path)
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(self.invocation.get("prompt", ""))

    def do_stderr(self, text: str, step: Step) -> None:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()

    def do_hang(self, seconds: float | None, step: Step) -> None:
        if seconds is not None:
            time.sleep(seconds)
            return
        while True:
            time.sleep(3600)

    def do_usage(self, counts: dict[str, Any], step: Step) -> None:
        if self.usage is None:
            self.usage = dict.fromkeys(USAGE_FIELDS, 0)
        for name, count in counts.items():
            if name == "cost_usd":
                self.cost_usd += count
            else:
                self.usage[name] += count

    def do_model_call(self, counts: dict[str, Any], step: Step) -> None:
        """One model call as Claude Code streams it: an assistant line whose usage is the
        call's message_start snapshot (its whole input, 1 output token so far); the
        call's counts join the result's totals."""
        line = self.assistant_line(
            {"type": "text", "text": f"Scripted model call {self.turns + 1}."}
        )
        snapshot = {
            wire: counts.get(name, 0) for name, wire in USAGE_FIELDS.items() if name != "output"
        }
        line["message"]["usage"] = {**MESSAGE_USAGE_SNAPSHOT, **snapshot, "output_tokens": 1}
        self.emit(line)
        self.do_usage(counts, step)

    def do_fail(self, message: str, step: Step) -> Finish:
        self.assistant_text(message)
        self.emit_result(
            subtype="error_during_execution",
            is_error=True,
            text=message,
            stop_reason=None,
            terminal_reason="model_error",
            errors=[message],
        )
        return Finish(1)

    def do_api_error(self, error: dict[str, Any], step: Step) -> Finish:
        status: int = error["status"]
        message: str = error.get("message") or "scripted API error"
        body = {"type": "error", "error": {"type": _api_error_type(status), "message": message}}
        text = f"API Error: {status} {json.dumps(body)}"
        line = self.assistant_line({"type": "text", "text": text}, model="<synthetic>")
        line["message"]["stop_reason"] = "stop_sequence"
        line["message"]["usage"] = dict.fromkeys(USAGE_FIELDS.values(), 0)
        line["error"] = _assistant_error(status)
        line["is_api_error_message"] = True
        self.emit(line)
        self.emit_result(
            subtype="success",
            is_error=True,
            text=text,
            stop_reason="stop_sequence",
            terminal_reason="api_error",
            api_error_status=status,
        )
        return Finish(1)

    def do_crash(self, exit_code: int, step: Step) -> NoReturn:
        os._exit(exit_code)

    def do_flood(self, flood: dict[str, int], step: Step) -> None:
        text = ("flood " * (flood["bytes"] // 6 + 1))[: flood["bytes"]]
        line = self.assistant_line({"type": "text", "text": text})
        del line["uuid"]
        # Serialize the large line once; only its uuid changes from line to line.
        head = _encode(line)[:-2] + b',"uuid":"'
        for _ in range(flood["lines"]):
            _write_line(head + _uuid4().encode() + b'"}\n')

    def do_spawn_child(self, seconds: float, step: Step) -> None:
        def perform() -> tuple[str, dict[str, Any]]:
            import subprocess

            # Deliberately never waited for or killed: cleaning up is the runner's job.
            child = subprocess.Popen(
                ["sleep", str(seconds)],
                cwd=self.workspace,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            return f"Command running in background with ID: {child.pid}", {
                **_bash_tool_use_result("", ""),
                "backgroundTaskId": str(child.pid),
            }

        tool_input = {
            "command": f"sleep {seconds}",
            "description": "Start a background process",
            "run_in_background": True,
        }
        self.tool("Bash", tool_input, perform)

    def do_probe(self, report: str, step: Step) -> None:
        paths: list[str] = step.get("paths", [])
        shown = self.display_path(report)

        def perform() -> tuple[str, dict[str, Any]]:
            from baro_runner.scripted_probe import probe  # only probing scripts load it

            real = self.resolve_inside(report)
            found = probe(paths)
            try:
                with open(real, "w", encoding="utf-8") as file:
                    json.dump(found, file, indent=1, sort_keys=True)
            except OSError as exc:
                raise ToolFailure(f"{exc.strerror or exc}: {shown}") from exc
            ports = [p for p in found["ports"] if p.get("kind") == "nats"]
            summary = (
                f"{len(found['processes'])} process(es) visible, "
                f"{sum(len(t.get('files') or {}) for t in found['paths'].values())} file(s) "
                f"under the given paths, {len(ports)} NATS server(s); report in {shown}"
            )
            return summary, _bash_tool_use_result(summary, "")

        import shlex

        command = f"baro-probe > {shlex.quote(report)}"
        self.tool("Bash", {"command": command, "description": "Probe for secrets"}, perform)

    STEP_HANDLERS: dict[str, Callable[[ScriptedAgent, Any, Step], Finish | None]] = {
        "write": do_write,
        "append": do_append,
        "delete": do_delete,
        "run": do_run,
        "text": do_text,
        "record": do_record,
        "sleep": do_sleep,
        "stderr": do_stderr,
        "save_prompt": do_save_prompt,
        "usage": do_usage,
        "model_call": do_model_call,
        "fail": do_fail,
        "api_error": do_api_error,
        "hang": do_hang,
        "crash": do_crash,
        "flood": do_flood,
        "spawn_child": do_spawn_child,
        "probe": do_probe,
    }


# Every step kind is a key of the handler table (used by validation above).
STEP_KINDS = frozenset(ScriptedAgent.STEP_HANDLERS)


def _read_text_or_none(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as file:
            return file.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _bash_tool_use_result(stdout: str, stderr: str) -> dict[str, Any]:
    return {"stdout": stdout, "stderr": stderr, "interrupted": False, "isImage": False}


# The shell of a running `run` step, killed with us on SIGTERM/SIGINT.
_foreground_pid: int | None = None


def _run_shell(command: str, cwd: str) -> tuple[int, str, str]:
    import subprocess  # only scripts with `run` steps pay for this import

    global _foreground_pid
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _foreground_pid = process.pid
    try:
        stdout, stderr = process.communicate()
    finally:
        _foreground_pid = None
    return (
        process.returncode,
        stdout.decode("utf-8", "replace"),
        stderr.decode("utf-8", "replace"),
    )


def _api_error_type(status: int) -> str:
    types = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    return types.get(status, "api_error")


def _assistant_error(status: int) -> str:
    if status in (401, 403):
        return "authentication_failed"
    if status == 402:
        return "billing_error"
    if status == 429:
        return "rate_limit"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "invalid_request"
    return "unknown"


# --- entry point -------------------------------------------------------------------


def _exit_on_signal(signum: int, frame: object) -> None:
    # os._exit, not SystemExit: a flush at interpreter exit could block on a full pipe.
    if _foreground_pid is not None:
        try:  # noqa: SIM105 - contextlib is not imported here
            os.kill(_foreground_pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(128 + signum)


# The options, as (names, destination, takes a value, default): what `claude -p` takes
# and baro gives it (baro_shared.headless), so the scripted agent can stand in for the
# `claude` binary (BARO_CLAUDE_BIN). ``_argument_parser`` has the help texts.
_OPTIONS = (
    (("-p", "--print"), "print", False, False),
    (("--output-format",), "output_format", True, "text"),
    (("--verbose",), "verbose", False, False),
    (("--model",), "model", True, DEFAULT_MODEL),
    (("--session-id",), "session_id", True, None),
    (("--permission-mode",), "permission_mode", True, "bypassPermissions"),
    (("--dangerously-skip-permissions",), "dangerously_skip_permissions", False, False),
    (("--max-turns",), "max_turns", True, None),
    (("--allowedTools",), "allowedTools", True, None),
    (("--tools",), "tools", True, None),
    (("--no-session-persistence",), "no_session_persistence", False, False),
)
_HELP = {
    "print": "headless mode (accepted)",
    "output_format": "must be stream-json",
    "verbose": "required with stream-json",
    "model": "reported as the model",
    "session_id": "use this session id instead of a random one",
    "permission_mode": "reported only",
}


class _Arguments:
    """The parsed command line (what ``argparse.Namespace`` would hold)."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def _quick_parse(argv: list[str]) -> _Arguments | None:
    """The command line as baro gives it, read without importing argparse; None for
    anything else (``--help``, ``--version``, an unknown option, a missing value), which
    ``_argument_parser`` then reads, or rejects with its usage message."""
    by_name = {name: (dest, takes) for names, dest, takes, _ in _OPTIONS for name in names}
    values: dict[str, object] = {dest: default for _, dest, _, default in _OPTIONS}
    values["prompt"] = ""
    prompt_given = False
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        name, equals, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg.startswith("-") and arg != "-":
            if name not in by_name:
                return None
            dest, takes = by_name[name]
            if not takes:
                if equals:
                    return None
                values[dest] = True
                continue
            if equals:
                value = inline
            elif rest and not rest[0].startswith("-"):
                value = rest.pop(0)
            else:
                return None
            if dest == "max_turns":
                if not value.lstrip("-").isdigit():
                    return None
                values[dest] = int(value)
            else:
                values[dest] = value
        elif prompt_given:
            return None
        else:
            values["prompt"], prompt_given = arg, True
    return _Arguments(**values)


def _argument_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="baro-scripted-agent",
        description=(
            "TEST/DEMO AGENT - calls no model. Speaks Claude Code's headless stream-json "
            "(`claude -p PROMPT --output-format stream-json --verbose`) and carries out the "
            "JSON script given in BARO_AGENT_SCRIPT (inline) or BARO_AGENT_SCRIPT_FILE (a path), "
            "for the story described by BARO_STORY_ID, BARO_STORY_TITLE, BARO_ATTEMPT and "
            "BARO_WRITE_SURFACE. Without a script it appends one line naming the story to a "
            "file of its write surface (or CHANGES.md). See docs/scripted-agent.md."
        ),
    )
    parser.add_argument("prompt", nargs="?", default="", help="the prompt (else read from stdin)")
    for names, dest, takes, default in _OPTIONS:
        help_text = _HELP.get(dest, "accepted, ignored")
        if not takes:
            parser.add_argument(*names, dest=dest, action="store_true", help=help_text)
        else:
            kind = int if dest == "max_turns" else str
            parser.add_argument(*names, dest=dest, default=default, type=kind, help=help_text)
    parser.add_argument("--version", action="version", version=f"{VERSION} ({LABEL})")
    return parser


def parse_args(argv: list[str] | None) -> _Arguments | argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    args = _quick_parse(argv)
    problem = None
    if args is not None and args.output_format != "stream-json":
        problem = "only --output-format stream-json is supported by the scripted agent"
    elif args is not None and not args.verbose:
        problem = "--output-format=stream-json requires --verbose"
    if args is not None and problem is None:
        return args
    parser = _argument_parser()
    parsed = parser.parse_args(argv)
    if parsed.output_format != "stream-json":
        parser.error("only --output-format stream-json is supported by the scripted agent")
    if not parsed.verbose:
        parser.error("--output-format=stream-json requires --verbose")
    return parsed


_PROMPT_STORY = re.compile(r"^Your story \(([^)\n]*)\): (.*)$", re.M)
_PROMPT_SURFACE = re.compile(
    r"^Your write surface \(change files only here\):\n((?:- .*\n?)+)", re.M
)


def story_from_prompt(prompt: str) -> dict[str, str]:
    """What a real agent learns from baro's story prompt (baro_runner.prompt): the story's
    id, title and write surface, as the BARO_* variables the scripted backend gets."""
    found: dict[str, str] = {}
    story = _PROMPT_STORY.search(prompt)
    if story:
        found["BARO_STORY_ID"], found["BARO_STORY_TITLE"] = story.group(1), story.group(2)
    surface = _PROMPT_SURFACE.search(prompt)
    if surface:
        entries = [line[2:] for line in surface.group(1).splitlines() if line.startswith("- ")]
        found["BARO_WRITE_SURFACE"] = json.dumps(entries)
    return found


def story_from_env(env: Mapping[str, str]) -> Story:
    attempt_text = env.get("BARO_ATTEMPT", "1") or "1"
    try:
        attempt = int(attempt_text)
    except ValueError:
        raise ScriptError(f"BARO_ATTEMPT must be an integer, got {attempt_text!r}") from None
    surface_text = env.get("BARO_WRITE_SURFACE", "") or "[]"
    try:
        surface = json.loads(surface_text)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"BARO_WRITE_SURFACE is not valid JSON: {exc}") from exc
    if not (isinstance(surface, list) and all(isinstance(entry, str) for entry in surface)):
        raise ScriptError("BARO_WRITE_SURFACE must be a JSON list of paths")
    title = env.get("BARO_STORY_TITLE", "").strip().splitlines()
    return Story(
        id=env.get("BARO_STORY_ID", ""),
        title=title[0] if title else "",
        attempt=attempt,
        write_surface=surface,
    )


def main(argv: list[str] | None = None) -> int:
    _signal.signal(_signal.SIGTERM, _exit_on_signal)
    _signal.signal(_signal.SIGINT, _exit_on_signal)
    args = parse_args(argv)
    prompt = args.prompt
    if not prompt and not sys.stdin.isatty():
        prompt = sys.stdin.read()  # as Claude Code takes it; baro passes it this way
    workspace = os.path.realpath(os.getcwd())
    try:
        # standing in for `claude` (no BARO_* from the runner), it reads the story's prompt
        story = story_from_env({**story_from_prompt(prompt), **os.environ})
        script, script_source = load_script(os.environ)
        steps, rule = select_steps(script, story, workspace, prompt)
    except ScriptError as exc:
        print(f"baro-scripted-agent: {exc}", file=sys.stderr)
        return 2
    invocation = {
        "prompt": prompt,
        "model": args.model,
        "argv": sys.argv[1:] if argv is None else argv,
    }
    question = os.environ.get(QUESTION_ENV) == "1"
    agent = ScriptedAgent(
        story, workspace, args.model, args.session_id or _uuid4(), invocation, question
    )
    agent.emit_init(args.permission_mode, script_source, rule)
    return agent.run(steps)


def exit_after(code: int) -> NoReturn:
    """Leave with ``code`` without the interpreter's finalization (a few milliseconds of a
    one-step story's start and end): every line was flushed as it was written, and
    nothing else the agent made waits for an exit handler."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        code = 120  # what the interpreter's own exit gives when it cannot flush
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
