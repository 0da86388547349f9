"""Offline intake benchmark: classifications per second and latency over the labelled goals.

Run: .venv/bin/python bench/intake_bench.py
Not a test: numbers depend on the machine. The labelled goals live in tests/intake/goals.jsonl.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from baro_intake.classifier import classify
from baro_intake.decide import decide
from baro_shared.settings import Settings

GOALS_PATH = Path(__file__).resolve().parents[1] / "tests" / "intake" / "goals.jsonl"


def load_goals(path: Path = GOALS_PATH) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def measure(repeat: int = 5) -> dict[str, float | int]:
    """Classify every labelled goal ``repeat`` times in this process and time each call."""
    goals = [row["goal"] for row in load_goals()]
    for goal in goals:  # warm the regex caches and the import
        classify(goal)
    latencies_ms: list[float] = []
    started = time.perf_counter()
    for _ in range(max(1, repeat)):
        for goal in goals:
            t0 = time.perf_counter()
            classify(goal)
            latencies_ms.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    latencies_ms.sort()
    return {
        "goals": len(goals),
        "repeat": max(1, repeat),
        "classifications": len(latencies_ms),
        "per_second": round(len(latencies_ms) / elapsed, 1),
        "median_ms": round(statistics.median(latencies_ms), 4),
        "p95_ms": round(_percentile(latencies_ms, 0.95), 4),
        "max_ms": round(latencies_ms[-1], 4),
    }


def agreement() -> dict[str, dict[str, float | int | None]]:
    """Agreement with the labels per split, vague recall, and confidence right vs wrong."""
    report: dict[str, dict[str, float | int | None]] = {}
    rows = load_goals()
    for split in ("tune", "holdout"):
        right: list[float] = []
        wrong: list[float] = []
        vague_total = vague_flagged = 0
        for row in (r for r in rows if r["split"] == split):
            decision = classify(row["goal"])
            agrees = decision.mode == row["mode"] and decision.vague == row["vague"]
            (right if agrees else wrong).append(decision.confidence)
            if row["vague"]:
                vague_total += 1
                vague_flagged += decision.vague
        total = len(right) + len(wrong)
        report[split] = {
            "goals": total,
            "agree": len(right),
            "accuracy": round(len(right) / total, 3),
            "vague_recall": round(vague_flagged / vague_total, 3) if vague_total else 1.0,
            "confidence_right": round(statistics.fmean(right), 3) if right else None,
            "confidence_wrong": round(statistics.fmean(wrong), 3) if wrong else None,
        }
    return report


def measure_llm_roundtrip(repeat: int = 20) -> dict[str, float | int]:
    """One LLM intake question through the scripted test/demo agent (a real subprocess).

    This is baro's own overhead around a model call (spawn, stream mapping, strict parsing,
    fallback logic); a real model adds its own seconds on top.
    """
    reply = {"mode": "parallel", "confidence": 0.8, "reason": "two independent modules"}
    step = {"text": json.dumps(reply)}
    script = json.dumps({"stories": [{"match": {"id": "baro-intake"}, "steps": [step]}]})
    settings = Settings()

    async def once() -> float:
        t0 = time.perf_counter()
        decided = await decide(
            "update src/a.py and src/b.py",
            settings,
            strategy="llm",
            backend="scripted",
            agent_script=script,
        )
        assert decided.decision.source == "llm", decided.decision.evidence
        return (time.perf_counter() - t0) * 1000

    async def many() -> list[float]:
        await once()
        return [await once() for _ in range(max(1, repeat))]

    latencies_ms = sorted(asyncio.run(many()))
    return {
        "llm_questions": len(latencies_ms),
        "llm_median_ms": round(statistics.median(latencies_ms), 2),
        "llm_p95_ms": round(_percentile(latencies_ms, 0.95), 2),
    }


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key:>16}: {value}")
    for key, value in measure_llm_roundtrip().items():
        print(f"{key:>16}: {value}")
    for split, numbers in agreement().items():
        print(f"{split:>16}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))
