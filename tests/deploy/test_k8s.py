"""deploy/k8s validated offline: rendered by kustomize, core kinds against the Kubernetes
schemas of a pinned version, custom resources against their documented fields, and the
wiring between them (probes, secrets, scaling, ports) checked against baro's own code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from baro_shared import topology as t
from baro_shared.settings import Settings
from tests.deploy import dockerfile_model
from tests.deploy.crd_schemas import CUSTOM_RESOURCES
from tests.deploy.kustomize import (
    EXAMPLE_SUFFIX,
    K8S,
    ROOT,
    Resource,
    kustomization_files,
    load_manifests,
    referenced_paths,
    render,
    stage,
)

KUBERNETES_VERSION = "1.32.0"
SERVICES = ("intake", "planner", "conductor", "agent-runner", "merger")
# What a runner needs to hand its stories back on SIGTERM, on a healthy node: notice the
# shutdown (0.5 s supervision tick), SIGTERM then SIGKILL the agent's process group (3 s),
# flush the agent's events (up to 10 s), remove the workspace, nak, drain the connection.
RUNNER_HANDBACK_S = 20
SECRET_KEYS = {
    "baro-nats": {"BARO_NATS_USER", "BARO_NATS_PASSWORD"},
    "baro-api": {"BARO_API_TOKEN"},
}


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> list[Resource]:
    staged = stage(tmp_path_factory.mktemp("k8s"))
    return render(staged / "overlays" / "example")


@pytest.fixture(scope="module")
def base() -> list[Resource]:
    return render(K8S / "base")


def _of(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _deployments(resources: list[Resource]) -> dict[str, Resource]:
    return _of(resources, "Deployment")


def _container(deployment: Resource) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _config(resources: list[Resource]) -> dict[str, str]:
    maps = [r for r in resources if r["kind"] == "ConfigMap"]
    assert len(maps) == 1 and maps[0]["metadata"]["name"].startswith("baro-config")
    return maps[0]["data"]


def _validate(resource: Resource) -> None:
    key = (resource["apiVersion"], resource["kind"])
    if key in CUSTOM_RESOURCES:
        jsonschema.validate(resource, CUSTOM_RESOURCES[key])
    else:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


# ------------------------------------------------------------------ kustomizations


def test_every_referenced_file_exists() -> None:
    missing = []
    for kustomization in kustomization_files():
        for what, path in referenced_paths(kustomization):
            example = path.with_name(path.name + EXAMPLE_SUFFIX)
            if not path.exists() and not example.exists():
                missing.append(f"{kustomization.relative_to(ROOT)}: {what} -> {path.name}")
    assert not missing, missing


def test_every_manifest_in_base_is_used() -> None:
    used = {p.resolve() for _, p in referenced_paths(K8S / "base" / "kustomization.yaml")}
    manifests = {p.resolve() for p in (K8S / "base").glob("*.yaml")}
    manifests.discard((K8S / "base" / "kustomization.yaml").resolve())
    assert manifests <= used, f"not in base/kustomization.yaml: {sorted(manifests - used)}"


def test_secret_env_files_are_examples_and_ignored() -> None:
    secrets = K8S / "overlays" / "example" / "secrets"
    assert not list(secrets.glob("*.env")), "real secret files must not be committed"
    assert "*.env" in (secrets / ".gitignore").read_text().split()


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_every_resource_validates(which: str, request: pytest.FixtureRequest) -> None:
    resources: list[Resource] = request.getfixturevalue(which)
    assert resources
    errors = []
    for resource in resources:
        try:
            _validate(resource)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            errors.append(f"{resource['kind']}/{resource['metadata']['name']}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{resource['kind']} ({resource['apiVersion']}): no schema known")
    assert not errors, "\n".join(errors)


def test_the_crd_schemas_reject_what_the_api_server_would() -> None:
    scaled = next(
        r for r in load_manifests(K8S / "base" / "scaledobject.yaml") if r["kind"] == "ScaledObject"
    )
    _validate(scaled)
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 4  # an int, not a string
    with pytest.raises(jsonschema.ValidationError):
        _validate(scaled)
    monitor = load_manifests(K8S / "base" / "podmonitor.yaml")[0]
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        _validate(monitor)


def test_the_nats_network_policy_validates() -> None:
    for resource in load_manifests(K8S / "nats" / "networkpolicy.yaml"):
        _validate(resource)


# ------------------------------------------------------------------ services


def test_one_deployment_per_service_running_baro_service_name(overlay: list[Resource]) -> None:
    deployments = _deployments(overlay)
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        container = _container(deployment)
        assert container["args"] == ["service", name]
        assert "command" not in container, "the image's entrypoint (tini + baro) is kept"
        image = container["image"]
        assert re.search(r":[0-9][^:/]*$|@sha256:", image), f"{name}: unpinned image {image}"


def test_settings_and_ports_agree_with_the_code(overlay: list[Resource]) -> None:
    config = _config(overlay)
    fields = set(Settings.model_fields)
    names = set(config)
    for deployment in _deployments(overlay).values():
        names |= {e["name"] for e in _container(deployment).get("env", [])}
    for secret in _of(overlay, "Secret").values():
        names |= set(secret.get("data", {}))
    unknown = {n for n in names if n.startswith("BARO_") and n[5:].lower() not in fields}
    assert not unknown, f"not baro settings: {unknown}"
    assert config["BARO_HTTP_HOST"] == "0.0.0.0"
    assert config["BARO_REPLICAS"] == "3"
    nats_port = int(config["BARO_NATS_URL"].rsplit(":", 1)[1])
    policy = _of(overlay, "NetworkPolicy")["baro-to-nats"]
    assert nats_port in [p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]]


def test_probes_hit_the_health_endpoint(overlay: list[Resource]) -> None:
    http_port = int(_config(overlay)["BARO_HTTP_PORT"])
    for name, deployment in _deployments(overlay).items():
        container = _container(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == http_port, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_pods_are_restricted_and_match_the_image_user(overlay: list[Resource]) -> None:
    docker = dockerfile_model.load(ROOT / "Dockerfile")
    user = docker.effective(docker.stage("runtime"), "USER")
    assert user is not None
    uid, gid = (int(x) for x in user.value.split(":"))
    image_env = docker.env(docker.stage("runtime"))
    assert image_env["BARO_CACHE_DIR"].startswith("/var/lib/baro/")
    namespace = _of(overlay, "Namespace")["baro"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, deployment in _deployments(overlay).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
            uid,
            gid,
        ), name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        security = _container(deployment)["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert security["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in _container(deployment)["volumeMounts"]}
        # the root filesystem is read-only: $HOME, /tmp and baro's state dir are volumes
        assert {"/tmp", "/var/lib/baro", image_env["HOME"]} <= mounts, f"{name}: not writable"


def test_every_container_has_requests_and_a_memory_limit(overlay: list[Resource]) -> None:
    for name, deployment in _deployments(overlay).items():
        resources = _container(deployment)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name


def test_a_runner_has_time_to_hand_its_stories_back(overlay: list[Resource]) -> None:
    runner = _deployments(overlay)["agent-runner"]
    pod = runner["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 3 * RUNNER_HANDBACK_S
    assert "replicas" not in runner["spec"], "KEDA owns the runner's replica count"
    assert "preStop" not in _container(runner).get("lifecycle", {}), (
        "SIGTERM itself starts the hand-back; a preStop delay only postpones it"
    )
    env = {e["name"]: e for e in _container(runner)["env"]}
    assert env["BARO_RUNNER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_the_merger_keeps_its_repositories_on_a_volume(overlay: list[Resource]) -> None:
    merger = _deployments(overlay)["merger"]
    assert merger["spec"]["replicas"] == 1
    assert merger["spec"]["strategy"]["type"] == "Recreate"
    pod = merger["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in _container(merger)["volumeMounts"] if m["mountPath"] == "/var/lib/baro")
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim in _of(overlay, "PersistentVolumeClaim")
    assert _config(overlay)["BARO_CACHE_DIR"].startswith(mount["mountPath"] + "/")


def test_secrets_exist_for_every_required_reference(overlay: list[Resource]) -> None:
    secrets = _of(overlay, "Secret")
    generated = {name.rsplit("-", 1)[0]: secret for name, secret in secrets.items()}
    for logical, keys in SECRET_KEYS.items():
        assert keys <= set(generated[logical]["data"]), logical
    for name, deployment in _deployments(overlay).items():
        container = _container(deployment)
        for source in container.get("envFrom", []):
            ref = source.get("secretRef")
            if ref and not ref.get("optional"):
                assert ref["name"] in secrets, f"{name}: Secret {ref['name']} is not generated"
    assert not _of(render(K8S / "base"), "Secret"), "no secret values in the base"


def test_the_runner_scales_on_its_consumer_lag(overlay: list[Resource]) -> None:
    scaled = _of(overlay, "ScaledObject")["agent-runner"]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "agent-runner"
    assert spec["scaleTargetRef"]["name"] in _deployments(overlay)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "nats-jetstream"
    meta = trigger["metadata"]
    consumer = t.build_topology(Settings()).consumer(t.RUNNER_CONSUMER)
    assert (meta["stream"], meta["consumer"]) == (consumer.stream, consumer.name)
    host, port = meta["natsServerMonitoringEndpoint"].rsplit(":", 1)
    assert host.split(".")[0].endswith("-headless"), "the scaler must reach each server"
    nats_values = yaml.safe_load((K8S / "nats" / "values.yaml").read_text())
    assert int(port) == nats_values["config"]["monitor"]["port"]
    assert meta["account"] == "$G", "the chart's users live in the global account"
    config = _config(overlay)
    slots = int(config["BARO_RUNNER_SLOTS"])
    assert int(meta["lagThreshold"]) == slots, "one runner per BARO_RUNNER_SLOTS stories"
    assert spec["maxReplicaCount"] * slots == int(config["BARO_MAX_RUNNING_AGENTS"])
    assert spec["cooldownPeriod"] >= 300, "stories run for minutes"


def test_every_deployment_has_a_disruption_budget_that_allows_drains(
    overlay: list[Resource],
) -> None:
    budgets = list(_of(overlay, "PodDisruptionBudget").values())
    for name, deployment in _deployments(overlay).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, name
        budget = matching[0]["spec"]
        replicas = deployment["spec"].get("replicas", 1)
        if "minAvailable" in budget:
            assert budget["minAvailable"] < replicas, f"{name}: a drain could never evict it"


def test_network_policies_deny_by_default_and_open_what_is_used(
    overlay: list[Resource],
) -> None:
    policies = _of(overlay, "NetworkPolicy")
    deny = policies["baro-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    def ingress_ports(policy: Resource) -> Iterator[int]:
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                yield port["port"]

    http_port = int(_config(overlay)["BARO_HTTP_PORT"])
    assert http_port in ingress_ports(policies["baro-metrics-from-prometheus"])
    intake = _container(_deployments(overlay)["intake"])
    api_port = int(next(e["value"] for e in intake["env"] if e["name"] == "BARO_API_PORT"))
    assert api_port in ingress_ports(policies["baro-api-ingress"])
    service = _of(overlay, "Service")["baro-api"]
    assert service["spec"]["ports"][0]["targetPort"] == "api"
    assert {"name": "api", "containerPort": api_port} in intake["ports"]


def test_prometheus_scrapes_every_service(overlay: list[Resource]) -> None:
    monitor = _of(overlay, "PodMonitor")["baro"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    for name, deployment in _deployments(overlay).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name} is not scraped"
        ports = {p["name"] for p in _container(deployment)["ports"]}
        assert endpoint["port"] in ports
    # a relabelled `service` would clash with the series' own `service` label
    assert all(r["targetLabel"] != "service" for r in endpoint.get("relabelings", []))


# ------------------------------------------------------------------ NATS


def test_nats_values_give_a_durable_three_node_jetstream() -> None:
    values = yaml.safe_load((K8S / "nats" / "values.yaml").read_text())
    config = values["config"]
    assert config["cluster"]["enabled"] is True and config["cluster"]["replicas"] == 3
    jetstream = config["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["enabled"] and jetstream["fileStore"]["pvc"]["enabled"]
    assert jetstream["merge"]["sync_interval"] == "always"
    assert values["podDisruptionBudget"]["enabled"] is True
    assert values["promExporter"]["enabled"] is True


def test_nats_and_baro_share_the_credentials() -> None:
    values = yaml.safe_load((K8S / "nats" / "values.yaml").read_text())
    (user,) = values["config"]["merge"]["authorization"]["users"]
    variable = re.fullmatch(r"<< \$(\w+) >>", user["password"])
    assert variable, "the password comes from the server's environment"
    env = values["container"]["env"][variable.group(1)]
    assert env["valueFrom"]["secretKeyRef"]["key"] == variable.group(1)
    example = (K8S / "overlays" / "example" / "secrets" / "nats.env.example").read_text()
    pairs = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    assert pairs["BARO_NATS_USER"] == user["user"]
    assert variable.group(1) in pairs


def test_the_ingress_reaches_the_api_and_passes_event_streams_on_unbuffered(
    overlay: list[Resource],
) -> None:
    """The dashboard and its server-sent events work behind the example Ingress."""
    ingress = _of(overlay, "Ingress")["baro-api"]
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"  # /v1 and /ui/ alike
    service = _of(overlay, "Service")[path["backend"]["service"]["name"]]
    assert path["backend"]["service"]["port"]["name"] in {
        p["name"] for p in service["spec"]["ports"]
    }
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > 15  # the keepalive
