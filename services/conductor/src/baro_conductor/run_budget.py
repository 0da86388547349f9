"""The run's token budget, as the conductor's decider applies it. Pure.

A runner sees only its own agent, so the conductor hands each attempt an allowance: the
most it may spend of the run's budget. The runner stops its agent as soon as the agent's
spending (as its stream shows it) passes the allowance. Allowances are conservative: what
the run has spent plus what every running attempt may still spend never exceeds the
budget, so the run as a whole stops within it (give or take the model call in flight when
an agent is stopped). The split (docs/backends.md, "Token budgets"):

- what is free is the budget less what the run spent (intake, planning, every attempt
  that reported) and less what running attempts may still spend of their allowances;
- a story that starts gets an even share of what is free among the stories that could
  start now: ``free // min(free slots, stories ready to start)``. A story that starts
  alone (sequential runs, a single ready story) gets all that is free; stories that start
  together split it evenly (when it is too little to split, the first takes it). What a
  story does not spend is free again once it reports.
- nothing free: no story starts. While others run, the ready ones wait for what they
  leave; when none runs, the stories not started are cancelled, and the run ends saying
  the budget stopped it.
"""

from __future__ import annotations

from baro_shared import schemas as s
from baro_shared.totals import run_tokens

ACTIVE = frozenset({"assigned", "running"})


def budget(rec: s.RunRecord) -> int | None:
    return rec.request.limits.run_token_budget


def spent(rec: s.RunRecord) -> int:
    """Tokens the run has used, as far as the conductor knows (reported attempts)."""
    return run_tokens(rec).total


def held(st: s.StoryState) -> int:
    """What a running story may still spend of its allowance."""
    if st.status not in ACTIVE or st.allowance is None:
        return 0
    return max(0, st.allowance - (st.tokens.total - st.allowance_from))


def free(rec: s.RunRecord, besides: s.StoryState | None = None) -> int | None:
    """The budget not spent nor held by running stories (other than ``besides``)."""
    whole = budget(rec)
    if whole is None:
        return None
    holding = sum(held(st) for st in rec.stories if st is not besides)
    return whole - spent(rec) - holding


def allowance(rec: s.RunRecord, st: s.StoryState) -> int | None:
    """What ``st`` may spend if it starts now (None: the run has no token budget)."""
    left = free(rec, besides=st)
    if left is None:
        return None
    by_id = {other.story.id: other for other in rec.stories}
    ready = {
        other.story.id
        for other in rec.stories
        if other.status == "pending"
        and all(by_id[d].status == "integrated" for d in other.story.depends_on)
    } | {st.story.id}
    running = sum(1 for other in rec.stories if other is not st and other.status in ACTIVE)
    slots = (rec.caps.parallelism if rec.caps else 1) - running
    share = left // max(1, min(slots, len(ready)))
    return share if share > 0 else left  # too little to split: the first one takes it


def grant(st: s.StoryState, share: int | None) -> None:
    """Record the allowance of the attempt about to be dispatched."""
    st.allowance = share
    st.allowance_from = st.tokens.total


def running(rec: s.RunRecord) -> bool:
    return any(st.status in ACTIVE for st in rec.stories)


def reached(rec: s.RunRecord) -> str:
    """Why the run stopped short: its budget and what it spent."""
    return (
        f"the run's token budget of {budget(rec) or 0:,} tokens was reached ({spent(rec):,} spent)"
    )
