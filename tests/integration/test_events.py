"""Events through the real broker: outbox relay, CloudEvents, outage and crash recovery, webhooks."""
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlmodel import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from gateway.broker import LoopbackBroker, free_port
from gateway.db.models import OutboxEvent, WebhookDelivery
from gateway.outbox.cloudevent import from_kafka
from gateway.outbox.relay import Relay
from gateway.services import Services
from gateway.webhooks.dispatcher import Dispatcher
from tests.conftest import eventually, settings_env, settings_for
from tests.scenario import BSN, Chain, detention_notice, example, problem, read_body, seed_stay, with_subject

ROOT = Path(__file__).resolve().parents[2]
BSNS = ["999990019", "111222333", "123456782", "999990020", "999990032"]
pytestmark = pytest.mark.broker


async def consume(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    """Every record of ``topic`` from its beginning to its end offsets, once at least ``expected`` are there
    (bounded by ``timeout``). Read to the end, so a record beyond the expected ones is seen too."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: list[TopicPartition] = []
        while not partitions:
            await consumer.topics()  # fresh metadata
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                assert loop.time() < deadline, f"{topic}: no such topic within {timeout} s"
                await asyncio.sleep(0.1)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while True:
            ends = await consumer.end_offsets(partitions)
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
                if loop.time() > deadline:
                    return records
            if len(records) >= expected or loop.time() > deadline:
                return records
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


async def unpublished(services) -> int:
    async with services.db.read() as s:
        return (await s.exec(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None)))).one()


async def drain(services) -> None:
    relay = Relay(services)
    try:
        while await relay.publish_once():
            pass
    finally:
        await relay._drop_producer()


@pytest.fixture
async def kafka_services(database, broker):
    svc = Services.from_settings(settings_for(database, kafka_bootstrap_servers=broker, webhook_backoff_base_seconds=0.05,
                                               webhook_backoff_max_seconds=0.2, webhook_max_attempts=4,
                                               broker_backoff_max_seconds=1.0, relay_lease_seconds=3.0))
    yield svc
    await svc.db.dispose()


@pytest.fixture
async def kclient(kafka_services):
    import httpx

    from gateway.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=kafka_services), raise_app_exceptions=False),
                                 base_url="http://gateway") as c:
        yield c


@pytest.fixture
async def korgs(orgs):
    """The demo organisations (registered in the database ``kafka_services`` uses: the same one)."""
    return orgs


async def test_a_send_produces_exactly_the_expected_cloudevents_keyed_by_subject(kclient, korgs, kafka_services, broker):
    await seed_stay(kafka_services)
    receipt = (await Chain(kclient, korgs).send(korgs.vught, "dr-plan", ["municipality:0363"])).json()
    await drain(kafka_services)
    records = await consume(broker, kafka_services.settings.events_topic, 1)
    assert len(records) == 1
    record = records[0]
    event = from_kafka(record.value, record.key, record.headers)
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    assert event.get_specversion() == "1.0" and event.get_type() == "nl.brb.message.delivered"
    assert event.get_source() == "urn:nl:brb:gateway" and event.get_subject() == receipt["subjectId"]
    assert record.key.decode() == receipt["subjectId"]
    data = event.get_data()
    assert data == {"messageId": receipt["id"], "messageType": "dr-plan", "subjectId": receipt["subjectId"],
                    "senderOin": korgs.vught.oin, "recipientOin": korgs.amsterdam.oin, "purpose": "reintegration",
                    "decision": "allow-with-redaction", "parties": sorted([korgs.vught.oin, korgs.amsterdam.oin])}
    assert BSN.encode() not in record.value and b"Vries" not in record.value

    audit = await consume(broker, kafka_services.settings.audit_topic, 5)
    audit_events = [from_kafka(r.value, r.key) for r in audit]
    assert [e.get_data()["activity"] for e in audit_events] == ["send", "deliver", "redact", "redact", "redact"]
    assert len({e.get_id() for e in audit_events + [event]}) == 6
    assert all(BSN.encode() not in r.value for r in audit)


def relay_errors(metrics: str) -> float:
    """``brb_outbox_relay_errors_total`` as /metrics shows it."""
    return next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("brb_outbox_relay_errors_total "))


async def test_with_the_broker_down_100_sends_are_accepted_and_all_arrive_in_order_after_it_returns(database, orgs):
    import httpx

    from gateway.app import create_app

    outage = LoopbackBroker()
    svc = Services.from_settings(settings_for(database, kafka_bootstrap_servers=outage.bootstrap, broker_backoff_max_seconds=1.0))
    stop = asyncio.Event()
    relay_task = asyncio.create_task(Relay(svc).run(stop))
    sent_by_subject = defaultdict(list)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=svc)), base_url="http://g") as c:
            errors_before = relay_errors((await c.get("/metrics")).text)
            chain = Chain(c, orgs)
            for i in range(100):
                bsn = BSNS[i % len(BSNS)]
                receipt = (await chain.send(orgs.vught, "detention-notice", ["municipality:0363"],
                                            with_subject(example("detention-notice"), bsn=bsn))).json()
                sent_by_subject[receipt["subjectId"]].append(receipt["id"])

            async def relay_tried_and_failed():
                return relay_errors((await c.get("/metrics")).text) > errors_before

            await eventually(relay_tried_and_failed, timeout=30)
        # the relay tried and failed: nothing published, nothing lost: 100 deliveries + 200 audit records + 10
        # (each subject's competent municipality and SOM triage established by its first detention-notice)
        assert await unpublished(svc) == 310
        outage.start()
        await eventually(lambda: _none_left(svc), timeout=60)
        records = await consume(outage.bootstrap, svc.settings.events_topic, 100)
        seen_by_subject = defaultdict(list)
        for r in records:
            data = from_kafka(r.value, r.key).get_data()
            if data["messageId"] not in seen_by_subject[data["subjectId"]]:  # consumers deduplicate by id
                seen_by_subject[data["subjectId"]].append(data["messageId"])
            assert r.key.decode() == data["subjectId"]
        assert dict(seen_by_subject) == dict(sent_by_subject)  # every event, in order per subject
    finally:
        stop.set()
        await relay_task
        outage.stop()
        await svc.db.dispose()


async def _none_left(svc) -> bool:
    return await unpublished(svc) == 0


async def test_killing_the_relay_mid_batch_loses_nothing(kclient, korgs, kafka_services, broker):
    chain = Chain(kclient, korgs)
    for i in range(60):
        await chain.send(korgs.vught, "detention-notice", ["municipality:0363"],
                         with_subject(example("detention-notice"), bsn=BSNS[i % len(BSNS)]))
    async with kafka_services.db.read() as s:
        all_ids = set((await s.exec(select(OutboxEvent.event_id))).all())
    assert len(all_ids) == 190  # 60 deliveries, 120 audit records, 5 competent municipalities and 5 triages established
    kafka_services.settings.relay_lease_seconds = 1.0  # the successor takes the killed relay's rows after 1 s
    env = {**os.environ, **settings_env(kafka_services.settings), "BRB_RELAY_BATCH_SIZE": "25"}
    relay = subprocess.Popen([sys.executable, "-m", "gateway.cli", "relay"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await eventually(lambda: _some_published(kafka_services), timeout=30, interval=0.005)
    finally:
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
    left = await unpublished(kafka_services)
    assert 0 < left < 190, "the relay was killed with part of the outbox still unpublished"
    await eventually(lambda: _drained_after_lease(kafka_services), timeout=60, interval=0.2)
    topics = [kafka_services.settings.events_topic, kafka_services.settings.audit_topic]
    records = [r for t in topics for r in await consume(broker, t, 60 if t.endswith("events") else 120)]
    assert {from_kafka(r.value, r.key).get_id() for r in records} == all_ids  # duplicates allowed, no loss


async def _some_published(svc) -> bool:
    return await unpublished(svc) < 190


async def _drained_after_lease(svc) -> bool:
    relay = Relay(svc, name="successor")
    try:
        await relay.publish_once()
    finally:
        await relay._drop_producer()
    return await unpublished(svc) == 0


class Receiver:
    """A webhook receiver on loopback that fails a share of calls and deduplicates by webhook-id."""

    def __init__(self, failure_rate: float, seed: int = 7):
        self.failure_rate, self.random = failure_rate, random.Random(seed)
        self.calls, self.accepted = 0, {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.calls += 1
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        failed = self.random.random() < self.failure_rate
        if not failed:
            self.accepted.setdefault(headers["webhook-id"], (body, headers))
        await send({"type": "http.response.start", "status": 503 if failed else 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def receiver_server():
    servers = []

    async def start(receiver: Receiver) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        servers.append((server, asyncio.create_task(server.serve())))
        while not server.started:
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{port}/hooks/brb"

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


async def subscribe(client, org, url, types=("message.delivered",)) -> dict:
    r = await client.post("/api/v1/subscriptions", headers=org.headers(), json={"callbackUrl": url, "eventTypes": list(types)})
    assert r.status_code == 201, r.text
    return r.json()


@contextlib.asynccontextmanager
async def workers(services):
    """The relay and the webhook dispatcher running, as in a deployment, until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(Relay(services).run(stop)), asyncio.create_task(Dispatcher(services).run(stop))]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def run_workers(services, until, timeout=60):
    async with workers(services):
        await eventually(until, timeout=timeout, interval=0.1)


