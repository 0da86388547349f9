"""Run ids: how they are made, and what a run id given by a user may look like.

A run id becomes a token of NATS subjects (``baro.evt.<run>.<topic>``) and part of KV keys
and object names, so one taken from a user is checked before it reaches the bus: a dot, a
``*`` or a ``>`` would turn a subscription for one run into one for many.
"""

from __future__ import annotations

import re
import secrets
import time

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxxxx``: sorts by submission time, unique enough to never clash."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def is_run_id(text: str) -> bool:
    return bool(_RUN_ID.match(text))
