"""The web dashboard (``/ui``): one static page and its script, served by the API process.

The page holds no data of its own: its script asks ``/v1`` for everything, with the
bearer token the user typed into its login form (kept in the tab's session storage), and
follows a run through ``/v1/runs/{id}/events?agent=1``, the server-sent events every
client reads. So the dashboard is exactly as authenticated and redacted as the API. The
files are plain HTML, CSS and JavaScript shipped in this package: nothing is built or
fetched at install time. One page shows both the list and a run (``?run=ID``), so every
URL it uses is relative to ``/ui/`` and the dashboard works behind a reverse proxy or an
Ingress that serves the API under a path prefix.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# the page may talk only to the server it came from, and runs no inline script
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes:
    return files("baro_intake").joinpath("ui", name).read_bytes()


def mount(app: FastAPI) -> None:
    """Add ``/ui/`` (the runs; ``/ui/?run=ID`` one run) and the page's two assets."""
    page = _asset("index.html")
    assets = {name: _asset(name) for name in ASSETS}

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> Response:
        return RedirectResponse("ui/", status_code=308)  # relative: kept behind a prefix

    @app.get("/ui/", include_in_schema=False)
    async def ui_runs() -> HTMLResponse:
        return HTMLResponse(page, headers=HEADERS)

    @app.get("/ui/assets/{name}", include_in_schema=False)
    async def ui_asset(name: str) -> Response:
        if name not in assets:
            return Response(status_code=404)
        return Response(assets[name], media_type=ASSETS[name], headers=HEADERS)