async def test_a_flaky_receiver_gets_every_event_exactly_once_after_deduplication(kclient, korgs, kafka_services, receiver_server):
    kafka_services.settings.webhook_max_attempts = 15  # 0.5^15: no event runs out of attempts by bad luck
    receiver = Receiver(failure_rate=0.5)
    sub = await subscribe(kclient, korgs.amsterdam, await receiver_server(receiver))
    other = Receiver(failure_rate=0.0)
    await subscribe(kclient, korgs.rotterdam, await receiver_server(other))
    chain = Chain(kclient, korgs)
    sent = [(await chain.send(korgs.vught, "release-notice", ["municipality:0363"], with_subject(example("release-notice"), bsn=b),
                              purpose="aftercare")).json()["id"] for b in BSNS * 4]

    async def all_in():
        return len(receiver.accepted) == len(sent)

    await run_workers(kafka_services, all_in)
    delivered = sorted(json.loads(body)["data"]["messageId"] for body, _h in receiver.accepted.values())
    assert delivered == sorted(sent) and receiver.calls > len(sent)  # retries happened
    assert other.accepted == {}  # Rotterdam is no party to these messages
    for body, headers in receiver.accepted.values():
        assert Webhook(sub["secret"]).verify(body, headers)["type"] == "nl.brb.message.delivered"
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=").verify(body, headers)
    async with kafka_services.db.read() as s:
        states = (await s.exec(select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status))).all()
    assert dict(states) == {"delivered": len(sent)}


