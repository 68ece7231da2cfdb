"""Failures show (issue 13): an unhandled error, a database error under the relay, a crashing worker and a
record that is no CloudEvent each leave a JSON log line an operator can find, and the gateway goes on.
The lines are taken from the real loggers through the real formatter and parsed."""
import asyncio
import json
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import Depends
from sqlalchemy import event, text
from sqlmodel import func, select

from gateway.app import create_app
from gateway.auth.dependencies import require
from gateway.db.models import OutboxEvent
from gateway.outbox.relay import PRUNE_BATCH, Relay, prune_published
from gateway.webhooks.dispatcher import Dispatcher
from gateway.workers import register, supervise
from tests.conftest import eventually
from tests.integration import test_events as events
from tests.integration.test_events import Receiver, consume, drain, subscribe
from tests.scenario import BSN, Chain, seed_stay

kafka_services, kclient, korgs, receiver_server = events.kafka_services, events.kclient, events.korgs, events.receiver_server
JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


# -- an unhandled error in a request --------------------------------------------------------------

@pytest.fixture
async def failing_client(services, orgs):
    """The real app with one more route that fails the way a bug would: its exception message carries
    a BSN and a token, and a local variable holds a secret."""
    app = create_app(services=services)

    @app.get("/api/v1/failing/{item_id}")
    async def failing(item_id: str, caller=Depends(require("messages:read"))):
        local_only = "LOCAL-ONLY-VALUE"
        raise RuntimeError(f"no stay for bsn {BSN} with token {JWT} ({len(local_only)})")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://g") as c:
        yield c


