"""The request frame is pure ASGI middleware (issue 17): no ``BaseHTTPMiddleware`` per request, and still on every
answer what a caller and an operator rely on: ``API-Version`` (also on a 404, 405, 413 and 500), the caller's
trace continued in ``traceparent``, one ``http.request`` line per request naming the route template, and an
unhandled error answered as a problem whose ``instance`` names the error id of its logged traceback."""
import httpx
import pytest
from fastapi import Depends
from fastapi.responses import StreamingResponse
from starlette.middleware.base import BaseHTTPMiddleware

from gateway import API_VERSION
from gateway.app import create_app
from gateway.auth.dependencies import require
from tests.scenario import problem

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ITEM = "item-4711"


@pytest.fixture
def app(services):
    """The real app with two routes that fail the way a bug would: before and after the answer started."""
    app = create_app(services=services)

    @app.get("/api/v1/failing/{item_id}")
    async def failing(item_id: str, caller=Depends(require("messages:read"))):
        raise RuntimeError("a bug")

    @app.get("/api/v1/streaming/{item_id}")
    async def streaming(item_id: str):
        async def body():
            yield b"["
            raise RuntimeError("a bug halfway")
        return StreamingResponse(body(), media_type="application/json")

    return app


@pytest.fixture
async def frame_client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://gateway") as c:
        yield c


def test_no_base_http_middleware_wraps_the_requests(app):
    classes = [m.cls for m in app.user_middleware]
    assert classes and not any(isinstance(c, type) and issubclass(c, BaseHTTPMiddleware) for c in classes)
    assert all(m.cls.__name__ != "BaseHTTPMiddleware" for m in app.user_middleware)


async def test_api_version_on_a_404_and_a_405(frame_client, orgs, log_lines):
    r = await frame_client.get(f"/api/v1/nowhere/{ITEM}", headers=orgs.vught.headers())
    problem(r, 404, "not-found")
    assert r.headers["api-version"] == API_VERSION
    r = await frame_client.put("/api/v1/inbox", headers=orgs.vught.headers())
    problem(r, 405, "method-not-allowed")
    assert r.headers["api-version"] == API_VERSION and r.headers["allow"] == "GET"
    lines = log_lines.events("http.request")
    assert [(x["route"], x["status"], x["method"]) for x in lines] == [("unmatched", 404, "GET"), ("/api/v1/inbox", 405, "PUT")]
    assert ITEM not in "\n".join(log_lines.raw)


async def test_api_version_and_a_request_line_on_a_declared_413(frame_client, orgs, services, log_lines):
    too_much = b"x" * (services.settings.max_body_bytes + 1)
    r = await frame_client.post("/api/v1/messages", content=too_much, headers=orgs.vught.headers(
        **{"Idempotency-Key": "k-413", "Content-Type": "application/json", "traceparent": CALLER}))
    problem(r, 413, "payload-too-large")
    assert r.headers["api-version"] == API_VERSION and r.headers.get_list("api-version") == [API_VERSION]
    assert r.headers["traceparent"].split("-")[1] == TRACE_ID
    (line,) = log_lines.events("http.request")
    assert line["status"] == 413 and line["trace_id"] == TRACE_ID


async def test_api_version_and_a_request_line_on_a_chunked_413(frame_client, orgs, services, log_lines):
    limit = services.settings.max_body_bytes

    async def chunks():
        for _ in range(limit // 10_000 + 2):
            yield b"x" * 10_000  # no Content-Length: the limit is found while the body streams in

    r = await frame_client.post("/api/v1/messages", content=chunks(), headers=orgs.vught.headers(
        **{"Idempotency-Key": "k-413c", "Content-Type": "application/json"}))
    problem(r, 413, "payload-too-large")
    assert "content-length" not in r.request.headers
    assert r.headers.get_list("api-version") == [API_VERSION]
    (line,) = log_lines.events("http.request")
    assert line["status"] == 413 and line["route"] == "/api/v1/messages"


async def test_a_500_is_a_problem_naming_the_logged_error_id_in_the_callers_trace(frame_client, orgs, log_lines):
    r = await frame_client.get(f"/api/v1/failing/{ITEM}", headers=orgs.vught.headers(traceparent=CALLER))
    body = problem(r, 500, "internal-error")
    assert r.headers["api-version"] == API_VERSION
    assert body["instance"].startswith("urn:uuid:")
    (error,) = log_lines.events("http.unhandled-error")
    assert body["instance"] == f"urn:uuid:{error['error_id']}" and error["error_id"] in body["detail"]
    assert error["trace_id"] == TRACE_ID and error["route"] == "/api/v1/failing/{item_id}"
    assert error["caller_oin"] == orgs.vught.oin and error["exc_type"] == "RuntimeError" and "a bug" in error["traceback"]
    (line,) = log_lines.events("http.request")
    assert line["status"] == 500 and line["route"] == "/api/v1/failing/{item_id}" and line["trace_id"] == TRACE_ID
    assert r.headers["traceparent"].split("-")[1] == TRACE_ID


async def test_an_error_after_the_answer_started_is_logged_in_context_and_not_answered_twice(frame_client, log_lines):
    r = await frame_client.get(f"/api/v1/streaming/{ITEM}", headers={"traceparent": CALLER})
    assert r.status_code == 200 and r.headers["api-version"] == API_VERSION  # what was sent stays sent
    (error,) = log_lines.events("http.error-after-answer")
    assert error["exc_type"] == "RuntimeError" and error["trace_id"] == TRACE_ID
    assert error["route"] == "/api/v1/streaming/{item_id}" and error["level"] == "error"
    (line,) = log_lines.events("http.request")
    assert line["status"] == 200 and line["route"] == "/api/v1/streaming/{item_id}"
    assert log_lines.events("http.unhandled-error") == []


async def test_one_request_line_per_request_with_the_template_and_the_callers_trace(frame_client, orgs, log_lines):
    message_id = "0b6f8c0a-3e5d-4c1a-9d2b-1f2e3d4c5b6a"
    answers = [await frame_client.get(f"/api/v1/messages/{message_id}", params={"purpose": "reintegration"},
                                      headers=orgs.amsterdam.headers(traceparent=CALLER)),
               await frame_client.get("/health/live")]
    assert [a.status_code for a in answers] == [404, 200]
    assert all(a.headers["api-version"] == API_VERSION for a in answers)
    echoed = answers[0].headers["traceparent"].split("-")
    assert echoed[1] == TRACE_ID and echoed[2] != "00f067aa0ba902b7"  # the caller's trace, our own span
    assert answers[1].headers["traceparent"].split("-")[1] != TRACE_ID  # no traceparent sent: a new trace
    lines = log_lines.events("http.request")
    assert [x["route"] for x in lines] == ["/api/v1/messages/{message_id}", "/health/live"]
    assert lines[0]["trace_id"] == TRACE_ID and lines[0]["caller_oin"] == orgs.amsterdam.oin and lines[0]["method"] == "GET"
    assert lines[1]["trace_id"] == answers[1].headers["traceparent"].split("-")[1] and "caller_oin" not in lines[1]
    raw = "\n".join(log_lines.raw)
    assert message_id not in raw and "purpose=" not in raw
