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

_SHAPES = [
    re.compile(r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # JWTs
]
_LABELLED = re.compile(
    r"(?i)(\b(?:bearer|authorization:\s*bearer)\s+|"
    r"\b[\w-]*(?:api[_-]?key|token|secret|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"',;&]{6,})"
)
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
    for shape in _SHAPES:
        text = shape.sub(MASK, text)
    return _LABELLED.sub(lambda m: m.group(1) + MASK, text)


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