async def test_an_unhandled_error_logs_a_scrubbed_traceback_under_the_id_the_problem_names(failing_client, orgs, log_lines):
    r = await failing_client.get("/api/v1/failing/item-77?subjectId=abc", headers=orgs.vught.headers(
        traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01"))
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/internal-error") and BSN not in r.text
    (line,) = log_lines.events("http.unhandled-error")
    assert problem["instance"] == f"urn:uuid:{line['error_id']}" and line["error_id"] in problem["detail"]
    assert line["level"] == "error" and line["logger"] == "brb.gateway" and line["exc_type"] == "RuntimeError"
    assert line["trace_id"] == TRACE_ID and line["method"] == "GET" and line["caller_oin"] == orgs.vught.oin
    assert line["route"] == "/api/v1/failing/{item_id}"
    assert 'raise RuntimeError(f"no stay for bsn' in line["traceback"] and "[redacted]" in line["exc_message"]
    (request,) = log_lines.events("http.request")
    assert request["status"] == 500 and request["route"] == "/api/v1/failing/{item_id}" and request["trace_id"] == TRACE_ID
    everything = "\n".join(log_lines.raw)
    for secret in (BSN, JWT, "eyJ", "LOCAL-ONLY-VALUE", "item-77", "subjectId=abc"):
        assert secret not in everything, secret


async def test_a_request_line_names_the_route_template_never_the_path_or_query(client, orgs, log_lines):
    message_id = "0b6f8c0a-3e5d-4c1a-9d2b-1f2e3d4c5b6a"
    r = await client.get(f"/api/v1/messages/{message_id}", params={"purpose": "reintegration"},
                         headers=orgs.amsterdam.headers())
    assert r.status_code == 404
    (line,) = log_lines.events("http.request")
    assert line["route"] == "/api/v1/messages/{message_id}" and line["status"] == 404 and line["method"] == "GET"
    assert line["caller_oin"] == orgs.amsterdam.oin and line["duration_ms"] >= 0 and len(line["trace_id"]) == 32
    assert line["trace_id"] in r.headers["traceparent"]
    assert message_id not in log_lines.raw[-1] and "purpose=" not in log_lines.raw[-1]


# -- the relay and a database error ---------------------------------------------------------------

async def _published(services) -> int:
    async with services.db.read() as s:
        return (await s.exec(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_not(None)))).one()


async def test_the_relay_logs_a_round_that_failed_on_the_database_and_publishes_once_it_is_back(kafka_services, broker, log_lines):
    svc = kafka_services
    async with svc.db.write() as s:
        s.add(OutboxEvent(event_id=str(uuid.uuid4()), topic=svc.settings.events_topic, type="consent.recorded",
                          key="subject-1", data={"parties": []}, created_at=svc.clock.now()))
    async with svc.db.write() as s:
        await s.exec(text("ALTER TABLE outbox RENAME TO outbox_away"))
    stop = asyncio.Event()
    relay = asyncio.create_task(Relay(svc).run(stop))
    try:
        failed = await log_lines.wait_for("relay.round-failed", count=2)  # it tried again, and is still running
        assert not relay.done()
        assert failed[0]["cause"] == "database" and failed[0]["level"] == "warning" and failed[0]["retry_in_seconds"] > 0
        assert "outbox" in failed[0]["traceback"] and [f["attempt"] for f in failed[:2]] == [1, 2]
        async with svc.db.write() as s:
            await s.exec(text("ALTER TABLE outbox_away RENAME TO outbox"))
        await eventually(lambda: _published(svc), timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(relay, 10)
    (record,) = await consume(broker, svc.settings.events_topic, 1, timeout=10)
    assert json.loads(record.value)["type"] == "nl.brb.consent.recorded"


# -- a crashing worker ----------------------------------------------------------------------------

async def test_the_supervisor_logs_a_crashed_worker_and_restarts_it(log_lines):
    starts, stop = [], asyncio.Event()

    async def flaky(stop_event: asyncio.Event) -> None:
        starts.append(time.monotonic())
        if len(starts) <= 2:
            raise RuntimeError(f"lost the stay of {BSN}")
        await stop_event.wait()

    supervisor = asyncio.create_task(supervise("flaky", flaky, stop, backoff_initial=0.05, backoff_max=0.2))
    try:
        await eventually(lambda: _at_least(starts, 3), timeout=5, interval=0.01)
        crashed, restarted = log_lines.events("worker.crashed"), log_lines.events("worker.restarted")
        assert len(crashed) == 2 and len(restarted) == 2 and not supervisor.done()
        assert all(c["worker"] == "flaky" and c["level"] == "error" and c["exc_type"] == "RuntimeError" for c in crashed)
        assert "in flaky" in crashed[0]["traceback"] and BSN not in "\n".join(log_lines.raw)
        assert [r["crashes_in_a_row"] for r in restarted] == [1, 2] and restarted[0]["worker"] == "flaky"
        order = [json.loads(line)["event"] for line in log_lines.raw]
        assert order == ["worker.crashed", "worker.restarted"] * 2
    finally:
        stop.set()
        await asyncio.wait_for(supervisor, 2)


async def _at_least(starts, n):
    return len(starts) >= n


async def test_the_supervisor_stops_during_its_backoff_without_waiting_it_out(log_lines):
    stop = asyncio.Event()

    async def broken(_stop):
        raise RuntimeError("broken")

    supervisor = asyncio.create_task(supervise("broken", broken, stop, backoff_initial=30, backoff_max=60))
    await log_lines.wait_for("worker.crashed")
    stop.set()
    await asyncio.wait_for(supervisor, 10)  # the backoff would be 30-60 s: a stop that waited it out times out here
    assert log_lines.events("worker.restarted") == []


# -- the dispatcher and a record that is no CloudEvent --------------------------------------------

async def test_the_dispatcher_passes_over_records_that_are_no_cloudevent_and_delivers_the_next(
        kclient, korgs, kafka_services, receiver_server, broker, log_lines):
    await seed_stay(kafka_services)
    receiver = Receiver(failure_rate=0.0)
    await subscribe(kclient, korgs.amsterdam, await receiver_server(receiver))
    garbage = [b"\xff\x00 GARBAGE-BYTES", json.dumps({"hello": "GARBAGE-JSON", "bsn": BSN}).encode()]
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        offsets = [(await producer.send_and_wait(kafka_services.settings.events_topic, value)).offset for value in garbage]
    finally:
        await producer.stop()
    before = _unreadable_total((await kclient.get("/metrics")).text)
    sent = (await Chain(kclient, korgs).send(korgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]

    await drain(kafka_services)

    async def delivered():
        return len(receiver.accepted) == 1

    stop = asyncio.Event()
    dispatcher = asyncio.create_task(supervise("dispatcher", lambda s: Dispatcher(kafka_services).run(s), stop))
    try:
        await eventually(delivered, timeout=12, interval=0.05)
    finally:
        stop.set()
        await asyncio.wait_for(dispatcher, 10)
    assert log_lines.events("worker.crashed") == [] and log_lines.events("dispatcher.round-failed") == []
    body, _headers = next(iter(receiver.accepted.values()))
    assert json.loads(body)["data"]["messageId"] == sent
    unreadable = log_lines.events("webhook.unreadable-record")
    assert sorted(line["offset"] for line in unreadable) == sorted(offsets)
    assert {line["topic"] for line in unreadable} == {kafka_services.settings.events_topic}
    assert {line["exc_type"] for line in unreadable} == {"UnicodeDecodeError", "CloudEventValidationError"}
    assert all(line["level"] == "error" and "partition" in line for line in unreadable)
    everything = "\n".join(log_lines.raw)
    assert "GARBAGE" not in everything and BSN not in everything
    assert _unreadable_total((await kclient.get("/metrics")).text) == before + 2


def _unreadable_total(metrics: str) -> float:
    (line,) = [m for m in metrics.splitlines() if m.startswith("brb_webhook_unreadable_records_total ")]
    return float(line.split()[1])


# -- pruning in batches ---------------------------------------------------------------------------

async def test_pruning_a_backlog_deletes_in_bounded_batches_and_keeps_unconfirmed_rows(services):
    from datetime import timedelta

    now = services.clock.now()
    confirmed = 2 * PRUNE_BATCH + 7
    rows = [dict(event_id=f"00000000-0000-4000-8000-{i:012d}", topic="t.events", type="consent.recorded", key=f"s{i % 50}",
                 data={"parties": []}, created_at=now, published_at=now if i < confirmed else None, attempts=1)
            for i in range(confirmed + 3)]
    async with services.db.write() as s:
        await s.exec(OutboxEvent.__table__.insert(), params=rows)
    deletes: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("DELETE FROM OUTBOX"):
            deletes.append(cursor.rowcount)

    services.clock.advance(timedelta(days=8))
    event.listen(services.db.engine.sync_engine, "after_cursor_execute", count)
    try:
        assert await prune_published(services) == confirmed
    finally:
        event.remove(services.db.engine.sync_engine, "after_cursor_execute", count)
    assert deletes == [PRUNE_BATCH, PRUNE_BATCH, 7]  # three transactions, none larger than a batch
    async with services.db.read() as s:
        left = (await s.exec(select(OutboxEvent.published_at))).all()
    assert left == [None, None, None]


async def test_readiness_shows_a_worker_that_is_restarting_after_a_crash(client, services, log_lines):
    stop, runs = asyncio.Event(), []

    async def broken_once(stop_event: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("database gone")
        await stop_event.wait()

    supervisor = asyncio.create_task(supervise("relay", broken_once, stop, backoff_initial=2, backoff_max=2,
                                               health=register(services, "relay")))
    try:
        await log_lines.wait_for("worker.crashed")
        assert (await client.get("/health/ready")).json()["workers"] == {
            "relay": {"state": "restarting", "lastSuccessAt": None, "lastError": "crashed: RuntimeError"}}
        await log_lines.wait_for("worker.restarted")
        await eventually(lambda: _at_least(runs, 2), timeout=5, interval=0.01)
        assert (await client.get("/health/ready")).json()["workers"]["relay"]["state"] == "running"
    finally:
        stop.set()
        await asyncio.wait_for(supervisor, 5)
