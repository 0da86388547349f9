"""The series documented in docs/metrics.md, read from its table (the one source of truth)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"
SERVICES = ("intake", "planner", "conductor", "agent-runner", "merger")
EVERY_SERVICE = "every service"
TYPES = ("counter", "gauge", "histogram", "summary")

_ROW = re.compile(r"^\|\s*`(baro_[a-z0-9_]+)`\s*\|(.*)\|\s*$")


@dataclass(frozen=True)
class Series:
    name: str
    type: str
    unit: str
    labels: frozenset[str]
    owner: str

    @property
    def owners(self) -> tuple[str, ...]:
        return SERVICES if self.owner == EVERY_SERVICE else (self.owner,)

    def sample_names(self) -> frozenset[str]:
        """Names a query may use for this series (histograms add _bucket, _sum, _count)."""
        if self.type == "histogram":
            return frozenset(f"{self.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        if self.type == "summary":
            return frozenset({self.name, f"{self.name}_sum", f"{self.name}_count"})
        return frozenset({self.name})


def documented_series(doc: Path = METRICS_DOC) -> dict[str, Series]:
    series: dict[str, Series] = {}
    for line in doc.read_text().splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        cells = [c.strip() for c in match.group(2).split("|")]
        if len(cells) != 5:
            raise AssertionError(f"docs/metrics.md: a series row needs 6 cells: {line}")
        kind, unit, labels, owner, _what = cells
        if kind not in TYPES:
            raise AssertionError(f"docs/metrics.md: unknown type {kind!r} in: {line}")
        if owner != EVERY_SERVICE and owner not in SERVICES:
            raise AssertionError(f"docs/metrics.md: unknown owner {owner!r} in: {line}")
        name = match.group(1)
        if name in series:
            raise AssertionError(f"docs/metrics.md: {name} is documented twice")
        series[name] = Series(
            name=name,
            type=kind,
            unit=unit,
            labels=frozenset(re.findall(r"`([a-z_]+)`", labels)),
            owner=owner,
        )
    return series


def queryable_names(series: dict[str, Series]) -> frozenset[str]:
    names: set[str] = set()
    for one in series.values():
        names |= one.sample_names()
    return frozenset(names)
