"""The API's edges: auth, clear 4xx answers, health, metrics, the published OpenAPI."""

from __future__ import annotations

from pathlib import Path

import httpx

from baro_intake.api_models import Backend
from baro_shared.backends import KNOWN_BACKENDS
from tests.api.conftest import TOKEN, Api, bare_remote, run_body


async def test_v1_needs_the_bearer_token(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        missing = await anonymous.get("/v1/runs")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in missing.json()["error"]
        wrong = await anonymous.get("/v1/runs", headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401
        basic = await anonymous.get("/v1/runs", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
        # a bad body without a token is refused for the token, before anything is read
        post = await anonymous.post("/v1/runs", content=b"{not json")
        assert post.status_code == 401
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert (await anonymous.get(path)).status_code == 200, path
    ok = await api.client.get("/v1/runs")
    assert ok.status_code == 200 and isinstance(ok.json()["runs"], list)
    metrics = (await api.client.get("/metrics")).text
    assert 'baro_api_requests_total{method="GET",route="refused",status="401"}' in metrics


async def test_without_a_configured_token_the_api_refuses_to_serve(
    api_without_token: Api,
) -> None:
    client = api_without_token.client
    refused = await client.get("/v1/runs")
    assert refused.status_code == 503
    assert "BARO_API_TOKEN is not set" in refused.json()["error"]
    assert (await client.post("/v1/runs", json={})).status_code == 503
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_bad_requests_get_one_clear_line(api: Api, tmp_path: Path) -> None:
    c = api.client
    bare, _ = bare_remote(tmp_path)

    async def error(body: object, status: int = 422) -> str:
        got = await c.post("/v1/runs", json=body)
        assert got.status_code == status, got.text
        message = got.json()["error"]
        assert "\n" not in message and "Traceback" not in message
        return message

    assert "password" in await error(run_body("https://me:hunter2@example.com/app.git"))
    assert "starts with '-'" in await error(run_body("--upload-pack=/tmp/x"))
    assert "not a git URL" in await error(run_body("ext::sh"))
    assert "goal is empty" in await error(run_body(f"file://{bare}", goal="   "))
    assert "color" in await error({**run_body(f"file://{bare}"), "color": "red"})
    assert "goal" in await error({"repo": {"kind": "url", "location": f"file://{bare}"}})
    assert "valid integer" in await error(
        {**run_body(f"file://{bare}"), "limits": {"retries": True}}
    )
    assert "object store" in await error(
        {**run_body("x"), "repo": {"kind": "bundle", "location": "runs/nope/source.bundle"}}, 404
    )
    bad_json = await c.post(
        "/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 422 and bad_json.json()["problems"]

    assert (await c.get("/v1/runs/no-such-run")).status_code == 404
    assert "no run" in (await c.get("/v1/runs/no-such-run")).json()["error"]
    for bad_id in ("a.b", "a*", "-x"):
        got = await c.get(f"/v1/runs/{bad_id}")
        assert got.status_code == 422, bad_id
        assert "run id" in got.json()["error"]
    assert (await c.get("/v1/runs/a%3Eb/events")).status_code == 422
    assert (await c.post("/v1/runs/no-such-run/mode", json={"mode": "focused"})).status_code == 404
    assert (await c.post("/v1/runs/no-such-run/mode", json={"mode": "huge"})).status_code == 422
    assert (await c.post("/v1/runs/no-such-run/cancel")).status_code == 404
    assert (await c.get("/v1/runs", params={"limit": 0})).status_code == 422
    assert (await c.get("/v1/runs", params={"state": "sleeping"})).status_code == 422
    too_big = await c.post(
        "/v1/runs", content=b" " * (2 << 20), headers={"content-type": "application/json"}
    )
    assert too_big.status_code == 413


async def test_path_sources_are_not_taken_over_http(api: Api) -> None:
    got = await api.client.post(
        "/v1/runs", json={**run_body("x"), "repo": {"kind": "path", "location": "/srv/app"}}
    )
    assert got.status_code == 422
    assert "repo" in got.json()["error"]


async def test_openapi_health_and_metrics(api: Api) -> None:
    c = api.client
    spec = (await c.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/v1/runs",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/mode",
        "/v1/runs/{run_id}/cancel",
        "/v1/runs/{run_id}/events",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/runs"]["post"]["security"] == [{"HTTPBearer": []}]
    assert (await c.get("/healthz")).text == "ok\n"
    assert (await c.get("/readyz")).text == "ready\n"
    await c.get("/v1/runs")
    metrics = (await c.get("/metrics")).text
    assert 'baro_api_requests_total{method="GET",route="/v1/runs",status="200"}' in metrics
    assert 'baro_service_up{service="intake"} 1.0' in metrics


def test_backend_names_match_the_runners() -> None:
    assert set(Backend.__args__) == set(KNOWN_BACKENDS)  # type: ignore[attr-defined]
