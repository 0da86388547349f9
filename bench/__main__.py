"""`make bench`: every benchmark, a table, bench/results.json and README's results table.

Each figure is reported as its median with the spread (min-max) over repeated runs, and
where a baseline exists it is measured side by side in the same process and reported as a
ratio. Nothing here passes or fails: targets are printed next to the figures.

    .venv/bin/python -m bench [--quick] [--only intake,mappers,...] [--no-readme]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

Figure = dict[str, Any]
SCHEDULING_SCALE = 1.0  # scheduling stories sleep 1-2 s: baro's own cost per story shows


def figure(values: list[float], unit: str, digits: int = 3, target: str | None = None) -> Figure:
    out: Figure = {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
        "unit": unit,
    }
    if target:
        out["target"] = target
    return out


# --------------------------------------------------------------------------- scenarios


def intake(quick: bool) -> dict[str, Figure]:
    from bench.intake_bench import measure

    runs = [measure(repeat=2) for _ in range(3 if quick else 7)]
    return {
        "classifications_per_s": figure([r["per_second"] for r in runs], "1/s", 0),
        "median_latency_ms": figure([r["median_ms"] for r in runs], "ms", 4),
        "p95_latency_ms": figure([r["p95_ms"] for r in runs], "ms", 4),
    }


def mappers(quick: bool) -> dict[str, Figure]:
    from bench.mappers_bench import measure

    result = measure(repeat=3 if quick else 7)
    out: dict[str, Figure] = {}
    for backend, r in result.items():
        out[f"{backend}_vs_json_loads"] = {
            "median": round(r["line_ratio"], 2),
            "min": round(r["line_ratio_min"], 2),
            "max": round(r["line_ratio_max"], 2),
            "n": 3 if quick else 7,
            "unit": "x",
            "target": ">= 0.5",
        }
        out[f"{backend}_events_per_s"] = {
            "median": round(r["mapper_events_per_s"]),
            "min": round(r["mapper_events_per_s"]),
            "max": round(r["mapper_events_per_s"]),
            "n": 1,
            "unit": "1/s",
        }
    return out


def scheduling(quick: bool) -> dict[str, Figure]:
    """Span over the best achievable makespan (the proven optimum up to 16 stories, else a
    lower bound), with 1-2 s stories, and over the policy's own zero-overhead schedule."""
    from bench.scheduling_bench import SHAPES, figures, run_all

    sizes = [8, 16] if quick else [8, 16, 32, 64]
    return figures(run_all(list(SHAPES), sizes, scale=SCHEDULING_SCALE, repeat=1 if quick else 2))


def overhead(quick: bool) -> dict[str, Figure]:
    from bench.overhead_bench import measure

    result = measure(repeat=5 if quick else 9)
    result["overhead_s"]["target"] = "<= 1.5"
    result["first_agent_s"]["target"] = "<= 0.3"
    return result


def review(quick: bool) -> dict[str, Figure]:
    from bench.review_bench import measure

    result = measure(repeat=5 if quick else 7)
    result["added_per_story_s"]["target"] = "<= 0.3"
    return result


def scaleout(quick: bool) -> dict[str, Figure]:
    from bench.scaleout_bench import measure

    return measure(runs=4 if quick else 6, sleep_s=2.0, repeat=1 if quick else 2)


def integration(quick: bool) -> dict[str, Figure]:
    from bench.merger_bench import measure_integration

    return {
        f"stories_{n}": figure([measure_integration(n) for _ in range(2 if quick else 3)], "s", 3)
        for n in (5, 20, 50)
    }


def policy(quick: bool) -> dict[str, Figure]:
    from baro_shared.inputs import MAX_PLAN_STORIES
    from bench.policy_bench import SHAPES, measure

    result = measure(repeat=3 if quick else 7)
    out: dict[str, Figure] = {}
    for shape in SHAPES:
        for size in (100, MAX_PLAN_STORIES):
            row = result[f"{shape}_{size}"]
            ms = {name: [t * 1000 for t in times] for name, times in row.items()}
            target = "< 1000 ms" if size == MAX_PLAN_STORIES else None
            out[f"{shape}_{size}_ms"] = figure(ms["capped"], "ms", 1, target)
            out[f"{shape}_{size}_uncapped_ms"] = figure(ms["uncapped"], "ms", 1, target)
            out[f"{shape}_{size}_vs_validate"] = figure(
                [c / max(v, 1e-9) for c, v in zip(ms["capped"], ms["validate"], strict=True)],
                "x",
                1,
            )
    return out


