"""The Grafana dashboard and the Prometheus scrape config only use series that exist.

Every panel query is parsed as PromQL; each series it selects must be documented in
docs/metrics.md (which test_exposed_series checks against the running services), and each
label it filters or groups by must be one of that series' labels or a target label.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.metrics.catalogue import ROOT, Series, documented_series
from tests.metrics.promql import Query, analyse, label_values_query

DASHBOARD = ROOT / "deploy" / "grafana" / "baro.json"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
# labels Prometheus attaches to every scraped series (scrape config and PodMonitor)
TARGET_LABELS = {"job", "instance", "pod", "namespace", "component"}
GRID_WIDTH = 24


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (panel["title"], target)
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    ]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def series_by_name() -> dict[str, Series]:
    return {name: s for s in documented_series().values() for name in s.sample_names()}


def _labels_of(query: Query, series_by_name: dict[str, Series]) -> set[str]:
    labels = set(TARGET_LABELS)
    for selector in query.selectors:
        series = series_by_name.get(selector.name)
        if series is not None:
            labels |= series.labels
            if selector.name.endswith("_bucket"):
                labels.add("le")
    return labels


def test_every_query_parses_and_uses_documented_series(
    dashboard: dict[str, Any], series_by_name: dict[str, Series]
) -> None:
    problems = []
    queries = _queries(dashboard)
    assert queries, "the dashboard has no queries"
    for title, target in queries:
        try:
            query = analyse(target["expr"])
        except ValueError as exc:
            problems.append(f"{title}: not PromQL: {exc}")
            continue
        assert query.selectors, f"{title}: selects nothing"
        available = _labels_of(query, series_by_name)
        for selector in query.selectors:
            series = series_by_name.get(selector.name)
            if series is None:
                problems.append(f"{title}: {selector.name} is not a documented series")
                continue
            allowed = (
                series.labels
                | TARGET_LABELS
                | ({"le"} if selector.name.endswith("_bucket") else set())
            )
            for label in selector.matcher_labels - allowed:
                problems.append(f"{title}: {selector.name} has no label {label}")
        for grouping in query.grouping:
            for label in grouping - available:
                problems.append(f"{title}: groups by {label}, which no selected series has")
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            if label not in available:
                problems.append(f"{title}: legend uses {label}, which no selected series has")
    assert not problems, "\n".join(problems)


def test_histogram_queries_use_buckets_and_quantiles(dashboard: dict[str, Any]) -> None:
    for title, target in _queries(dashboard):
        query = analyse(target["expr"])
        if "histogram_quantile" in query.functions:
            assert all(s.name.endswith("_bucket") for s in query.selectors), title
            assert any("le" in g for g in query.grouping), f"{title}: quantile without `by (le)`"


def test_the_dashboard_answers_the_operators_questions(dashboard: dict[str, Any]) -> None:
    queries = [(analyse(t["expr"]), t["expr"]) for _, t in _queries(dashboard)]

    def uses(name: str, *, by: frozenset[str] = frozenset(), containing: str = "") -> bool:
        return any(
            any(s.name == name for s in q.selectors)
            and any(by <= g for g in q.grouping or [set()])
            and containing in expr
            for q, expr in queries
        )

    assert uses("baro_tokens_total", by=frozenset({"backend", "kind"})), "tokens by kind"
    assert uses("baro_run_tokens_total", by=frozenset({"mode"})), "cost of parallel vs focused"
    assert uses("baro_cost_usd_total", by=frozenset({"backend"})), "dollars by backend"
    assert uses("baro_run_cost_usd_total", by=frozenset({"mode"})), "dollars per run by mode"
    assert uses("baro_run_wall_seconds_bucket", containing="histogram_quantile(0.5")
    assert uses("baro_run_wall_seconds_bucket", containing="histogram_quantile(0.95")
    assert uses("baro_run_speedup_ratio_sum"), "speedup"
    assert uses("baro_runs_finished_total", by=frozenset({"mode", "status"})), "runs by outcome"
    assert uses("baro_runner_backlog_messages"), "backlog"
    assert uses("baro_runner_running_agents"), "running agents"
    assert uses("baro_story_attempts_total", by=frozenset({"reason"})), "failures by reason"


def test_template_variables_use_documented_labels(
    dashboard: dict[str, Any], series_by_name: dict[str, Series]
) -> None:
    variables = dashboard["templating"]["list"]
    names = {v["name"] for v in variables}
    assert "datasource" in names
    for variable in variables:
        if variable["type"] != "query":
            continue
        text = (
            variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        )
        parsed = label_values_query(text)
        assert parsed, f"${variable['name']}: unsupported query {text}"
        series, label = parsed
        assert label in series_by_name[series].labels, (
            f"${variable['name']}: {series} has no {label}"
        )
    used = {m for _, t in _queries(dashboard) for m in re.findall(r"\$(\w+)", t["expr"])}
    used -= {"__rate_interval", "__range", "__interval"}
    assert used <= names, f"undefined variables {used - names}"


def test_panels_are_laid_out_and_bound_to_the_datasource(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dashboard["uid"] and dashboard["title"]
    for panel in _panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


def _scrape_config() -> dict[str, Any]:
    return yaml.safe_load(SCRAPE_CONFIG.read_text())


def test_the_scrape_config_finds_every_baro_pod_on_its_metrics_port() -> None:
    config = _scrape_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"]), "job names must be unique"
    baro = jobs["baro"]
    assert baro.get("metrics_path", "/metrics") == "/metrics"
    keep = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in baro["relabel_configs"]
        if rule.get("action") == "keep"
    }
    pod_label = "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    assert keep[(pod_label,)] == "baro"
    assert keep[("__meta_kubernetes_pod_container_port_name",)] == "http"
    targets = {rule["target_label"] for rule in baro["relabel_configs"] if "target_label" in rule}
    assert targets <= TARGET_LABELS, "target labels the dashboard does not know"
    assert "service" not in targets, "would clash with the series' own service label"

    # the same names the manifests use: pod label and port name
    deployment = yaml.safe_load((ROOT / "deploy/k8s/base/conductor.yaml").read_text())
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "baro"
    assert pod["spec"]["containers"][0]["ports"][0]["name"] == "http"


def test_the_scrape_config_is_well_formed() -> None:
    config = _scrape_config()
    duration = re.compile(r"^[0-9]+(ms|s|m|h|d)$")
    for key in ("scrape_interval", "scrape_timeout", "evaluation_interval"):
        assert duration.match(config["global"][key]), key
    for job in config["scrape_configs"]:
        discovery = {"kubernetes_sd_configs", "static_configs"} & set(job)
        assert len(discovery) == 1, job["job_name"]
        for sd in job.get("kubernetes_sd_configs", []):
            assert sd["role"] in {"pod", "service", "endpoints", "endpointslice", "node"}
        for rule in job.get("relabel_configs", []):
            assert rule.get("action", "replace") in {"keep", "drop", "replace", "labelmap"}
            assert rule["source_labels"], job["job_name"]
            re.compile(rule.get("regex", "(.*)"))
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host and port.isdigit(), target


def test_the_local_scrape_target_is_the_documented_default_port() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    port = re.search(r"BARO_HTTP_PORT=(\d+)", dockerfile)
    assert port
    jobs = {job["job_name"]: job for job in _scrape_config()["scrape_configs"]}
    targets = [t for s in jobs["baro-local"]["static_configs"] for t in s["targets"]]
    assert all(t.endswith(f":{port.group(1)}") for t in targets)
