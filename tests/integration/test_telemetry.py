"""Telemetry that tells (README, 'Telemetry'): one trace from a caller's request through the send
transaction to the event in Kafka, which the relay round and the webhook attempt link to; a caller's
``traceparent`` honoured; logs and audit records carrying the same trace id; the metrics the dashboard and
the alert rules read, counted where the thing happens. Spans are taken with the SDK's in-memory exporter."""
import asyncio
import time

import httpx
import pytest
import uvicorn
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlmodel import select

from gateway import telemetry
from gateway.app import create_app
from gateway.broker import free_port
from gateway.db.models import AuditRecord, OutboxEvent
from gateway.outbox.cloudevent import from_kafka
from gateway.services import Services
from tests.conftest import eventually, settings_for
from tests.integration.test_events import consume, subscribe, workers
from tests.scenario import Chain, read_body, seed_stay

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
_EXPORTER = InMemorySpanExporter()
telemetry.provider().add_span_processor(SimpleSpanProcessor(_EXPORTER))  # the real SDK, kept in memory


@pytest.fixture
def spans():
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


def named(spans, name: str) -> list:
    return [s for s in spans.get_finished_spans() if s.name == name]


def within(spans, inner, outer) -> bool:
    """``inner`` descends from ``outer`` (FastAPI may put its own operation spans in between)."""
    by_id = {s.context.span_id: s for s in spans.get_finished_spans()}
    parent = inner.parent
    while parent is not None:
        if parent.span_id == outer.context.span_id:
            return True
        parent = by_id[parent.span_id].parent if parent.span_id in by_id else None
    return False


def trace_of(traceparent: str) -> str:
    return traceparent.split("-")[1]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def total(name: str, **labels) -> float:
    """The sum over every label set matching ``labels``."""
    found = 0.0
    for metric in REGISTRY.collect():
        for s in metric.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                found += s.value
    return found


class Receiver:
    """A webhook subscriber that answers 204 and keeps what it got (body, headers)."""

    def __init__(self):
        self.got: list[tuple[bytes, dict]] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.got.append((body, {k.decode(): v.decode() for k, v in scope["headers"]}))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def kafka_services(database, broker):
    svc = Services.from_settings(settings_for(database, kafka_bootstrap_servers=broker, webhook_backoff_base_seconds=0.05,
                                               webhook_backoff_max_seconds=0.2, broker_backoff_max_seconds=1.0))
    yield svc
    await svc.db.dispose()


