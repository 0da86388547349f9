"""A mapper never raises, whatever it is fed, and what it emits always fits the schema.

Beyond "no exception" (which a catch-all would give for free), every stream checks that
no line needed the catch-all (``_mapping_failures``), that the events survive a round
trip through the bus decoder, that excerpts stay bounded, that the usage total is the
sum of the Usage events, and that ``finish`` closes the stream with one AgentFinished.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baro_shared.mappers import BACKENDS, mapper_for
from baro_shared.mappers.base import EXCERPT_CHARS, TEXT_CHARS
from baro_shared.schemas import (
    AgentFinished,
    AssistantText,
    CommandRun,
    NormalizedEvent,
    Thinking,
    TokenUsage,
    ToolFinished,
    ToolStarted,
    Usage,
)

from .conftest import FIXTURES, roundtrip

BOUND_SLACK = 40  # room for the "… [N more chars]" marker

# The type values each backend knows, so random objects reach the real code paths.
KNOWN_TYPES: dict[str, list[str]] = {
    "claude": ["system", "assistant", "user", "result", "rate_limit_event", "stream_event"],
    "codex": [
        "thread.started",
        "turn.started",
        "turn.completed",
        "turn.failed",
        "error",
        "item.started",
        "item.updated",
        "item.completed",
    ],
    "opencode": ["step_start", "text", "reasoning", "tool_use", "step_finish", "error"],
    "pi": [
        "session",
        "message_start",
        "message_update",
        "message_end",
        "turn_end",
        "agent_end",
        "agent_settled",
        "tool_execution_start",
        "tool_execution_end",
        "auto_retry_end",
    ],
}


def _fixture_lines(backend: str) -> list[bytes]:
    return [
        line
        for path in sorted((FIXTURES / backend).glob("*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


FIXTURE_LINES = {backend: _fixture_lines(backend) for backend in BACKENDS}
FIXTURE_OBJECTS = {
    backend: [json.loads(line) for line in FIXTURE_LINES[backend]] for backend in BACKENDS
}


def _keys_in(value: object, into: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            into.add(key)
            _keys_in(item, into)
    elif isinstance(value, list):
        for item in value:
            _keys_in(item, into)
    return into


# Every key seen in any fixture, plus values that steer the mappers' branches.
KEYS = sorted(
    _keys_in(FIXTURE_OBJECTS, set()) | {"exitCode", "exit", "finalError", "patchText", "filePath"}
)
STEERING_STRINGS = sorted(
    {t for types in KNOWN_TYPES.values() for t in types}
    | {"init", "tool_use", "tool_result", "text", "thinking", "toolCall", "assistant", "toolResult"}
    | {
        "command_execution",
        "file_change",
        "mcp_tool_call",
        "web_search",
        "agent_message",
        "reasoning",
    }
    | {"completed", "failed", "error", "stop", "aborted", "tool-calls", "Write", "Edit", "Bash"}
    | {"bash", "edit", "write", "patch", "Reconnecting... 1/5", "429 rate limit", "success"}
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(STEERING_STRINGS)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


def typed_objects(backend: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with a type this backend knows and random (often wrongly typed) fields."""
    return st.builds(
        lambda kind, fields: {**fields, "type": kind},
        st.sampled_from(KNOWN_TYPES[backend]),
        st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
    )


@st.composite
def mutated_fixture_objects(draw: st.DrawFn, backend: str) -> dict[str, Any]:
    """A real captured line with one nested value replaced by random JSON."""
    obj = json.loads(json.dumps(draw(st.sampled_from(FIXTURE_OBJECTS[backend]))))
    node: Any = obj
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        containers = [
            (key, child) for key, child in children if isinstance(child, dict | list) and child
        ]
        if not containers:
            break
        _, node = draw(st.sampled_from(containers))
    if isinstance(node, dict) and node:
        node[draw(st.sampled_from(sorted(node)))] = draw(json_values)
    elif isinstance(node, list) and node:
        node[draw(st.integers(min_value=0, max_value=len(node) - 1))] = draw(json_values)
    return obj


def encode(obj: object) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