async def test_an_always_failing_receiver_ends_in_the_dead_letter_list_and_a_replay_delivers(kclient, korgs, kafka_services, receiver_server):
    await seed_stay(kafka_services)
    receiver = Receiver(failure_rate=1.0)
    await subscribe(kclient, korgs.amsterdam, await receiver_server(receiver))
    mid = (await Chain(kclient, korgs).send(korgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]

    async def dead():
        r = await kclient.get("/api/v1/webhook-dead-letters", headers=korgs.operator.headers())
        return r.json()["items"]

    async def delivered():
        return len(receiver.accepted) == 1

    async with workers(kafka_services):  # the workers keep running while the operator replays
        await eventually(dead, timeout=60, interval=0.1)
        letters = await dead()
        assert len(letters) == 1 and letters[0]["attempts"] == 4 and letters[0]["lastError"] == "HTTP 503"
        assert receiver.calls == 4

        receiver.failure_rate = 0.0
        r = await kclient.post(f"/api/v1/webhook-dead-letters/{letters[0]['id']}/replay", headers=korgs.operator.headers())
        assert r.status_code == 201
        await eventually(delivered, timeout=60, interval=0.1)
    body, _headers = next(iter(receiver.accepted.values()))
    assert json.loads(body)["data"]["messageId"] == mid and await dead() == []
    assert receiver.calls == 5  # four failed attempts, one replayed delivery


async def test_subscriptions_validate_and_belong_to_their_organisation(kclient, korgs):
    r = await kclient.post("/api/v1/subscriptions", headers=korgs.amsterdam.headers(),
                           json={"callbackUrl": "ftp://x", "eventTypes": ["message.exploded"], "secret": "whsec_c2hvcnQ="})
    detail = problem(r, 422, "validation-failed")["detail"]
    assert "/callbackUrl:" in detail and "/eventTypes/0:" in detail and "/secret:" in detail
    sub = await subscribe(kclient, korgs.amsterdam, "https://connector.amsterdam.example/brb")
    assert [s["id"] for s in (await kclient.get("/api/v1/subscriptions", headers=korgs.amsterdam.headers())).json()["items"]] == [sub["id"]]
    assert (await kclient.get("/api/v1/subscriptions", headers=korgs.rotterdam.headers())).json()["items"] == []
    problem(await kclient.delete(f"/api/v1/subscriptions/{sub['id']}", headers=korgs.rotterdam.headers()), 404, "not-found")
    assert (await kclient.delete(f"/api/v1/subscriptions/{sub['id']}", headers=korgs.amsterdam.headers())).status_code == 204


async def test_published_outbox_rows_are_pruned_after_a_week_and_unpublished_ones_never(kclient, korgs, kafka_services):
    from datetime import timedelta

    from gateway.outbox.relay import prune_published

    await Chain(kclient, korgs).send(korgs.vught, "detention-notice", ["municipality:0363"])
    await drain(kafka_services)
    await Chain(kclient, korgs).send(korgs.vught, "detention-notice", ["municipality:0599"],
                                     detention_notice(residence="0599"))  # stays unpublished
    assert await prune_published(kafka_services) == 0
    kafka_services.clock.advance(timedelta(days=8))
    assert await prune_published(kafka_services) == 5  # the delivery; the send, deliver, competence and triage records
    async with kafka_services.db.read() as s:
        # the second notice's delivery, send, deliver and competence records (its stay's triage was established before)
        assert (await s.exec(select(func.count()).select_from(OutboxEvent))).one() == 4 == await unpublished(kafka_services)
