"""Redaction skips the expressions a text cannot match (it runs on every line an agent
writes); what it masks is exactly what running every expression masks."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from baro_shared import redact as r

FRAGMENTS = [
    "sk-ant-" + "a1B2" * 6,
    "sk-proj-" + "Z9" * 10,
    "ghp_" + "x" * 24,
    "gho_" + "Y" * 22,
    "github_pat_" + "q_" * 12,
    "xoxb-" + "1234-" * 3,
    "AKIA" + "ABCDEFGHIJKLMNOP",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3In0.c2lnbmF0dXJlX2hlcmU",
    "Authorization: Bearer abcdef123456",
    "bearer  tok3n-value",
    'api_key="s3cr3tvalue"',
    "API-KEY: 0123456789",
    "password=hunter22",
    "passwd: longenough",
    "authorization:bearer 0123456789",
    "x-api-key: zzzzzzzz",
    "apikey=qqqqqqqq",
    "TOKEN  =  'abcdefgh'",
    "İ",
    "ǅ",
    "-",
    "_",
    "'",
    "MY_TOKEN=abcdefgh",
    "client_secret: 'shhh-secret'",
    "tokens in 1200",
    "input_tokens",
    "keyboard",
    "gh",
    "sk-",
    "high",
    " ",
    "\n",
    '"',
    "=",
    ":",
]


# the expressions as they were before redaction skipped any work: the specification
SHAPES = [shape for shape, _ in r._SHAPES]
LABELLED = re.compile(
    r"(?i)(\b(?:bearer|authorization:\s*bearer)\s+|"
    r"\b[\w-]*(?:api[_-]?key|token|secret|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"',;&]{6,})"
)


def reference(text: str) -> str:
    """Every expression, on the whole text."""
    for shape in SHAPES:
        text = shape.sub(r.MASK, text)
    return LABELLED.sub(lambda m: m.group(1) + r.MASK, text)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=12))
def test_skipping_changes_nothing(parts: list[str]) -> None:
    text = "".join(parts)
    assert r.redact(text) == reference(text)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="apikeytoknsecrtwdbarhzAPIKEYTOKN_-=:\"' \n.İ0123456789", max_size=60))
def test_skipping_changes_nothing_on_near_misses(text: str) -> None:
    assert r.redact(text) == reference(text)
