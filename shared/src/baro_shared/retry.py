"""One retry budget per story: when a failed attempt may be followed by another.

Every agent run of a story counts against ``Limits.max_attempts``, whoever starts it (the
runner handing a story back after a transient failure, the conductor running it again
after the agent's own failure, a re-run after a merge conflict). Time counts too: no
retry starts later than ``Limits.retry_window_s`` after the story's first failed attempt.
The runner and the conductor ask the same function, so a story handed back by one is
never refused by the other, and a persistent failure ends the story within the budget.

A retry after a transient failure waits first: ``first_delay`` doubling with each attempt,
at most ``MAX_DELAY_S``, and never past the end of the window. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from baro_shared.schemas import Limits

MAX_DELAY_S = 120.0


@dataclass(frozen=True)
class Budget:
    """The budget of one story: its limits and when its time window opened."""

    max_attempts: int
    window_s: float
    since: float  # the first failed attempt's time (epoch seconds)

    @classmethod
    def of(cls, limits: Limits, since: float) -> Budget:
        return cls(max(1, limits.max_attempts), max(0.0, limits.retry_window_s), since)

    @property
    def closes_at(self) -> float:
        return self.since + self.window_s

    def allows_retry(self, attempts: int, now: float) -> bool:
        """Whether another agent run may start after ``attempts`` runs, at ``now`` (a
        window of 0 allows none)."""
        return attempts < self.max_attempts and now < self.closes_at

    def delay(self, attempts: int, now: float, first_delay: float) -> float | None:
        """The wait before the next attempt after a transient failure, or None when the
        budget is spent."""
        if not self.allows_retry(attempts, now):
            return None
        backoff = min(MAX_DELAY_S, max(0.0, first_delay) * 2 ** max(0, attempts - 1))
        return max(0.0, min(backoff, self.closes_at - now))

    def spent(self, attempts: int, now: float) -> str:
        """Why no retry follows, for the story's reason."""
        took = max(0.0, now - self.since)
        plural = "s" if attempts != 1 else ""
        return (
            f"gave up after {attempts} attempt{plural} in {took:.0f}s "
            f"(retry budget: {self.max_attempts} attempts within {self.window_s:.0f}s)"
        )
