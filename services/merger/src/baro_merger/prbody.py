"""The pull request of a run: its title and body, built from the run record. Pure.

The body holds what a reviewer needs to judge the run: the goal, the mode with its
confidence and reason, the stories table (status, duration, tokens), the artifacts left
out of the branch, what the merger refused or found outside the write surfaces, the
verification result, and the totals (tokens, cost, wall-clock, summed agent time,
speedup: ``baro_shared.totals``, the figures every view of a run shows).
"""

from __future__ import annotations

from collections.abc import Sequence

from baro_shared import schemas as s
from baro_shared.checks import verdict
from baro_shared.goals.envelope import clarification_markdown
from baro_shared.totals import dollars, run_totals

TITLE_MAX = 72
GOAL_MAX = 2000
DROPPED_SHOWN = 50


def pr_title(goal: str) -> str:
    first = next((line.strip() for line in goal.splitlines() if line.strip()), "baro change")
    if len(first) > TITLE_MAX:
        first = first[: TITLE_MAX - 1].rstrip() + "…"
    return first


def pr_body(
    record: s.RunRecord,
    *,
    commits: int,
    files_changed: Sequence[str],
    dropped: Sequence[str],
    verify: str | None,
    verify_command: str | None,
    now: float,
    gate: Sequence[s.CheckResult] = (),
) -> str:
    lines = ["## Goal", "", _quote(record.request.goal.strip()[:GOAL_MAX]), ""]
    lines += _mode_lines(record)
    clarified = clarification_markdown(record.clarification, record.envelope, heading="##")
    lines += ["", *clarified[:-1]] if clarified else []
    lines += ["", "## Stories", "", *stories_table(record.stories), ""]
    lines += ["## Dropped artifacts", ""]
    if dropped:
        lines.append(
            "Files the agents wrote that nobody asked for; left out of this branch, kept in "
            f"`refs/baro/{record.run_id}/<story>/<attempt>`:"
        )
        lines += [f"- `{path}`" for path in dropped[:DROPPED_SHOWN]]
        if len(dropped) > DROPPED_SHOWN:
            lines.append(f"- … and {len(dropped) - DROPPED_SHOWN} more")
    else:
        lines.append("None.")
    lines.append("")
    lines += trust_lines(record.stories)
    lines += review_lines(record)
    if gate:
        lines += run_gate_lines(gate)
    elif verify is not None:
        lines += ["## Verification", "", f"`{verify_command or 'verify'}` {verify}.", ""]
    lines += ["## Totals", "", *totals_table(record, now), ""]
    lines.append(
        f"<sub>baro run `{record.run_id}`: {commits} commit(s), "
        f"{len(files_changed)} file(s) changed.</sub>"
    )
    return "\n".join(lines) + "\n"


def trust_lines(stories: Sequence[s.StoryState]) -> list[str]:
    """What the merger refused or found outside the write surfaces, per story."""
    rows: list[str] = []
    for st in stories:
        for refusal in st.refused:
            rows.append(
                f"- {_cell(st.story.id)}: `{refusal.path}` refused ({refusal.rule}: "
                f"{_inline(refusal.reason)})"
            )
        if st.surface_violations:
            fate = "left out" if st.rejections else "integrated anyway"
            policy = f", policy {st.surface_policy}" if st.surface_policy else ""
            paths = ", ".join(f"`{p}`" for p in st.surface_violations[:DROPPED_SHOWN])
            rows.append(
                f"- {_cell(st.story.id)}: changed files outside its write surface "
                f"({fate}{policy}): {paths}"
            )
    if not rows:
        return []
    return [
        "## Outside the fences",
        "",
        "What the agents changed that a story may not deliver; refused paths are kept in "
        "the stories' refs, not in this branch:",
        *rows,
        "",
    ]


VERDICT_TEXT = {
    "passed": "every check passed",
    "failed": "a check failed",
    "skipped": "unknown: no check could judge the result (a skipped check is not a pass)",
}


