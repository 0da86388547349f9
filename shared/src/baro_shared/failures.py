"""Why an agent CLI's run failed, and what that means for a retry: one reading for every
caller (the runner's story attempts, intake's and the planner's one-shot questions).

The stream says it first (the mapper's error and its kind, ``mappers.base.classify``).
When the stream does not say why (the CLI exited without a result), its stderr does: the
last lines are shown in the error and classified the same way, and a provider key missing
from the agent's environment (OpenCode's "Model not found" for a provider whose key is
unset) is an authentication failure naming the variables.
"""

from __future__ import annotations

from collections.abc import Mapping

from baro_shared import schemas as s
from baro_shared.backends import missing_provider_key
from baro_shared.mappers import StreamMapper
from baro_shared.mappers.base import classify
from baro_shared.redact import redact

STDERR_SHOWN_LINES = 5  # of the stderr tail, in a failure's message
STDERR_LINE_CHARS = 200


def stderr_summary(stderr: str) -> str:
    """The last lines of an agent's stderr, on one line, each redacted and cut short."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    shown = []
    for line in lines[-STDERR_SHOWN_LINES:]:
        line = redact(line)  # before cutting, so a cut never hides half a key from it
        shown.append(line if len(line) <= STDERR_LINE_CHARS else line[:STDERR_LINE_CHARS] + "…")
    return " | ".join(shown)


def explain(
    mapper: StreamMapper, stderr: str, env: Mapping[str, str], exit_code: int | None
) -> tuple[str, s.ErrorKind | None]:
    """The error of a run whose outcome was not a success, and its kind (None: the agent's
    own failure)."""
    error = mapper.error or (
        f"exited with code {exit_code}" if exit_code else "the agent reported failure"
    )
    kind = mapper.failure_kind
    if not mapper.explained:  # the stream did not say why: the agent's stderr may
        missing = missing_provider_key(mapper.backend, stderr, env)
        if missing is not None:  # neither the agent's failure nor the model's: set the key
            return missing, "auth"
        shown = stderr_summary(stderr)
        if shown:
            error = f"{error}; its stderr ends: {shown}"
            kind = kind or classify(shown)
    return error, kind
