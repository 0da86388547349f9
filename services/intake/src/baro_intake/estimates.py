"""Expected tokens and wall-clock per mode, from this repository's past runs.

The conductor keeps every finished run's figures in the history bucket; here they are
read back. An estimate for a mode uses only past runs of that mode whose story count is
in the same size band as this goal's; with none, the estimate says so (``samples=0``,
values None) instead of guessing from other modes or sizes.
"""

from __future__ import annotations

import statistics

from baro_shared.schemas import Estimate, IntakeDecision, Mode, PastRun, RepoHistory

MODES: tuple[Mode, ...] = ("focused", "sequential", "parallel")
# Story-count bands: runs in one band are comparable enough to share an estimate.
SIZE_BANDS: tuple[tuple[int, int], ...] = ((1, 1), (2, 3), (4, 7), (8, 1_000_000))
# A run that stopped early (failed, cancelled) says little about what a whole run costs.
USABLE_STATUSES = frozenset({"delivered", "needs_attention"})


def size_band(stories: int) -> tuple[int, int]:
    for band in SIZE_BANDS:
        if band[0] <= stories <= band[1]:
            return band
    return SIZE_BANDS[-1]


def expected_stories(decision: IntakeDecision, mode: Mode) -> int:
    """How many stories this goal would get in ``mode``.

    Focused is one story. Sequential and parallel get the suggested story cap (the units
    or steps the intake found), at least two.
    """
    return 1 if mode == "focused" else max(2, decision.caps.max_stories)


def estimate(runs: list[PastRun], mode: Mode, stories: int) -> Estimate:
    band = size_band(stories)
    alike = [
        run
        for run in runs
        if run.mode == mode
        and run.status in USABLE_STATUSES
        and band[0] <= max(1, run.stories) <= band[1]
    ]
    if not alike:
        return Estimate(mode=mode)
    known_tokens = [run.tokens.total for run in alike if run.tokens.is_known()]
    return Estimate(
        mode=mode,
        samples=len(alike),
        tokens=round(statistics.median(known_tokens)) if known_tokens else None,
        wall_s=round(statistics.median(run.wall_s for run in alike), 1),
    )


def estimates_for(history: RepoHistory | None, decision: IntakeDecision) -> list[Estimate]:
    """One estimate per mode, in the picker's order."""
    runs = history.runs if history is not None else []
    return [estimate(runs, mode, expected_stories(decision, mode)) for mode in MODES]