def memory(quick: bool) -> dict[str, Figure]:
    from bench.memory_bench import measure

    return measure(stories=20, repeat=1)


def live(quick: bool) -> dict[str, Figure]:
    from bench.live_bench import measure

    return measure(repeat=3 if quick else 5)


def cluster(quick: bool) -> dict[str, Figure]:
    from bench.cluster_bench import measure

    return measure(runs=6 if quick else 12, runners=4)


def _figures(raw: dict[str, tuple[list[float], str, int, str | None]]) -> dict[str, Figure]:
    return {
        name: figure(values, unit, digits, target)
        for name, (values, unit, digits, target) in raw.items()
        if values
    }


def sources(quick: bool) -> dict[str, Figure]:
    from bench.sources_bench import measure

    return _figures(measure(quick))


def prepare(quick: bool) -> dict[str, Figure]:
    from bench.sources_bench import measure_prepare

    return _figures(measure_prepare(quick))


SCENARIOS: dict[str, Callable[[bool], dict[str, Figure]]] = {
    "intake": intake,
    "mappers": mappers,
    "scheduling": scheduling,
    "overhead": overhead,
    "review": review,
    "scaleout": scaleout,
    "integration": integration,
    "memory": memory,
    "live": live,
    "sources": sources,
    "prepare": prepare,
    "policy": policy,
}
# run only when named (make bench-cluster): minutes of their own, on a three-server cluster
SEPARATE: dict[str, Callable[[bool], dict[str, Figure]]] = {"cluster": cluster}


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_at_start": round(os.getloadavg()[0], 2),
    }


def git_revision() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return out.stdout.strip() + ("+dirty" if dirty.strip() else "")


def table(results: dict[str, Any]) -> list[str]:
    rows = ["| scenario | figure | median | spread | target |", "|---|---|---|---|---|"]
    for name, figs in results["scenarios"].items():
        if "error" in figs:
            rows.append(f"| {name} | error | {figs['error']} | | |")
            continue
        for key, f in figs.items():
            spread = f"{f['min']} to {f['max']} (n={f['n']})"
            rows.append(
                f"| {name} | {key} | {f['median']} {f['unit']} | {spread} | {f.get('target', '')} |"
            )
    return rows


HEADLINES = {
    "intake": ("classifications_per_s", "median_latency_ms"),
    "mappers": (
        "claude_vs_json_loads",
        "codex_vs_json_loads",
        "opencode_vs_json_loads",
        "pi_vs_json_loads",
    ),
    "scheduling": (
        *(
            f"{shape}_{n}_vs_best"
            for shape in ("chain", "fanout", "diamond", "layered")
            for n in (8, 16, 32, 64)
        ),
        "new_file_ms",
    ),
    "overhead": ("overhead_s", "first_agent_s"),
    "review": ("added_per_story_s", "added_tokens_per_story", "critic_question_tokens_est"),
    "scaleout": ("stories_per_min_1_runners", "stories_per_min_4_runners", "speedup_4_vs_1"),
    "integration": ("stories_5", "stories_20", "stories_50"),
    "memory": ("peak_rss_conductor", "peak_rss_agent-runner", "peak_rss_merger"),
    "sources": (
        "1mb_local_warm_first_agent_s",
        "1gb_local_warm_first_agent_s",
        "1gb_warm_first_agent_vs_1mb",
        "1gb_warm_first_agent_vs_history_fetch",
        "1gb_local_cold_first_agent_s",
        "1gb_cache_growth_per_run_kb",
        "1gb_cluster_warm_first_agent_s",
        "1gb_cluster_cold_first_agent_s",
        "1gb_history_fetch_s",
        "1gb_workspace_blobless_vs_borrowed",
        "1gb_workspace_shallow_vs_borrowed",
        "load_1min",
    ),
    "prepare": (
        "1mb_warm_prepare_s",
        "1gb_warm_prepare_s",
        "1gb_warm_prepare_vs_1mb",
        "1gb_warm_prepare_vs_100mb",
    ),
    "policy": ("units_500_ms", "globs_500_ms", "undeclared_500_ms", "layered_500_ms"),
}


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The README's short table: a few figures per scenario (all of them are in results.json)."""
    short = {}
    for name, figs in results["scenarios"].items():
        keep = HEADLINES.get(name, ())
        short[name] = figs if "error" in figs else {k: v for k, v in figs.items() if k in keep}
    return {**results, "scenarios": short}


