"""Past runs per repository, for the intake's cost estimates (pure).

When a run reaches a final state its figures (mode, stories, tokens, wall-clock) are added
to its repository's history; the intake reads them back to show what each mode is
expected to cost. Each repository keeps its most recent runs per mode, and a run is
added once however often its final transition is seen.
"""

from __future__ import annotations

from baro_shared import schemas as s

MAX_RUNS_PER_MODE = 20


def became_final(old: s.RunRecord | None, new: s.RunRecord) -> bool:
    """True for the one committed transition that took a run to its final state."""
    was_final = old is not None and old.state in s.TERMINAL_RUN_STATES
    return new.state in s.TERMINAL_RUN_STATES and not was_final


def past_run(record: s.RunRecord) -> s.PastRun | None:
    """A finished run's figures; None for a run that never ran a story (nothing to learn)."""
    if record.state not in s.TERMINAL_RUN_STATES or record.mode is None or not record.stories:
        return None
    finished = record.finished_at or record.updated_at
    started = record.confirmed_at or record.created_at
    return s.PastRun(
        run_id=record.run_id,
        mode=record.mode,
        status=record.state,
        stories=len(record.stories),
        parallelism=record.caps.parallelism if record.caps else 1,
        tokens=record.totals.tokens,
        wall_s=round(max(0.0, finished - started), 3),
        finished_at=finished,
    )


def with_run(history: s.RepoHistory | None, run: s.PastRun) -> s.RepoHistory | None:
    """The history with ``run`` added; None when it holds that run already."""
    runs = list(history.runs) if history is not None else []
    if any(known.run_id == run.run_id for known in runs):
        return None
    runs.append(run)
    runs.sort(key=lambda known: known.finished_at)
    kept: list[s.PastRun] = []
    per_mode: dict[str, int] = {}
    for known in reversed(runs):  # newest first, so the oldest of a full mode drop out
        per_mode[known.mode] = per_mode.get(known.mode, 0) + 1
        if per_mode[known.mode] <= MAX_RUNS_PER_MODE:
            kept.append(known)
    kept.reverse()
    return s.RepoHistory(runs=kept)
