"""baro's HTTP front door (FastAPI), hosted by the intake service: submit goals, read runs,
confirm or override a mode, cancel, follow a run's events. See docs/api.md.

Every ``/v1`` route needs ``Authorization: Bearer <BARO_API_TOKEN>``, compared in constant
time. Without a configured token the API refuses every ``/v1`` request (503) rather than
serve it open. ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` are open, for
probes and scrapers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import nats.errors
from fastapi import Body, FastAPI, Header, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from baro_intake import api_models as m
from baro_intake import api_runs, api_views, dashboard
from baro_shared import inputs, runstream
from baro_shared import schemas as s
from baro_shared.bus import Bus, Listening
from baro_shared.runids import new_run_id
from baro_shared.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
SSE_MEDIA_TYPE = "text/event-stream"

requests_total = Counter(
    "baro_api_requests_total",
    "HTTP API requests by route template and status code",
    ["method", "route", "status"],
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, problems: list[m.Problem] | None = None, **headers: str):
    body = m.ErrorBody(error=message, problems=problems or [])
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers or None)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        401: "missing or wrong bearer token",
        404: "no such run (or no such bundle in the object store)",
        409: "the run's state does not allow this",
        413: "the request body is larger than 1 MiB",
        422: "the request is malformed; `problems` lists each field",
        503: "the API is disabled (no BARO_API_TOKEN) or NATS is unreachable",
    }
    return {code: {"model": m.ErrorBody, "description": meaning[code]} for code in statuses}


# what a client (or a test generator) can do next with a submitted run's id
_RUN_LINKS = {
    op: {"operationId": op, "parameters": {"run_id": "$response.body#/run_id"}}
    for op in ("getRun", "confirmMode", "cancelRun")
}


class Gate:
    """Outermost ASGI layer: body size, bearer token on /v1, request metrics.

    A body announced longer than ``MAX_BODY_BYTES`` is refused before it is read. A body
    without a length (chunked) is read here, counted as it arrives, and refused (413) as
    soon as it passes the limit, so no request holds more than the limit in memory and
    the event loop goes on answering /healthz meanwhile.
    """

    def __init__(self, app: ASGIApp, token: bytes | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        refusal: Response | None = None
        try:
            refusal = self._refusal(scope)
            if refusal is None and _streamed(scope):
                receive, refusal = await _read_capped(receive)
            if refusal is not None:
                await refusal(scope, receive, send_counted)
            else:
                await self.app(scope, receive, send_counted)
        finally:
            route = scope.get("route")
            method = scope.get("method", "")
            # before routing: "refused" (token, size); routed nowhere: "unmatched"
            template = "refused" if refusal is not None else getattr(route, "path", "unmatched")
            requests_total.labels(
                method=method if method in ("GET", "POST", "HEAD") else "other",
                route=template,
                status=str(status["code"]),
            ).inc()

    def _refusal(self, scope: Scope) -> Response | None:
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        length = headers.get("content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return _too_large()
        path: str = scope.get("path", "")
        if not (path == "/v1" or path.startswith("/v1/")):
            return None
        if self.token is None:
            return _error(
                503,
                "the API is disabled: BARO_API_TOKEN is not set on the intake service "
                "(set it and restart to serve the API)",
            )
        scheme, _, given = headers.get("authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("latin-1", "replace"), self.token
        ):
            return _error(
                401,
                "missing or wrong bearer token: send Authorization: Bearer <BARO_API_TOKEN>",
                **{"WWW-Authenticate": 'Bearer realm="baro"'},
            )
        return None


def _too_large() -> Response:
    # closing the connection stops the server from reading (and discarding) the rest
    return _error(
        413, f"the request body is larger than {MAX_BODY_BYTES} bytes", Connection="close"
    )


def _streamed(scope: Scope) -> bool:
    """A body that comes without a Content-Length (Transfer-Encoding: chunked)."""
    return any(k.lower() == b"transfer-encoding" for k, _ in scope.get("headers", []))


async def _read_capped(receive: Receive) -> tuple[Receive, Response | None]:
    """Read a streamed body up to ``MAX_BODY_BYTES``: a ``receive`` that hands the app
    the body read so far (then the connection's own messages), or a 413 to answer."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: let the app see it
            first = message
            break
        body = message.get("body", b"")
        size += len(body)
        if size > MAX_BODY_BYTES:
            return receive, _too_large()
        chunks.append(body)
        if not message.get("more_body", False):
            first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return replay, None


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method any route of this path takes (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def _version() -> str:
    try:
        return version("baro-intake")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(
    bus: Bus,
    settings: Settings,
    *,
    ready: Callable[[], bool],
    stopping: asyncio.Event | None = None,
) -> FastAPI:
    """The API on ``bus``; ``ready`` answers /readyz; ``stopping`` ends event streams."""
    stop = stopping or asyncio.Event()
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    app = FastAPI(
        title="baro",
        version=_version(),
        summary="One coding goal in, one clean branch out.",
        description="Submit goals to a baro cluster and follow their runs. "
        "Every /v1 route needs `Authorization: Bearer <BARO_API_TOKEN>`.",
        redoc_url=None,
    )
    app.add_middleware(Gate, token=token.encode() if token else None)
    bearer = HTTPBearer(auto_error=False, description="the cluster's BARO_API_TOKEN")
    v1: dict[str, Any] = {"dependencies": [Security(bearer)], "tags": ["runs"]}

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            m.Problem(
                location=".".join(str(part) for part in err.get("loc", ())),
                message=str(err.get("msg", "invalid")).removeprefix("Value error, "),
            )
            for err in exc.errors()
        ]
        first = problems[0] if problems else m.Problem(location="request", message="invalid")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return _error(422, f"{first.location}: {first.message}{more}", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's answer to a body it cannot decode
            return _error(422, "the request body is not valid JSON: send a UTF-8 JSON object")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = _allowed_methods(app, request)
            headers["Allow"] = ", ".join(allowed)
            return _error(
                405, f"{request.method} is not allowed here: use {' or '.join(allowed)}", **headers
            )
        return _error(exc.status_code, str(exc.detail), **headers)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(api_runs.Conflict)
    async def _conflict(_: Request, exc: api_runs.Conflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(nats.errors.Error)
    async def _bus_down(_: Request, exc: nats.errors.Error) -> JSONResponse:
        log.warning("API request failed on the bus: %s", exc)
        return _error(503, f"NATS did not answer ({type(exc).__name__}): try again shortly")

    # ------------------------------------------------------------------ operations

    @app.get(
        "/healthz", response_class=PlainTextResponse, tags=["operations"], operation_id="healthz"
    )
    async def healthz() -> str:
        """Liveness: the process's event loop answers."""
        return "ok\n"

    @app.get(
        "/readyz",
        operation_id="readyz",
        response_class=PlainTextResponse,
        tags=["operations"],
        responses={503: {"description": "not ready", "content": {"text/plain": {}}}},
    )
    async def readyz() -> PlainTextResponse:
        """Readiness: connected to NATS and consuming intake commands."""
        ok = ready()
        return PlainTextResponse("ready\n" if ok else "not ready\n", status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        operation_id="metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def metrics() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ runs

    async def found(run_id: str) -> s.RunRecord:
        rec = await api_runs.lookup(bus, run_id)
        if rec is None:
            raise ApiError(404, f"no run {run_id}: list runs with GET /v1/runs")
        return rec

    @app.post(
        "/v1/runs",
        status_code=202,
        response_model=m.RunAccepted,
        operation_id="submitRun",
        responses={202: {"links": _RUN_LINKS}, **_errors(401, 404, 413, 422, 503)},
        **v1,
    )
    async def submit_run(body: m.RunRequest, request: Request) -> JSONResponse:
        """Submit a goal. Returns at once with the run id; follow it with /events."""
        if body.repo.kind == "bundle" and not await api_runs.bundle_exists(bus, body.repo.location):
            raise ApiError(
                404,
                f"no bundle {body.repo.location!r} in the object store: upload it first "
                "(baro submit --repo does), or name the repository by URL",
            )
        try:
            submitted = inputs.check_submission(submitted_from(body, settings))
        except inputs.InputProblem as exc:  # what the model let through, the conductor would refuse
            raise ApiError(422, str(exc)) from None
        await api_runs.submit(bus, submitted)
        accepted = m.RunAccepted(
            run_id=submitted.run_id, state="submitted", links=api_views.links(submitted.run_id)
        )
        return JSONResponse(
            status_code=202,
            content=jsonable_encoder(accepted),
            headers={"Location": accepted.links.self},
        )

    @app.get(
        "/v1/runs",
        response_model=m.RunList,
        operation_id="listRuns",
        responses=_errors(401, 422, 503),
        **v1,
    )
    async def list_runs(
        state: Annotated[m.RunState | None, Query(description="only runs in this state")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> m.RunList:
        """Recorded runs, newest first."""
        records = await api_runs.list_runs(bus, state, limit)
        return m.RunList(runs=[api_views.summary(r) for r in records])

    @app.get(
        "/v1/runs/{run_id}",
        response_model=m.RunDetail,
        operation_id="getRun",
        responses=_errors(401, 404, 422, 503),
        **v1,
    )
    async def get_run(run_id: m.RUN_ID) -> m.RunDetail:
        """State, mode (with confidence, reason and who decided), stories and totals."""
        return api_views.detail(await found(run_id))

    @app.post(
        "/v1/runs/{run_id}/mode",
        operation_id="confirmMode",
        status_code=202,
        response_model=m.ModeAccepted,
        responses=_errors(401, 404, 409, 422, 503),
        **v1,
    )
    async def confirm_mode(
        run_id: m.RUN_ID, body: Annotated[m.ModeChoice | None, Body()] = None
    ) -> m.ModeAccepted:
        """Confirm intake's suggestion (no body, or mode null) or override it, for a run
        submitted with confirm 'picker' that is awaiting confirmation."""
        rec = await found(run_id)
        done = await api_runs.confirm_mode(bus, rec, body.mode if body else None)
        return m.ModeAccepted(run_id=run_id, mode=done.mode, source=done.source)  # type: ignore[arg-type]

    @app.post(
        "/v1/runs/{run_id}/answers",
        operation_id="answerQuestions",
        status_code=202,
        response_model=m.AnswersAccepted,
        responses=_errors(401, 404, 409, 422, 503),
        **v1,
    )
    async def answer_questions(run_id: m.RUN_ID, body: m.AnswersIn) -> m.AnswersAccepted:
        """Answer the questions of a run awaiting answers: the goal is decided again with
        them, and the run goes on to planning."""
        rec = await found(run_id)
        answers = [s.GivenAnswer(question_id=a.question_id, text=a.text) for a in body.answers]
        try:
            await api_runs.answer(bus, rec, answers, "api")
        except api_runs.UnknownQuestion as exc:
            raise ApiError(422, str(exc)) from None
        answered = len({a.question_id for a in answers if a.text.strip()})
        total = len(rec.clarification.questions) if rec.clarification else 0
        return m.AnswersAccepted(run_id=run_id, answered=answered, skipped=total - answered)

    @app.post(
        "/v1/runs/{run_id}/cancel",
        operation_id="cancelRun",
        status_code=202,
        response_model=m.CancelAccepted,
        responses=_errors(401, 404, 409, 422, 503),
        **v1,
    )
    async def cancel_run(
        run_id: m.RUN_ID, body: Annotated[m.CancelRequest | None, Body()] = None
    ) -> m.CancelAccepted:
        """Cancel a run that has not finished; its running agents are stopped."""
        rec = await found(run_id)
        reason = (body.reason if body and body.reason else None) or "cancelled through the API"
        await api_runs.cancel(bus, rec, reason)
        return m.CancelAccepted(run_id=run_id, state=rec.state)

    @app.get(
        "/v1/runs/{run_id}/events",
        operation_id="runEvents",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "server-sent events (docs/events.md): `id` is where the stream "
                "stands (the run's event sequence, with `agent` also the agents' event "
                "sequence, as `N-M`), `event` the event type, `data` the event as JSON",
                "content": {SSE_MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            **_errors(401, 404, 422, 503),
        },
        **v1,
    )
    async def run_events(
        request: Request,
        run_id: m.RUN_ID,
        follow: Annotated[
            bool, Query(description="keep the stream open for live events until the run ends")
        ] = True,
        agent: Annotated[
            bool,
            Query(description="include the agents' normalized events (`agent.event`)"),
        ] = False,
        last_event_id: Annotated[
            str,
            Header(
                alias="Last-Event-ID",
                pattern=runstream.POSITION_PATTERN,
                description="resume after this event id: `N`, or `N-M` with `agent` "
                "(0: from the start)",
            ),
        ] = "0",
    ) -> StreamingResponse:
        """The run's events from the start (or after Last-Event-ID), then live ones; the
        stream ends after the run's `run.finished` event."""
        await found(run_id)
        ended = asyncio.Event()  # the client left, or the server is stopping
        stream = runstream.run_stream(
            bus,
            run_id,
            agent=agent,
            after=runstream.Position.parse(last_event_id),
            follow=follow,
            stop=ended,
            keepalive_s=runstream.KEEPALIVE_S,
        )
        return StreamingResponse(
            _sse(stream, ended, request, stop, agent),
            media_type=SSE_MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/v1/events",
        operation_id="everyRunEvents",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "server-sent events (docs/events.md): for every event of any "
                "run from now on, `event` its type and `data` `{run_id, type, ts}`; a comment "
                "line keeps the connection alive",
                "content": {SSE_MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            **_errors(401, 503),
        },
        **v1,
    )
    async def every_run_events(request: Request) -> StreamingResponse:
        """Which runs change, live: one line per event of any run (what it is and which
        run), for a list of runs that follows the bus instead of asking again and again.
        Nothing of the past is replayed: read GET /v1/runs first."""
        ended = asyncio.Event()
        # listening before the response starts: what happens once the client has the first
        # line reaches it
        changes = await bus.live_run_events(runstream.KEEPALIVE_S)
        return _ListeningResponse(
            changes,
            _sse_changes(changes, ended, request, stop),
            media_type=SSE_MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    dashboard.mount(app)
    return app


class _ListeningResponse(StreamingResponse):
    """A stream of what a subscription made before the answer receives; the subscription
    ends with the response, however it ends (also when the client left before the body
    was started, which then never runs its own cleanup)."""

    def __init__(self, listening: Listening[Any], content: AsyncIterator[bytes], **kw: Any) -> None:
        super().__init__(content, **kw)
        self.listening = listening

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.listening.aclose()


async def _sse_changes(
    stream: Listening[s.Event | None],
    ended: asyncio.Event,
    request: Request,
    stopping: asyncio.Event,
) -> AsyncIterator[bytes]:
    async with _watching(request, stopping, ended):
        yield b"retry: 3000\n\n"
        try:
            async for event in stream:
                if ended.is_set():
                    return
                if event is None:
                    yield b": keepalive\n\n"
                    continue
                change = api_views.run_changed(event)
                yield f"event: {change.type}\ndata: ".encode() + s.encode(change) + b"\n\n"
        finally:
            await stream.aclose()


async def _sse(
    stream: AsyncIterator[runstream.Streamed | None],
    ended: asyncio.Event,
    request: Request,
    stopping: asyncio.Event,
    agent: bool,
) -> AsyncIterator[bytes]:
    """The stream as server-sent events. Writing to a client that left does not fail, so
    the client's disconnect (and the server's stop) is watched for and ends the stream."""
    async with _watching(request, stopping, ended):
        yield b"retry: 3000\n\n"
        try:
            async for item in stream:
                if item is None:
                    yield b": keepalive\n\n"
                    continue
                event = api_views.public_event(item.event)
                tag = event.__struct_config__.tag
                where = item.position.text(agent)
                yield f"id: {where}\nevent: {tag}\ndata: ".encode() + s.encode(event) + b"\n\n"
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def _watching(
    request: Request, stopping: asyncio.Event, ended: asyncio.Event
) -> AsyncIterator[None]:
    """Set ``ended`` when the client leaves or the server stops, for as long as a stream
    is written."""
    watchers = [
        asyncio.create_task(_until_disconnected(request)),
        asyncio.create_task(stopping.wait()),
    ]
    for watcher in watchers:
        watcher.add_done_callback(lambda _: ended.set())
    try:
        yield
    finally:
        for watcher in watchers:
            watcher.cancel()


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def submitted_from(body: m.RunRequest, settings: Settings) -> s.RunSubmitted:
    repo = body.repo
    limits = body.limits
    backend = body.backend or settings.backend
    script = body.agent_script if backend == "scripted" else None
    return s.RunSubmitted(
        run_id=new_run_id(),
        goal=body.goal,
        repo=s.RepoSource(
            kind=repo.kind,
            location=repo.location,
            commit=repo.commit.lower() if repo.commit else None,
            ref=repo.ref,
        ),
        mode_request=body.mode,
        intake=body.intake or settings.intake,
        backend=backend,
        model=body.model,
        limits=s.Limits(
            max_stories=limits.max_stories,
            parallelism=limits.parallelism,
            token_budget=limits.token_budget,
            run_token_budget=limits.run_token_budget or settings.run_token_budget,
            story_timeout_s=limits.story_timeout_s,
            stall_timeout_s=limits.stall_timeout_s,
            retries=limits.retries,
            max_attempts=limits.max_attempts,
            retry_window_s=limits.retry_window_s,
            heals=limits.heals,
        ),
        confirm=body.confirm,
        clarify=body.clarify,
        publish=body.publish,
        surface=body.surface,
        review=body.review,
        replan=body.replan,
        checkpoint=body.checkpoint,
        slug=body.slug,
        agent_script=json.dumps(script) if script is not None else None,
        submitted_by="api",
    )
