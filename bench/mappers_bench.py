"""Throughput of the stream mappers against a plain ``json.loads`` of the same lines.

The captured fixtures of each backend are replicated into a few thousand lines (each copy
a fresh stream: a new mapper, fed line by line, then finished). For every repeat both
loops run over the same lines; the ratio is mapper rate / raw decode rate, so 1.0 means
mapping costs no more than decoding alone. Target: at least 0.5.

    .venv/bin/python bench/mappers_bench.py [REPEAT]
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path

from baro_shared.mappers import BACKENDS, mapper_for

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "mappers" / "fixtures"
TARGET_LINES = 4000
TARGET_RATIO = 0.5


def streams_for(backend: str, target_lines: int = TARGET_LINES) -> list[list[bytes]]:
    """The backend's fixture streams, repeated until they hold ``target_lines`` lines."""
    files = sorted((FIXTURES / backend).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no fixtures for {backend} under {FIXTURES}")
    originals = [
        [line for line in path.read_bytes().splitlines() if line.strip()] for path in files
    ]
    streams: list[list[bytes]] = []
    total = 0
    while total < target_lines:
        for stream in originals:
            streams.append(stream)
            total += len(stream)
    return streams


def _time_raw_decode(streams: list[list[bytes]]) -> float:
    loads = json.loads
    started = time.perf_counter()
    for stream in streams:
        for line in stream:
            loads(line)
    return time.perf_counter() - started


def _time_mapping(backend: str, streams: list[list[bytes]]) -> tuple[float, int]:
    events = 0
    started = time.perf_counter()
    for stream in streams:
        mapper = mapper_for(backend)
        feed = mapper.feed
        for line in stream:
            events += len(feed(line))
        events += len(mapper.finish(0))
    return time.perf_counter() - started, events


def measure(repeat: int = 5) -> dict[str, dict[str, float | int]]:
    """Per backend: lines, events, median rates, and the mapper/raw ratios (median, min,
    max over ``repeat`` runs). ``line_ratio`` is the one held to the 0.5 target;
    ``event_ratio`` is normalized events/s over raw decoded lines/s."""
    results: dict[str, dict[str, float | int]] = {}
    for backend in BACKENDS:
        streams = streams_for(backend)
        lines = sum(len(stream) for stream in streams)
        _time_mapping(backend, streams[:2])  # warm up
        raw_rates: list[float] = []
        line_rates: list[float] = []
        event_rates: list[float] = []
        events = 0
        for _ in range(repeat):
            gc.collect()
            raw_seconds = _time_raw_decode(streams)
            gc.collect()
            map_seconds, events = _time_mapping(backend, streams)
            raw_rates.append(lines / raw_seconds)
            line_rates.append(lines / map_seconds)
            event_rates.append(events / map_seconds)
        line_ratios = [mapped / raw for mapped, raw in zip(line_rates, raw_rates, strict=True)]
        event_ratios = [mapped / raw for mapped, raw in zip(event_rates, raw_rates, strict=True)]
        results[backend] = {
            "lines": lines,
            "events": events,
            "raw_lines_per_s": statistics.median(raw_rates),
            "mapper_lines_per_s": statistics.median(line_rates),
            "mapper_events_per_s": statistics.median(event_rates),
            "line_ratio": statistics.median(line_ratios),
            "line_ratio_min": min(line_ratios),
            "line_ratio_max": max(line_ratios),
            "event_ratio": statistics.median(event_ratios),
            "event_ratio_min": min(event_ratios),
            "event_ratio_max": max(event_ratios),
        }
    return results


def _table(results: dict[str, dict[str, float | int]]) -> str:
    header = (
        f"{'backend':<9} {'lines':>6} {'events':>6} {'raw lines/s':>12} {'map lines/s':>12} "
        f"{'events/s':>10} {'line ratio (min-max)':>22} {'event ratio (min-max)':>22}"
    )
    rows = [header, "-" * len(header)]
    for backend, r in results.items():
        rows.append(
            f"{backend:<9} {r['lines']:>6} {r['events']:>6} {r['raw_lines_per_s']:>12,.0f} "
            f"{r['mapper_lines_per_s']:>12,.0f} {r['mapper_events_per_s']:>10,.0f} "
            f"{r['line_ratio']:>6.2f} ({r['line_ratio_min']:.2f}-{r['line_ratio_max']:.2f})"
            f"{'':>7}{r['event_ratio']:>6.2f} ({r['event_ratio_min']:.2f}-{r['event_ratio_max']:.2f})"
        )
    below = [b for b, r in results.items() if r["line_ratio"] < TARGET_RATIO]
    rows.append("")
    rows.append(
        f"target line ratio >= {TARGET_RATIO}: "
        + ("met by every backend" if not below else f"missed by {', '.join(below)}")
    )
    return "\n".join(rows)


if __name__ == "__main__":
    print(_table(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5)))
