"""create_app(): wiring only — routers, middleware, problem handlers, lifespan (and embedded workers)."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway import API_VERSION, openapi, telemetry
from gateway.api import audit, consents, health, messages, organisations, subscriptions, trajectories, triage, well_known
from gateway.auth.dependencies import RateLimiter
from gateway.http import RequestFrame, internal_error
from gateway.logs import configure_logging
from gateway.problems import PROBLEM_JSON, PROBLEM_TYPES, Problem, field_detail, render
from gateway.schemas import CONTROL_CHARACTERS_ERROR
from gateway.services import Services
from gateway.settings import Settings

log = logging.getLogger("brb.gateway")


def _problem(request: Request, slug: str, detail: str, headers: dict | None = None) -> JSONResponse:
    type_ = PROBLEM_TYPES[slug]
    return JSONResponse(render(type_, detail, request.url.path), status_code=type_.status,
                        media_type=PROBLEM_JSON, headers=headers)


def _pointer(loc: tuple) -> str:
    where, *rest = loc or ("body",)
    if where == "body":
        return "".join(f"/{p}" for p in rest)
    return f"{where}:{'.'.join(str(p) for p in rest)}"


def _allowed_methods(request: Request) -> list[str]:
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


class BodyLimit:
    """Refuse bodies over ``max_body_bytes`` with a 413 problem: a declared Content-Length at once, a
    streamed (chunked) body as soon as it grows past the limit. The app then sees a disconnect, and
    whatever it would have answered is replaced by the 413."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = next((value for name, value in scope.get("headers") or () if name == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        seen, over = 0, False

        async def limited_receive():
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not over:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope, receive, send) -> None:
        """The 413 problem (``API-Version`` and ``traceparent`` come from ``RequestFrame`` around this)."""
        response = JSONResponse(render(PROBLEM_TYPES["payload-too-large"], f"at most {self.max_bytes} bytes", scope.get("path")),
                                status_code=413, media_type=PROBLEM_JSON)
        await response(scope, receive, send)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or (services.settings if services else Settings())
    configure_logging(settings.log_level)
    telemetry.configure(settings.otel_exporter_otlp_endpoint, settings.otel_service_name)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        svc = services or Services.from_settings(settings)
        app.state.services = svc
        app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_overrides)
        stop = asyncio.Event()
        from gateway.keyrotation import KeyKeeper

        tasks = [await KeyKeeper(svc, "gateway").start(stop)]  # key file reloads, sealing key, key_holders heartbeat
        if settings.run_workers:
            from gateway.workers import worker_tasks

            tasks += worker_tasks(svc, stop)  # each supervised: a crash is logged and the worker restarted
        # what start-up made (routes, models, the catalogue: ~200,000 objects) leaves the collector's
        # generations: a full collection then no longer walks it, which cut the inbox's p99 from ~130 to ~27 ms
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                try:
                    await asyncio.wait_for(task, 10)
                except Exception:  # noqa: BLE001 - shutting down; say which worker did not stop cleanly
                    log.warning("worker.stop-failed", exc_info=True, extra={"worker": task.get_name()})
            if services is None:
                await svc.db.dispose()

    # FastAPI's own telemetry (newer versions) stays off: its spans carry raw paths and queries (ids, a subject
    # pseudonym in an audit filter), its logs are not scrubbed; the middleware below traces and meters instead
    native = {"telemetry": {"tracing": False, "metrics": False, "logs": False}} \
        if "telemetry" in inspect.signature(FastAPI).parameters else {}
    app = FastAPI(title="Berichtenbox Re-integratie", version=API_VERSION, lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None, **native)
    app.router.redirect_slashes = False  # NL API Design Rules: no trailing slash, and never a redirect
    if services is not None:  # usable without running the lifespan (tests with an ASGI transport)
        app.state.services = services
        app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_overrides)

    app.include_router(health.router)
    app.include_router(well_known.router)  # the receipts' public keys, no token
    for router in (messages.router, consents.router, trajectories.router, triage.router, audit.router, subscriptions.router,
                   organisations.router):
        app.include_router(router, prefix=openapi.PREFIX)

    from gateway.pages.app import PREFIX, create_pages_app

    pages = create_pages_app(settings, app.state)  # the audit officers' pages; None without a session key
    if pages is not None:
        app.mount(PREFIX, pages)

        @app.get(PREFIX, include_in_schema=False)
        async def pages_home() -> RedirectResponse:
            return RedirectResponse(f"{PREFIX}/", status_code=308)

    published: dict = {}

    @app.get(f"{openapi.PREFIX}/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        if not published:
            published.update(openapi.build(app))
        return JSONResponse(published)

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return _problem(request, exc.type.slug, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _problem(request, "invalid-request", "the body is not valid JSON")
        items = [(_pointer(tuple(e.get("loc", ()))) + (e.get("ctx") or {}).get("pointer", "")
                  if e.get("type") == CONTROL_CHARACTERS_ERROR else _pointer(tuple(e.get("loc", ()))),
                  str(e.get("msg", "invalid")).removeprefix("Value error, ")) for e in errors]
        return _problem(request, "validation-failed", field_detail(items))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        slug = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large",
                415: "unsupported-media-type"}.get(exc.status_code, "invalid-request")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method the path answers to, not only the first route's
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return _problem(request, slug, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception):  # a backstop: RequestFrame answers first
        return internal_error(exc)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestFrame)  # added last: the outermost, so a 413 is traced, logged and versioned too
    return app
