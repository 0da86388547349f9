"""What a PromQL query (as written in a Grafana panel) selects: series names and labels."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import promql_parser

# Grafana's built-in range variables, replaced by a plausible value before parsing
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__range": "1d", "$__interval": "1m"}


@dataclass
class Selector:
    name: str
    matcher_labels: set[str]


@dataclass
class Query:
    selectors: list[Selector] = field(default_factory=list)
    grouping: list[set[str]] = field(default_factory=list)  # labels of each `by (...)`
    functions: set[str] = field(default_factory=set)


def expand_grafana(expr: str) -> str:
    for variable, value in GRAFANA_RANGES.items():
        expr = expr.replace(variable, value)
    return expr


def _selector(node: promql_parser.VectorSelector) -> Selector:
    labels = {m.name for m in node.matchers.matchers}
    name = node.name
    if name is None:
        for m in node.matchers.matchers:
            if m.name == "__name__":
                name = m.value
    labels.discard("__name__")
    return Selector(name or "", labels)


def analyse(expr: str) -> Query:
    """Parse a panel's query; raises ValueError when it is not valid PromQL."""
    parsed = promql_parser.parse(expand_grafana(expr))
    query = Query()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            query.selectors.append(_selector(node))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            if node.modifier.type == promql_parser.AggModifierType.By:
                query.grouping.append(set(node.modifier.labels))
        elif isinstance(node, promql_parser.Call):
            query.functions.add(node.func.name)

    promql_parser.walk(parsed, pre_visit=visit)
    return query


def label_values_query(text: str) -> tuple[str, str] | None:
    """The (series, label) of a Grafana `label_values(series, label)` variable query."""
    match = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*", text)
    return (match.group(1), match.group(2)) if match else None