def check_stream(backend: str, lines: list[bytes | str], exit_code: int | None = 0) -> None:
    mapper = mapper_for(backend)
    events: list[NormalizedEvent] = []
    for line in lines:
        events.extend(mapper.feed(line))
    events.extend(mapper.finish(exit_code))
    assert mapper.finish(exit_code) == []

    assert mapper._mapping_failures == 0
    (finished,) = (e for e in events if isinstance(e, AgentFinished))
    assert mapper.outcome_ok is finished.ok
    assert mapper.error == finished.error
    reported = (e.usage + TokenUsage(cost_usd=e.cost_usd) for e in events if isinstance(e, Usage))
    assert sum(reported, start=TokenUsage()) == mapper.usage
    for event in events:
        assert roundtrip(event) == event
        if isinstance(event, ToolStarted):
            assert len(event.input) <= EXCERPT_CHARS + BOUND_SLACK
        elif isinstance(event, ToolFinished | CommandRun):
            assert len(event.output) <= EXCERPT_CHARS + BOUND_SLACK
        elif isinstance(event, AssistantText | Thinking):
            assert len(event.text) <= TEXT_CHARS + BOUND_SLACK
        elif isinstance(event, Usage):
            for count in (
                event.usage.input,
                event.usage.cached_input,
                event.usage.output,
                event.usage.reasoning,
            ):
                assert count is None or count >= 0


fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(backend=st.sampled_from(BACKENDS), lines=st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes(backend: str, lines: list[bytes]) -> None:
    check_stream(backend, list(lines))


@fuzz
@given(backend=st.sampled_from(BACKENDS), lines=st.lists(st.text(max_size=200), max_size=8))
def test_arbitrary_text(backend: str, lines: list[str]) -> None:
    check_stream(backend, list(lines))


@fuzz
@given(data=st.data(), backend=st.sampled_from(BACKENDS))
def test_truncated_real_lines(data: st.DataObject, backend: str) -> None:
    lines: list[bytes | str] = []
    for line in data.draw(
        st.lists(st.sampled_from(FIXTURE_LINES[backend]), min_size=1, max_size=6)
    ):
        cut = data.draw(st.integers(min_value=0, max_value=len(line)))
        lines.append(line[:cut])
    check_stream(backend, lines, exit_code=data.draw(st.sampled_from([0, 1, None])))


@fuzz
@given(backend=st.sampled_from(BACKENDS), values=st.lists(json_values, max_size=8))
def test_random_json_values(backend: str, values: list[object]) -> None:
    check_stream(backend, [encode(value) for value in values])


@fuzz
@given(data=st.data(), backend=st.sampled_from(BACKENDS))
def test_known_types_with_wrong_field_types(data: st.DataObject, backend: str) -> None:
    objects = data.draw(st.lists(typed_objects(backend), max_size=10))
    check_stream(
        backend,
        [encode(obj) for obj in objects],
        exit_code=data.draw(st.sampled_from([0, 1, None])),
    )


@fuzz
@given(data=st.data(), backend=st.sampled_from(BACKENDS))
def test_real_lines_with_one_value_replaced(data: st.DataObject, backend: str) -> None:
    objects = data.draw(st.lists(mutated_fixture_objects(backend), min_size=1, max_size=10))
    check_stream(backend, [encode(obj) for obj in objects])


@fuzz
@given(data=st.data(), backend=st.sampled_from(BACKENDS))
def test_real_lines_in_any_order_with_junk_between(data: st.DataObject, backend: str) -> None:
    real = data.draw(st.lists(st.sampled_from(FIXTURE_LINES[backend]), max_size=12))
    junk = data.draw(st.lists(st.binary(max_size=40), max_size=3))
    check_stream(backend, [*real, *junk])


def test_huge_and_deeply_nested_lines() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    huge_text = json.dumps({"type": "text", "sessionID": "s", "part": {"text": "y" * 5_000_000}})
    huge_output = json.dumps(
        {
            "type": "item.completed",
            "item": {
                "id": "i",
                "type": "command_execution",
                "command": "c",
                "aggregated_output": "z" * 5_000_000,
            },
        }
    )
    for backend in BACKENDS:
        check_stream(backend, [deep, huge_text, huge_output, b'{"type":' * 50_000])
