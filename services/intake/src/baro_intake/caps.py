"""Suggested caps for each mode, shared by the offline and the LLM intake.

These are suggestions shown to the user and passed to the planner; the conductor
enforces the user's own limits on top of them.
"""

from __future__ import annotations

from baro_shared.schemas import Caps, Mode

MAX_SEQUENTIAL_STORIES = 8
MAX_PARALLEL_STORIES = 16
MAX_SUGGESTED_PARALLELISM = 4


def caps_for(mode: Mode, size: int, after: int = 0) -> Caps:
    """Caps for ``mode`` given the number of steps (sequential) or units (parallel), and
    ``after``: stories that run once the units are done (the one registering them)."""
    if mode == "sequential":
        return Caps(max_stories=max(2, min(size, MAX_SEQUENTIAL_STORIES)), parallelism=1)
    if mode == "parallel":
        stories = max(2, min(size, MAX_PARALLEL_STORIES))
        return Caps(
            max_stories=min(stories + after, MAX_PARALLEL_STORIES),
            parallelism=min(stories, MAX_SUGGESTED_PARALLELISM),
        )
    return Caps(max_stories=1, parallelism=1)


def clamp_caps(mode: Mode, max_stories: int, parallelism: int) -> Caps:
    """Bring caps proposed by someone else inside the same bounds."""
    if mode == "focused":
        return Caps(max_stories=1, parallelism=1)
    if mode == "sequential":
        return Caps(max_stories=max(1, min(max_stories, MAX_SEQUENTIAL_STORIES)), parallelism=1)
    stories = max(1, min(max_stories, MAX_PARALLEL_STORIES))
    return Caps(
        max_stories=stories,
        parallelism=max(1, min(parallelism, stories, MAX_SUGGESTED_PARALLELISM)),
    )
