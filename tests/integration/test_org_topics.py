"""Per-organisation topics through the real broker: every event of the events stream also goes to
``<prefix>.org.<oin>`` for each of its parties and nowhere else; the municipal connector reads its own;
the relay's backlog gauges; a row that can never be published is set aside and the rest goes on."""
import asyncio
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY
from sqlmodel import select

from adapters.municipal.consumer import Config, Connector, parse_event
from gateway.db.models import OutboxEvent
from gateway.outbox.cloudevent import from_kafka
from gateway.outbox.events import Event, outbox_row
from gateway.outbox.relay import Relay, org_topic
from gateway.services import Services
from tests.conftest import eventually, settings_for
from tests.integration.test_events import consume, drain, unpublished
from tests.scenario import Chain, detention_notice, seed_stay

pytestmark = pytest.mark.broker


@pytest.fixture
async def ksvc(database, broker):
    svc = Services.from_settings(settings_for(database, kafka_bootstrap_servers=broker, broker_backoff_max_seconds=1.0))
    yield svc
    await svc.db.dispose()


@pytest.fixture
async def kclient(ksvc, orgs):
    import httpx

    from gateway.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=ksvc), raise_app_exceptions=False),
                                 base_url="http://gateway") as c:
        yield c


def topic_of(svc, org) -> str:
    return org_topic(svc.settings.kafka_topic_prefix, org.oin)


def ids_and_parties(records) -> dict[str, list[str]]:
    events = [from_kafka(r.value, r.key, r.headers) for r in records]
    return {e.get_id(): e.get_data()["parties"] for e in events}


async def test_an_event_goes_to_the_topic_of_each_party_and_to_no_other(kclient, orgs, ksvc, broker):
    await seed_stay(ksvc)
    chain = Chain(kclient, orgs)
    to_amsterdam = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()
    to_rotterdam = (await chain.send(orgs.vught, "detention-notice", ["municipality:0599"], detention_notice(residence="0599"))).json()
    await drain(ksvc)
    shared = ids_and_parties(await consume(broker, ksvc.settings.events_topic, 2))
    assert len(shared) == 2
    about = {parties: eid for eid, parties in ((e, tuple(p)) for e, p in shared.items())}
    amsterdam_event = about[tuple(sorted([orgs.vught.oin, orgs.amsterdam.oin]))]
    rotterdam_event = about[tuple(sorted([orgs.vught.oin, orgs.rotterdam.oin]))]

    amsterdam = ids_and_parties(await consume(broker, topic_of(ksvc, orgs.amsterdam), 1))
    vught = ids_and_parties(await consume(broker, topic_of(ksvc, orgs.vught), 2))
    rotterdam = ids_and_parties(await consume(broker, topic_of(ksvc, orgs.rotterdam), 1))
    assert set(amsterdam) == {amsterdam_event}
    assert set(rotterdam) == {rotterdam_event}  # Rotterdam's topic exists and holds only its own event
    assert set(vught) == {amsterdam_event, rotterdam_event}  # the sender is a party of both
    records = await consume(broker, topic_of(ksvc, orgs.amsterdam), 1)
    data = from_kafka(records[0].value, records[0].key, records[0].headers).get_data()
    assert data["messageId"] == to_amsterdam["id"] and records[0].key.decode() == to_amsterdam["subjectId"]
    assert to_rotterdam["id"] not in {from_kafka(r.value, r.key).get_data()["messageId"] for r in records}
    async with ksvc.db.read() as s:  # the audit stream has no organisation copies
        assert (await s.exec(select(OutboxEvent).where(OutboxEvent.published_at.is_(None)))).all() == []


