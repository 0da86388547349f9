"""What reaches the terminal: text from runs (goals, titles, reasons, agent output) with
the characters a terminal would act on shown as escapes instead.

A goal can hold anything its submitter typed, and a run's reasons and notes carry text
from agents and git: an ESC, BEL or OSC sequence printed raw would recolour, retitle or
rewrite the user's terminal. Newlines and tabs stay as they are.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

# C0 controls but tab and newline, DEL, C1 controls, bidirectional overrides and
# isolates (which reorder what is shown), lone surrogates (which cannot be printed)
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


class Printable:
    """A text stream whose writes go through ``printable``."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        return self._out.write(printable(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def safe(out: TextIO) -> TextIO:
    return out if isinstance(out, Printable) else Printable(out)  # type: ignore[return-value]