CLUSTER_START, CLUSTER_END = "<!-- bench-cluster:start -->", "<!-- bench-cluster:end -->"
# (label, figure of the cluster's load run, the single-server figure it sits next to)
CLUSTER_ROWS = (
    ("stories per minute", "stories_per_min", ("scaleout", "stories_per_min_4_runners")),
    ("submit to first agent, p50", "first_agent_p50_s", None),
    ("submit to first agent, p99", "first_agent_p99_s", None),
    ("story dispatch latency, p50", "dispatch_p50_s", None),
    ("story dispatch latency, p99", "dispatch_p99_s", None),
    ("peak RSS, conductor", "peak_rss_conductor", ("memory", "peak_rss_conductor")),
    ("peak RSS, agent runner", "peak_rss_agent-runner", ("memory", "peak_rss_agent-runner")),
    ("peak RSS, merger", "peak_rss_merger", ("memory", "peak_rss_merger")),
    ("peak RSS, one nats-server", "peak_rss_nats_server", None),
    ("KEDA lag (max seen)", "keda_lag_max", None),
    (
        "KEDA lag samples (steady: the consumer still while sampled)",
        "keda_lag_steady_samples",
        None,
    ),
    ("KEDA lag vs JetStream API, max difference when steady", "keda_vs_api_max_diff", None),
    (
        "KEDA lag vs baro's running stories, max difference when steady",
        "keda_vs_baro_max_diff",
        None,
    ),
)


def cluster_table(results: dict[str, Any]) -> list[str]:
    figs = results["scenarios"]["cluster"]
    scenarios = results["scenarios"]

    def show(f: Figure | None) -> str:
        return f"{f['median']} {f['unit']}" if f else "—"

    rows = [
        "| figure | 3-server cluster | one server killed mid-load | single server |",
        "|---|---|---|---|",
    ]
    for label, key, single in CLUSTER_ROWS:
        alone = scenarios.get(single[0], {}).get(single[1]) if single else None
        rows.append(
            f"| {label} | {show(figs.get('load_' + key))} "
            f"| {show(figs.get('load_killed_' + key))} | {show(alone)} |"
        )
    quiet = figs.get("failover_first_agent_s")
    rows += [
        "",
        "| one run on an idle stack | 3-server cluster | single server |",
        "|---|---|---|",
        f"| submit to first agent | {show(quiet)} "
        f"| {show(scenarios.get('overhead', {}).get('first_agent_s'))} |",
        "",
        "| fault mid-run (then restarted) | time it added to a two-story run |",
        "|---|---|",
    ]
    for key, f in figs.items():
        if key.startswith("failover_added_by_"):
            rows.append(
                f"| {key.removeprefix('failover_added_by_').removesuffix('_s')} | {show(f)} |"
            )
    return rows


def update_cluster_readme(results: dict[str, Any]) -> None:
    m, measured = results["machine"], results["measured"]
    when = measured["cluster"]
    alone = measured.get("scaleout", {}).get("load_at_start")
    lines = [
        f"On a three-server JetStream cluster (R3, runners on disks of their own), measured "
        f"{when['date']} at `{when['revision']}` on {m['cpu']} ({m['cores']} cores) by "
        "`make bench-cluster`; scaled down for two cores (see docs/performance.md). The "
        "single-server column is the nearest figure of the table above (its own workload), "
        f"measured with the machine's load average at {alone}; the cluster's at "
        f"{when.get('load_at_start')}: compare the columns with that in mind.",
        "",
        *cluster_table(results),
    ]
    replace_block(CLUSTER_START, CLUSTER_END, lines)


