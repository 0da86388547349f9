"""Keep credentials out of logs and events.

Two nets: well-known key shapes (provider API keys, GitHub tokens, bearer headers,
``key=value`` assignments of secret-looking names), and the exact values of the secrets
this process knows about (its credential environment variables).
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache

import msgspec

MASK = "[redacted]"

# each shape with the literals one of which any match contains: a text without them is
# skipped without running the expression (redaction runs on every line an agent writes)
_SHAPES = [
    (re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"), ("sk-",)),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), ("github_pat_",)),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), ("xox",)),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), ("AKIA",)),
    (  # JWTs
        re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
        ("eyJ",),
    ),
]
# a secret-looking name assigned a value, or a bearer header: the label stays, the value is
# masked. A match starts at one of _LABEL_STARTS, so only those places are tried (a
# case-insensitive alternation tried at every character is most of redaction's cost).
_LABELLED = re.compile(
    r"(?i)(\b(?:bearer|authorization:\s*bearer)\s+|"
    r"(?:api[_-]?key|token|secret|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"',;&]{6,})"
)
_LABEL_STARTS = ("authorization", "bearer", "api", "token", "secret", "passw")
_SECRET_ENV = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)")


@lru_cache(maxsize=1)
def _known_values() -> tuple[str, ...]:
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return tuple(sorted(values, key=len, reverse=True))


def refresh() -> None:
    """Forget cached secret values (after the environment changed)."""
    _known_values.cache_clear()


def redact(text: str) -> str:
    if not text:
        return text
    for value in _known_values():
        if value in text:
            text = text.replace(value, MASK)
    for shape, literals in _SHAPES:
        if any(literal in text for literal in literals):
            text = shape.sub(MASK, text)
    return _mask_labelled(text)


def _mask_labelled(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer: no index map
        return _LABELLED.sub(lambda m: m.group(1) + MASK, text)
    starts = sorted({i for word in _LABEL_STARTS for i in _occurrences(lowered, word)})
    out: list[str] = []
    done = 0
    for start in starts:
        if start < done:
            continue
        found = _LABELLED.match(text, start)
        if found is not None:
            out += [text[done : found.end(1)], MASK]
            done = found.end()
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _occurrences(text: str, word: str) -> list[int]:
    found, at = [], text.find(word)
    while at != -1:
        found.append(at)
        at = text.find(word, at + 1)
    return found


def redact_struct(obj: msgspec.Struct) -> msgspec.Struct:
    """A copy of ``obj`` with every string field redacted (one level deep)."""
    changes = {
        name: redact(value)
        for name in obj.__struct_fields__
        if isinstance(value := getattr(obj, name), str) and value
    }
    return msgspec.structs.replace(obj, **changes) if changes else obj


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Redact every record that reaches the root handlers."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
