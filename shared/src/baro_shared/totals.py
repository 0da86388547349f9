"""What a run took and cost: the one definition behind every figure baro shows.

The run summary (`baro run`, `--json`), `baro status`, the HTTP API, the pull request body,
the run record and the metrics all read :func:`run_totals`, so they never disagree
(docs/architecture.md, "What a run took and cost"):

- ``wall_s``: from the conductor's first record of the run to its final state (or to now,
  while it runs).
- ``agent_s``: the summed lifetime of the run's agent processes, each from the agent
  process's start to its exit as the runner measured it, over every attempt of every story
  (failed attempts, retries, re-runs and superseded attempts included). Waiting in a queue,
  preparing a workspace, committing and integrating are not agent time; an attempt whose
  runner died before it reported is not counted (its time is unknown).
- ``speedup``: ``agent_s / wall_s`` — how many agents were at work on average. Below 1 when
  agents ran one at a time (intake, planning, integration and delivery take wall-clock
  too); above 1 only when agents ran side by side. None until an agent has run.
- ``tokens``: every attempt of every story plus the intake's and the planner's model
  calls; ``tokens.cost_usd`` is the price the backends reported, None when none did.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

from baro_shared import schemas as s


def run_tokens(rec: s.RunRecord) -> s.TokenUsage:
    """Everything the run's model calls used so far: stories, planning, intake."""
    tokens = rec.plan_tokens
    if rec.decision is not None:
        tokens = tokens + rec.decision.tokens
    for st in rec.stories:
        tokens = tokens + st.tokens
    return tokens


def run_totals(rec: s.RunRecord, now: float) -> s.Totals:
    wall = round(max(0.0, (rec.finished_at or now) - rec.created_at), 3)
    agent = round(sum(st.agent_seconds for st in rec.stories), 3)
    return s.Totals(
        tokens=run_tokens(rec),
        wall_s=wall,
        agent_s=agent,
        speedup=speedup(agent, wall),
        stories=len(rec.stories),
        stories_integrated=sum(1 for st in rec.stories if st.status == "integrated"),
    )


def speedup(agent_s: float, wall_s: float) -> float | None:
    """Summed agent time over wall-clock (None before any agent ran)."""
    if agent_s <= 0 or wall_s <= 0:
        return None
    return round(agent_s / wall_s, 3)


def dollars(cost_usd: float | None) -> str:
    """A price as baro shows it: ``$0.0542``; ``unknown`` when no backend reported one."""
    if cost_usd is None:
        return "unknown"
    return f"${cost_usd:.4f}" if cost_usd < 100 else f"${cost_usd:,.2f}"