def replace_block(start: str, end: str, lines: list[str]) -> None:
    """Put ``lines`` between README's ``start`` and ``end`` markers (if it has them)."""
    text = README.read_text()
    if start not in text or end not in text:
        return
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    README.write_text(head + "\n".join([start, *lines, end]) + tail)


def _when(results: dict[str, Any]) -> str:
    """When and at which revision the table's figures were measured: one date and
    revision, or the range when scenarios were measured apart (``--only``)."""
    stamps = [results["measured"].get(name, {}) for name in SCENARIOS]
    dates = sorted({st["date"] for st in stamps if st.get("date")}) or [results["date"]]
    revisions = sorted({st["revision"] for st in stamps if st.get("revision")})
    if len(dates) == 1 and len(revisions) <= 1:
        return f"Measured {dates[0]} at `{results['revision']}`"
    return (
        f"Measured {dates[0]} to {dates[-1]} at {', '.join(f'`{r}`' for r in revisions)} "
        "(each scenario's date, revision and load: `measured` in bench/results.json)"
    )


def update_readme(results: dict[str, Any]) -> None:
    m = results["machine"]
    lines = [
        f"{_when(results)} on {m['cpu']} ({m['cores']} cores), "
        f"Python {m['python']}; regenerated by `make bench` (see docs/performance.md).",
        "",
        *table(headline(results)),
        "",
        "Every figure, with its spread: `bench/results.json`.",
    ]
    replace_block(START, END, lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README's table")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s]
    known = {**SCENARIOS, **SEPARATE}
    unknown = [s for s in chosen if s not in known]
    if unknown:
        print(
            f"bench: unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "revision": git_revision(),
        "machine": machine(),
        "quick": args.quick,
        "scenarios": {},
        "measured": {},
    }
    for name in chosen:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        results["measured"][name] = {
            "date": results["date"],
            "revision": results["revision"],
            "load_at_start": round(os.getloadavg()[0], 2),
        }
        try:
            results["scenarios"][name] = known[name](args.quick)
        except Exception as exc:  # one broken scenario must not hide the others' numbers
            traceback.print_exc()
            results["scenarios"][name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    print("\n".join(table(results)))
    merged = keep_others(results)
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    if not args.no_readme and set(chosen) & set(SCENARIOS):
        # a subset (--only) rewrites its rows and keeps the others' last figures
        update_readme(
            {
                **merged,
                "scenarios": {
                    n: merged["scenarios"][n] for n in SCENARIOS if n in merged["scenarios"]
                },
            }
        )
    if (
        not args.no_readme
        and "cluster" in chosen
        and "error" not in results["scenarios"]["cluster"]
    ):
        update_cluster_readme(merged)
    return 0


def record_scenario(name: str, figs: dict[str, Figure]) -> None:
    """Put one scenario's fresh figures into bench/results.json and README's table, the
    others kept as they were measured (for a scenario's own entry point, e.g.
    ``python -m bench.scheduling_bench``)."""
    today, revision = datetime.date.today().isoformat(), git_revision()
    results: dict[str, Any] = {
        "date": today,
        "revision": revision,
        "machine": machine(),
        "quick": False,
        "scenarios": {name: figs},
        "measured": {name: {"date": today, "revision": revision}},
    }
    print("\n".join(table(results)))
    merged = keep_others(results)
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    update_readme(merged)


def keep_others(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` plus the figures of the scenarios this run did not measure, from the
    previous results.json (``measured`` says when and at which revision each was taken)."""
    try:
        previous = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return results
    old = previous.get("scenarios", {})
    load = (previous.get("machine") or {}).get("load_at_start")
    when = previous.get("measured") or {
        name: {
            "date": previous.get("date"),
            "revision": previous.get("revision"),
            "load_at_start": load,
        }
        for name in old
    }
    merged = {
        **results,
        "scenarios": dict(results["scenarios"]),
        "measured": dict(results["measured"]),
    }
    for name, figs in old.items():
        if name not in merged["scenarios"]:
            merged["scenarios"][name] = figs
            merged["measured"][name] = when.get(name, {})
    return merged


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