@pytest.fixture
async def kclient(kafka_services, orgs):
    transport = httpx.ASGITransport(app=create_app(services=kafka_services), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


@pytest.fixture
async def receiver():
    got = Receiver()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(got, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    got.url = f"http://127.0.0.1:{port}/hooks/brb"
    yield got
    server.should_exit = True
    await task


@pytest.mark.broker
async def test_a_send_is_one_trace_from_the_request_to_kafka_and_the_relay_and_webhook_attempt_link_to_it(
        kclient, orgs, kafka_services, broker, receiver, spans):
    await seed_stay(kafka_services)
    await subscribe(kclient, orgs.amsterdam, receiver.url)
    spans.clear()
    r = await Chain(kclient, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])
    trace_id = trace_of(r.headers["traceparent"])

    (server,) = [s for s in named(spans, "POST /api/v1/messages") if s.kind == SpanKind.SERVER]
    assert hex_trace(server) == trace_id and server.attributes["http.route"] == "/api/v1/messages"
    assert server.attributes["http.response.status_code"] == 201
    assert format(server.context.span_id, "016x") == r.headers["traceparent"].split("-")[2]  # the answer names this span
    (send,) = named(spans, "messages.send")
    assert hex_trace(send) == trace_id and within(spans, send, server)

    async with kafka_services.db.read() as s:
        rows = (await s.exec(select(OutboxEvent))).all()
    assert rows and {trace_of(row.traceparent) for row in rows} == {trace_id}  # events and audit events alike

    async def webhook_called():
        return len(receiver.got) == 1

    async with workers(kafka_services):
        await eventually(webhook_called, timeout=60, interval=0.1)
    (record,) = await consume(broker, kafka_services.settings.events_topic, 1)
    event = from_kafka(record.value, record.key)
    origin = event.get_extension("traceparent")
    assert trace_of(origin) == trace_id  # the CloudEvents distributed-tracing extension

    relay_rounds = [s for s in named(spans, "relay.publish") if s.links]
    assert relay_rounds and all(hex_trace(s) != trace_id for s in relay_rounds)  # a round is a trace of its own
    assert trace_id in {format(link.context.trace_id, "032x") for s in relay_rounds for link in s.links}

    body, headers = receiver.got[0]
    assert trace_of(from_kafka(body, None).get_extension("traceparent")) == trace_id
    (attempt,) = named(spans, "webhook.attempt")
    assert [format(link.context.trace_id, "032x") for link in attempt.links] == [trace_id]
    assert headers["traceparent"].startswith(f"00-{hex_trace(attempt)}-{format(attempt.context.span_id, '016x')}-")


async def test_a_callers_traceparent_is_honoured_in_spans_answer_logs_and_audit_records(client, orgs, services, spans,
                                                                                         log_lines):
    await seed_stay(services)
    r = await client.post("/api/v1/messages", headers=orgs.vught.headers(**{
        "Idempotency-Key": "telemetry-1", "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}), json={
        "type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
        "payload": (await _example("dr-plan"))})
    assert r.status_code == 201, r.text
    assert trace_of(r.headers["traceparent"]) == CALLER_TRACE
    (server,) = [s for s in named(spans, "POST /api/v1/messages") if s.kind == SpanKind.SERVER]
    assert hex_trace(server) == CALLER_TRACE and format(server.parent.span_id, "016x") == CALLER_SPAN
    (line,) = [x for x in log_lines.events("http.request") if x.get("route") == "/api/v1/messages"]
    assert line["trace_id"] == CALLER_TRACE and line["status"] == 201
    async with services.db.read() as s:
        traces = set((await s.exec(select(AuditRecord.trace_id).where(AuditRecord.message_id == r.json()["id"]))).all())
    assert traces == {CALLER_TRACE}  # one trace id, not two

    bad = await client.get("/api/v1/subscriptions", headers=orgs.amsterdam.headers(traceparent="00-zz-nonsense-01"))
    assert bad.status_code == 200 and trace_of(bad.headers["traceparent"]) != "zz"  # an invalid one: a new trace
    assert len(trace_of(bad.headers["traceparent"])) == 32


async def _example(message_type: str) -> dict:
    from tests.scenario import example

    return example(message_type)


async def test_token_refusals_are_counted_by_a_short_stable_reason(client, orgs):
    now = int(time.time())
    cases = {
        "missing": {},
        "expired": {"Authorization": f"Bearer {orgs.amsterdam.token(iat=now - 900, exp=now - 300)}"},
        "scope-missing": orgs.amsterdam.headers(scopes="consents:read"),
    }
    replayed_token = orgs.amsterdam.token()
    before = {reason: sample("brb_token_failures_total", reason=reason) for reason in [*cases, "replayed"]}
    for headers in cases.values():
        r = await client.get("/api/v1/messages", headers=headers)
        assert r.status_code in (401, 403), r.text
    assert (await client.get("/api/v1/subscriptions", headers={"Authorization": f"Bearer {replayed_token}"})).status_code == 200
    r = await client.get("/api/v1/subscriptions", headers={"Authorization": f"Bearer {replayed_token}"})
    assert r.status_code == 401 and r.json()["type"].endswith("/token-replayed")  # the problem stays as it was
    for reason in [*cases, "replayed"]:
        assert sample("brb_token_failures_total", reason=reason) == before[reason] + 1, reason


async def test_policy_decisions_are_counted_per_stage_and_http_metrics_carry_the_full_route_template(client, orgs, services):
    await seed_stay(services)
    sends, reads = total("brb_policy_decisions_total", stage="send"), total("brb_policy_decisions_total", stage="read")
    posted = sample("brb_http_requests_total", method="POST", route="/api/v1/messages", status="201")
    read_route = sample("brb_http_requests_total", method="GET", route="/api/v1/messages/{message_id}", status="200")
    chain = Chain(client, orgs)
    receipt = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()
    await chain.read(orgs.amsterdam, receipt["id"])
    assert total("brb_policy_decisions_total", stage="send") == sends + 1
    assert total("brb_policy_decisions_total", stage="read") == reads + 1
    assert total("brb_policy_decisions_total", stage="read", outcome="allow-with-redaction") >= 1
    assert sample("brb_http_requests_total", method="POST", route="/api/v1/messages", status="201") == posted + 1
    assert sample("brb_http_requests_total", method="GET", route="/api/v1/messages/{message_id}", status="200") == read_route + 1
    assert sample("brb_http_request_seconds_count", method="GET", route="/api/v1/messages/{message_id}") >= 1


async def test_the_audit_chain_gauges_follow_appends_and_verification(client, orgs, services):
    await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"], expect=403)  # a refusal is audited too
    async with services.db.read() as s:
        head = (await s.exec(text("SELECT seq FROM audit_head WHERE id = 1"))).one()[0]
    assert head > 0 and sample("brb_audit_chain_head_seq") == head
    assert (await client.get("/api/v1/audit/verify", headers=orgs.inspectorate.headers())).json()["intact"] is True
    assert sample("brb_audit_chain_intact") == 1
    async with services.db.write() as s:
        await s.exec(text("UPDATE audit_records SET detail = 'rewritten' WHERE seq = 1"))
    assert (await client.get("/api/v1/audit/verify", headers=orgs.inspectorate.headers())).json()["intact"] is False
    assert sample("brb_audit_chain_intact") == 0