def run_gate_lines(gate: Sequence[s.CheckResult]) -> list[str]:
    """The run's checks on the integrated result: the verdict and each check."""
    lines = ["## Run checks", "", f"Verdict: {VERDICT_TEXT[verdict(gate) or 'skipped']}.", ""]
    lines += ["| check | result | exit code |", "|---|---|---:|"]
    lines += [_check_row(check) for check in gate]
    return [*lines, ""]


def _check_row(check: s.CheckResult, story: str | None = None) -> str:
    result = f"{check.result} ({_inline(check.note)})" if check.note else check.result
    code = "-" if check.exit_code is None else str(check.exit_code)
    first = f"| {_cell(story)} " if story is not None else ""
    return f"{first}| `{_cell(check.command)}` | {_cell(result)} | {code} |"


def review_lines(record: s.RunRecord) -> list[str]:
    """The stories' checks (their gates) and the review loop's decisions."""
    lines: list[str] = []
    gates = [(st, st.result.checks) for st in record.stories if st.result and st.result.checks]
    if gates:
        lines += [
            "## Story checks",
            "",
            "| story | check | result | exit code |",
            "|---|---|---|---:|",
        ]
        for st, results in gates:
            lines += [_check_row(check, st.story.id) for check in results]
        lines.append("")
    if record.decisions:
        lines += ["## Review loop", ""]
        for decision in record.decisions:
            who = f"{_cell(decision.story_id)} " if decision.story_id else ""
            lines.append(f"- {who}**{decision.action}**: {_inline(decision.reason)}")
        lines.append("")
    return lines


def _mode_lines(record: s.RunRecord) -> list[str]:
    decision = record.decision
    if record.mode is None:
        return []
    confidence = (
        f" ({decision.confidence:.0%} confident)"
        if decision is not None and decision.mode == record.mode
        else ""
    )
    source = record.mode_source or "intake"
    reason = f" — {_inline(decision.reason)}" if decision is not None and decision.reason else ""
    lines = [f"**Mode:** {record.mode}{confidence}, decided by {source}{reason}"]
    if decision is not None and decision.vague and decision.interpretation:
        lines.append(f"**Vague goal, read as:** {_inline(decision.interpretation)}")
    if record.enforcement:
        lines += ["", "**Plan enforcement:**", *(f"- {_inline(n)}" for n in record.enforcement)]
    return lines


def stories_table(stories: Sequence[s.StoryState]) -> list[str]:
    rows = [
        "| story | title | status | duration | agent time | tokens in / cached / out | cost |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for st in stories:
        duration = (
            _duration(st.finished_at - st.started_at)
            if st.finished_at is not None and st.started_at is not None
            else "-"
        )
        tokens = st.tokens
        rows.append(
            f"| {_cell(st.story.id)} | {_cell(st.story.title[:80])} | {st.status} | {duration} | "
            f"{_duration(st.agent_seconds)} | "
            f"{_count(tokens.input)} / {_count(tokens.cached_input)} / {_count(tokens.output)} | "
            f"{dollars(tokens.cost_usd)} |"
        )
    return rows


def totals_table(record: s.RunRecord, now: float) -> list[str]:
    """The run's figures as of ``now`` (delivery is the last step: the run is all but over)."""
    totals = run_totals(record, now)
    tokens = totals.tokens
    speedup = totals.speedup
    return [
        "| tokens in | cached | out | cost | wall-clock | summed agent time | speedup |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {_count(tokens.input)} | {_count(tokens.cached_input)} | {_count(tokens.output)} | "
        f"{dollars(tokens.cost_usd)} | {_duration(totals.wall_s)} | {_duration(totals.agent_s)} | "
        f"{f'{speedup:.2f}x' if speedup is not None else '-'} |",
        "",
        "<sub>Summed agent time adds up every attempt's agent process, from its start to its "
        "exit; speedup is that over the wall-clock.</sub>",
    ]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|")


def _inline(text: str) -> str:
    return " ".join(text.split())


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())
