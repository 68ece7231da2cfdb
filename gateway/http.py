"""The per-request frame around the app, as pure ASGI middleware (no extra task, no response stream per request,
unlike Starlette's ``BaseHTTPMiddleware``): the request's server span (a caller's W3C ``traceparent`` honoured),
the bound log context, the one ``http.request`` log line, the HTTP metrics by route template, ``API-Version``
and ``traceparent`` on every answer, and an unhandled error answered as a problem+json 500 while the request's
context is still bound (so its log line carries trace id, route and caller)."""
from __future__ import annotations

import contextlib
import logging
import time
import uuid

from fastapi.responses import JSONResponse
from opentelemetry.trace import Status, StatusCode

from gateway import API_VERSION, telemetry
from gateway.logs import bound
from gateway.metrics import LATENCY, REQUESTS
from gateway.problems import PROBLEM_JSON, PROBLEM_TYPES, render

log = logging.getLogger("brb.gateway")
request_log = logging.getLogger("brb.http")

_API_VERSION_HEADER = (b"api-version", API_VERSION.encode())
_ERROR = Status(StatusCode.ERROR)


def internal_error(exc: BaseException) -> JSONResponse:
    """Log the (scrubbed) traceback under a fresh error id; the problem's ``instance`` carries that id. An
    error ``RequestFrame`` already logged (raised after the answer started) is not logged twice: Starlette's
    error middleware still calls its handler (``on_error``) for it, and then drops the answer."""
    if getattr(exc, "_brb_logged", False):
        return JSONResponse({}, status_code=500)
    error_id = str(uuid.uuid4())
    log.error("http.unhandled-error", exc_info=(type(exc), exc, exc.__traceback__), extra={"error_id": error_id})
    body = render(PROBLEM_TYPES["internal-error"], f"an internal error occurred; nothing was stored (error {error_id})",
                  f"urn:uuid:{error_id}")
    return JSONResponse(body, status_code=500, media_type=PROBLEM_JSON)


class RouteTemplates:
    """The matched route's full template (``/api/v1/messages/{message_id}``), never the raw path with ids or a
    query. FastAPI >= 0.16x keeps an included router's routes unprefixed; their contexts know the full path.
    Computed once per app and route, then a dict lookup per request."""

    def __init__(self):
        self._paths: dict[int, str] = {}
        self._routes: list = []  # keeps every route known here alive, so an id is never reused for another

    def __call__(self, scope) -> str | None:
        route = scope.get("route")
        if route is None:
            return None
        path = self._paths.get(id(route))
        if path is None:  # first request, or a route added since
            path = self._learn(scope["app"], route)
        return path

    def _learn(self, app, route) -> str:
        paths: dict[int, str] = {}
        try:
            from fastapi.routing import iter_route_contexts
        except ImportError:  # older FastAPI: included routes carry their prefix themselves
            contexts = []
        else:
            contexts = list(iter_route_contexts(app.routes))
            paths = {id(c.original_route): c.path for c in contexts}
        self._routes = [*self._routes, *(c.original_route for c in contexts), route]
        self._paths = {**self._paths, id(route): route.path, **paths}
        return self._paths[id(route)]


def _caller_oin(scope) -> str | None:
    caller = (scope.get("state") or {}).get("caller")  # set by the auth dependency once the token is verified
    return getattr(caller, "oin", None)


def _trace_headers(scope) -> dict[str, str]:
    """The caller's ``traceparent`` and ``tracestate`` (the first of each), for the W3C propagator."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        if (name == b"traceparent" or name == b"tracestate") and name.decode() not in found:
            found[name.decode()] = value.decode("latin-1")
    return found


class _Metrics:
    """The children of REQUESTS and LATENCY, looked up once per label set instead of on every request."""

    def __init__(self):
        self._requests: dict[tuple[str, str, int], object] = {}
        self._latency: dict[tuple[str, str], object] = {}

    def record(self, method: str, template: str, status: int, seconds: float) -> None:
        counter = self._requests.get((method, template, status))
        if counter is None:
            counter = self._requests[(method, template, status)] = REQUESTS.labels(method, template, str(status))
        histogram = self._latency.get((method, template))
        if histogram is None:
            histogram = self._latency[(method, template)] = LATENCY.labels(method, template)
        counter.inc()
        histogram.observe(seconds)


class RequestFrame:
    """Pure ASGI middleware, the outermost of the app's own: span, log context, request line, metrics,
    ``API-Version`` and ``traceparent`` headers (added to ``http.response.start``), and the problem+json 500
    for an unhandled error. An error raised after the answer started cannot be answered any more: it is
    logged (with the request's context) and re-raised."""

    def __init__(self, app):
        self.app = app
        self.templates = RouteTemplates()
        self.metrics = _Metrics()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        method = scope["method"]
        status = 500
        answered = False

        def template() -> str | None:
            return self.templates(scope)

        with telemetry.server_span(method, _trace_headers(scope)) as span:
            extra_headers = [*telemetry.response_headers(span), _API_VERSION_HEADER]

            async def framed_send(message):
                nonlocal status, answered
                if message["type"] == "http.response.start":
                    status, answered = message["status"], True
                    message = {**message, "headers": [*message.get("headers", ()), *extra_headers]}
                await send(message)

            with bound(method=method, route=template, caller_oin=lambda: _caller_oin(scope)):
                try:
                    await self.app(scope, receive, framed_send)
                except Exception as exc:  # noqa: BLE001 - every error is a problem+json answer, if it still can be
                    if answered:  # too late for a problem: say so with the request's context, then let the server close
                        log.error("http.error-after-answer", exc_info=True, extra={"status": status})
                        with contextlib.suppress(AttributeError):
                            exc._brb_logged = True  # the outer error middleware's handler: do not log it again
                        self._finish(span, method, template() or "unmatched", status, started)
                        raise
                    await internal_error(exc)(scope, receive, framed_send)
                self._finish(span, method, template() or "unmatched", status, started)  # templates, never raw paths

    def _finish(self, span, method: str, route: str, status: int, started: float) -> None:
        """The request line (still inside the bound context), the span's name and outcome, the metrics."""
        elapsed = time.perf_counter() - started
        request_log.info("http.request", extra={"route": route, "status": status, "duration_ms": round(elapsed * 1000, 1)})
        span.update_name(f"{method} {route}")
        span.set_attributes({"http.route": route, "http.response.status_code": status})
        if status >= 500:
            span.set_status(_ERROR)
        self.metrics.record(method, route, status, elapsed)
