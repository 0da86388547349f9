"""Keep credentials out of logs, events and API answers.

Three nets: well-known key shapes (provider API keys, GitHub tokens, bearer headers,
``key=value`` assignments of secret-looking names), credentials inside URLs
(``https://TOKEN@host``, ``https://user:password@host``), and the exact values of the
secrets this process knows about (its credential environment variables).

It is applied where text leaves a service, not by each caller: ``Bus.publish`` (every
event and command), ``Bus.publish_agent_event``, the API's views of runs and events, and
the log handlers (``install_log_redaction``). ``scrub`` leaves alone what a run needs
verbatim: the submitted request, stories (an agent's instructions), repository sources
(a clone needs their URL), and repository paths.
"""

from __future__ import annotations

import logging
import os
import re
from functools import lru_cache
from typing import TypeVar

import msgspec

from baro_shared import schemas as s

T = TypeVar("T")

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
# the user-info part of a URL: "https://<this>@host"
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@'\"<>]+)@")
# a plain user name (git@, ssh://deploy@) names nobody's secret
_USER_NAME_SCHEMES = frozenset({"ssh://", "git://", "git+ssh://", "ssh+git://"})


@lru_cache(maxsize=1)
def _known_values() -> tuple[str, ...]:
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return tuple(sorted(values, key=len, reverse=True))


def refresh() -> None:
    """Forget cached secret values (after the environment changed)."""
    _known_values.cache_clear()


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    if scheme.lower() in _USER_NAME_SCHEMES and ":" not in userinfo:
        return match.group(0)
    return f"{scheme}{MASK}@"


def mask_url_credentials(text: str) -> str:
    """``text`` with every URL's user information masked (an https user name is often a
    token); a plain ssh or git user name stays."""
    return _URL_USERINFO.sub(_mask_userinfo, text)


def redact(text: str) -> str:
    if not text:
        return text
    for value in _known_values():
        if value in text:
            text = text.replace(value, MASK)
    for shape, literals in _SHAPES:
        if any(literal in text for literal in literals):
            text = shape.sub(MASK, text)
    if "@" in text:
        text = mask_url_credentials(text)
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


# what scrub leaves verbatim: the run needs it exactly as given, and none of it is
# produced from secrets (ids, paths in the repository, the goal and the model)
_KEPT_FIELDS = frozenset(
    {
        "run_id",
        "story_id",
        "goal",
        "agent_script",
        "model",
        "slug",
        "changed_files",
        "surface_violations",
        "files_changed",
        "dropped_artifacts",
        "paths",
        "conflict_paths",
    }
)


def scrub(value: T) -> T:
    """``value`` (a bus message, a run record, a list or dict of them) with every string
    redacted, except what the run needs verbatim (see the module doc)."""
    if isinstance(value, str):
        return redact(value)  # type: ignore[return-value]
    if isinstance(value, s.RunSubmitted | s.Story | s.RepoSource):
        return value
    if isinstance(value, msgspec.Struct):
        changes = {}
        for name in value.__struct_fields__:
            if name in _KEPT_FIELDS:
                continue
            field = getattr(value, name)
            cleaned = scrub(field)
            if cleaned is not field:
                changes[name] = cleaned
        return msgspec.structs.replace(value, **changes) if changes else value
    if isinstance(value, list):
        items = [scrub(item) for item in value]
        same = all(a is b for a, b in zip(items, value, strict=True))
        return value if same else items  # type: ignore[return-value]
    if isinstance(value, dict):
        pairs = {key: scrub(item) for key, item in value.items()}
        same = all(pairs[key] is item for key, item in value.items())
        return value if same else pairs  # type: ignore[return-value]
    return value


class RedactingFilter(logging.Filter):
    """Redacts a record's message and, formatted once here, its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction() -> None:
    """Redact every record that reaches the root handlers."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