async def group_records(consumer: AIOKafkaConsumer, expected: int, timeout: float = 30.0) -> list:
    """Records the connector's own consumer (its group) gets, until ``expected`` came and a last poll is
    empty (bounded by ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline, records = loop.time() + timeout, []
    while loop.time() < deadline:
        batch = [r for rs in (await consumer.getmany(timeout_ms=1000)).values() for r in rs]
        records.extend(batch)
        if len(records) >= expected and not batch:
            break
    return records


async def test_the_municipal_connector_reads_its_own_topic_and_never_another_organisations_event(kclient, orgs, ksvc, broker):
    await seed_stay(ksvc)
    chain = Chain(kclient, orgs)
    for _ in range(2):
        await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])
    for _ in range(2):  # the subject's competent municipality becomes Rotterdam
        await chain.send(orgs.vught, "detention-notice", ["municipality:0599"], detention_notice(residence="0599"))
    await drain(ksvc)
    shared = ids_and_parties(await consume(broker, ksvc.settings.events_topic, 4))
    ours = {eid for eid, parties in shared.items() if orgs.amsterdam.oin in parties}
    assert len(ours) == 2 and len(shared) > len(ours)

    config = Config(oin=orgs.amsterdam.oin, bootstrap=broker, topic_prefix=ksvc.settings.kafka_topic_prefix,
                    group_id=f"municipal-{orgs.amsterdam.oin}-{ksvc.settings.kafka_topic_prefix}")
    assert config.topic == topic_of(ksvc, orgs.amsterdam)  # the default: its own topic
    assert Config(oin=orgs.amsterdam.oin, bootstrap=broker, topic_override="x.events").topic == "x.events"
    consumer = Connector(config, gateway=None, store=None).consumer()
    await consumer.start()
    try:
        records = await group_records(consumer, len(ours))
    finally:
        await consumer.stop()
    seen = [parse_event(r.value) for r in records]
    assert {e["id"] for e in seen} == ours
    assert all(orgs.amsterdam.oin in e["data"]["parties"] for e in seen)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_backlog_gauges_follow_the_pending_rows_and_the_running_relay_updates_them(kclient, orgs, ksvc):
    await Chain(kclient, orgs).send(orgs.vught, "detention-notice", ["municipality:0363"])
    pending = await unpublished(ksvc)
    assert pending == 5  # the delivery, and the send, deliver, competence and triage audit records
    relay = Relay(ksvc)
    await relay.measure()
    assert sample("brb_outbox_backlog") == pending
    ksvc.clock.advance(timedelta(hours=1))
    await relay.measure()
    assert 3600 <= sample("brb_outbox_oldest_pending_age_seconds") < 3600 + 600

    stop = asyncio.Event()
    task = asyncio.create_task(Relay(ksvc).run(stop))
    try:
        async def gauges_at_zero():
            return sample("brb_outbox_backlog") == 0 and sample("brb_outbox_oldest_pending_age_seconds") == 0
        await eventually(gauges_at_zero, timeout=60)
    finally:
        stop.set()
        await task
    assert await unpublished(ksvc) == 0


async def add_rows(svc, *events: Event) -> list[str]:
    async with svc.db.write() as s:
        rows = [outbox_row(e, svc.clock.now(), svc.topics) for e in events]
        s.add_all(rows)
    return [r.event_id for r in rows]


async def test_a_row_that_cannot_be_published_is_set_aside_and_later_rows_still_go_out(kclient, orgs, ksvc, broker):
    await seed_stay(ksvc)
    chain = Chain(kclient, orgs)
    subject = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["subjectId"]
    await drain(ksvc)
    parties = sorted([orgs.vught.oin, orgs.amsterdam.oin])
    too_large, no_oin = await add_rows(
        ksvc,
        Event("message.read", subject, {"messageId": "m-huge", "subjectId": subject, "notes": "x" * 1_200_000, "parties": parties}),
        Event("message.read", subject, {"messageId": "m-bad", "subjectId": subject, "parties": ["not/an-oin"]}),
    )
    failures_before = {r: sample("brb_worker_item_failures_total", worker="relay", reason=r) for r in ("too-large", "invalid-party")}
    later = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()  # same subject, after the poison rows
    assert later["subjectId"] == subject
    await drain(ksvc)

    async with ksvc.db.read() as s:
        left = {r.event_id: r for r in (await s.exec(select(OutboxEvent).where(OutboxEvent.published_at.is_(None)))).all()}
    assert set(left) == {too_large, no_oin}
    assert left[too_large].claimed_by == "set-aside:too-large" and left[no_oin].claimed_by == "set-aside:invalid-party"
    for reason in ("too-large", "invalid-party"):
        assert sample("brb_worker_item_failures_total", worker="relay", reason=reason) == failures_before[reason] + 1
    amsterdam = [from_kafka(r.value, r.key).get_data() for r in await consume(broker, topic_of(ksvc, orgs.amsterdam), 2)]
    assert [d["messageId"] for d in amsterdam if d.get("messageId") == later["id"]] == [later["id"]]
    assert not {"m-huge", "m-bad"} & {d["messageId"] for d in amsterdam}

    another = Relay(ksvc, name="another")  # nobody claims a set-aside row again, and the backlog leaves it out
    try:
        assert await another.publish_once() == 0
    finally:
        await another._drop_producer()
    await another.measure()
    assert sample("brb_outbox_backlog") == 0
