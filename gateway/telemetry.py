"""OpenTelemetry traces: one trace id from the caller's request to the event in Kafka and the webhook call.

W3C trace context comes in on ``traceparent`` (a caller's valid one is honoured: its trace goes on in
ours) and goes out on the response, on every published CloudEvent (the distributed-tracing extension
attribute ``traceparent``, the context of the transaction that wrote the event) and on every webhook
call. A relay round and a dispatcher attempt are traces of their own that *link* to the trace of each
event they carry. Spans are always recorded with the SDK, so trace ids exist (logs and audit records
carry them); they leave the process only when ``BRB_OTEL_EXPORTER_OTLP_ENDPOINT`` is set (OTLP over
HTTP). Span attributes never carry a BSN, a subject pseudonym or a payload."""
from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "brb.gateway"
_PROPAGATOR = TraceContextTextMapPropagator()  # W3C only: traceparent (+ tracestate), nothing vendor-specific
_lock = threading.Lock()
_exporting: set[str] = set()


def provider(service_name: str = "brb-gateway") -> TracerProvider:
    """The process's SDK tracer provider, installed on first use (the global one can be set only once)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        with _lock:
            if not isinstance(trace.get_tracer_provider(), TracerProvider):
                trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": service_name})))
            current = trace.get_tracer_provider()
    return current


def configure(endpoint: str | None, service_name: str = "brb-gateway") -> None:
    """Install the provider; with an OTLP/HTTP endpoint (``http://collector:4318``) also export to it.
    Idempotent: the app factory and every worker command call it."""
    sdk = provider(service_name)
    if not endpoint:
        return
    url = endpoint.rstrip("/")
    url = url if url.endswith("/v1/traces") else url + "/v1/traces"
    with _lock:
        if url in _exporting:
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        sdk.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        _exporting.add(url)


_tracers: dict[int, trace.Tracer] = {}


def tracer() -> trace.Tracer:
    """The gateway's tracer of the process's provider, made once (a span processor added later still sees its
    spans: the provider's processors are shared with its tracers)."""
    sdk = provider()
    found = _tracers.get(id(sdk))
    if found is None:
        found = _tracers[id(sdk)] = sdk.get_tracer(TRACER_NAME)
    return found


@contextmanager
def span(name: str, *, context: Context | None = None, kind: SpanKind = SpanKind.INTERNAL,
         **attributes: Any) -> Iterator[Span]:
    """A span around the block, current inside it; an exception marks it failed (and passes on)."""
    attrs = {k.replace("__", "."): v for k, v in attributes.items() if v is not None}
    with tracer().start_as_current_span(name, context=context, kind=kind, attributes=attrs) as current:
        yield current


@contextmanager
def server_span(method: str, headers: Any) -> Iterator[Span]:
    """The request's span, continuing the caller's trace when it sent a valid ``traceparent``. Its
    attributes are the method, the route template and the status: never a path with ids or a query. What
    ``span()`` does (current inside, an exception recorded and marked failed), without its per-call layers:
    this runs on every request."""
    own = tracer().start_span(method, context=extract(headers), kind=SpanKind.SERVER,
                              attributes={"http.request.method": method})
    token = otel_context.attach(trace.set_span_in_context(own))
    try:
        yield own
    except Exception as exc:
        if own.is_recording():
            own.record_exception(exc)
            own.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        otel_context.detach(token)
        own.end()


def response_headers(span: Span) -> list[tuple[bytes, bytes]]:
    """``traceparent`` (and ``tracestate``) naming ``span``, as raw ASGI headers: what ``inject`` writes with
    ``span`` current (the W3C format of the propagator), without building a context per request."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return []
    headers = [(b"traceparent", f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}".encode())]
    if ctx.trace_state:
        headers.append((b"tracestate", ctx.trace_state.to_header().encode("latin-1")))
    return headers


def traced(name: str) -> Callable:
    """Decorator for an async function: a span named ``name`` around each call."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        async def inner(*args: Any, **kwargs: Any) -> Any:
            with span(name):
                return await fn(*args, **kwargs)
        return inner
    return wrap


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context (``traceparent``) into ``headers``; returns them."""
    _PROPAGATOR.inject(headers)
    return headers


def extract(headers: Any) -> Context:
    """The trace context a caller sent (an invalid or absent ``traceparent``: none, a new trace starts)."""
    return _PROPAGATOR.extract(headers)


def traceparent() -> str | None:
    """The current context as a W3C ``traceparent`` value; None outside any span."""
    return inject({}).get("traceparent")


def trace_id() -> str | None:
    """The current trace id (32 hex digits); None outside any span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def link_to(parent: str | None) -> None:
    """Link the current span to the trace of ``parent`` (a ``traceparent`` value): a relay round or a
    dispatcher attempt carries events of many traces, so it is not their child but points at them."""
    if not parent:
        return
    origin = trace.get_current_span(extract({"traceparent": parent})).get_span_context()
    current = trace.get_current_span()
    if origin.is_valid and current.is_recording():
        current.add_link(origin)


def traceparent_of_event(body: str | bytes | None) -> str | None:
    """The ``traceparent`` extension attribute of a structured-mode CloudEvent; None when it has none."""
    try:
        value = json.loads(body or b"null")
    except ValueError:
        return None
    found = value.get("traceparent") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None
