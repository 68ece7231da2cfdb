"""Subscriptions a subscriber runs itself (issue 15): a message-type filter, its own deliveries and dead
letters with a replay, a ping that sends a signed test event, the User-Agent on every call, and failed
attempts and dead letters in the log. Callbacks go to a receiver served on loopback; deliveries are
queued with the dispatcher's own ``enqueue`` (the broker path is in the last test)."""
import json
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select
from standardwebhooks import Webhook, WebhookVerificationError

from gateway import API_VERSION
from gateway.broker import free_port
from gateway.db.models import Subscription, WebhookDelivery
from gateway.webhooks.dispatcher import Dispatcher, enqueue
from tests.integration import test_events as events
from tests.scenario import Chain, problem, read_body

receiver_server = events.receiver_server
kafka_services, kclient, korgs = events.kafka_services, events.kclient, events.korgs
USER_AGENT = f"Berichtenbox-Reintegratie-Webhooks/{API_VERSION}"
MARKER = "payload-marker-7f3a"  # stands for event data: it may reach the callback, never a log line


class Recorder:
    """A callback that answers ``status`` and keeps every request it got (headers and body)."""

    def __init__(self, status: int = 204):
        self.status, self.requests = status, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.requests.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def subscribe(client, org, url, event_types=("message.delivered",), message_types=None, expect=201) -> dict:
    body = {"callbackUrl": url, "eventTypes": list(event_types)}
    if message_types is not None:
        body["messageTypes"] = message_types
    r = await client.post("/api/v1/subscriptions", headers=org.headers(), json=body)
    assert r.status_code == expect, r.text
    return r.json()


def event_body(event_id: str, message_type: str | None = "dr-plan") -> str:
    data = {"parties": [], "note": MARKER} | ({"messageType": message_type} if message_type else {})
    return json.dumps({"id": event_id, "type": "nl.brb.message.delivered", "data": data})


async def queue(services, oin: str, event_type: str = "message.delivered", message_type: str | None = "dr-plan") -> tuple[str, int]:
    event_id = str(uuid.uuid4())
    return event_id, await enqueue(services, event_id, event_type, [oin], event_body(event_id, message_type), message_type)


async def deliveries(client, org, sub_id: str, **params):
    return await client.get(f"/api/v1/subscriptions/{sub_id}/deliveries", headers=org.headers(), params=params)


# -- the message-type filter -------------------------------------------------------------------------

async def test_a_message_type_filter_is_validated_and_shown(client, orgs):
    r = await client.post("/api/v1/subscriptions", headers=orgs.amsterdam.headers(), json={
        "callbackUrl": "https://connector.amsterdam.example/brb", "eventTypes": ["message.delivered"],
        "messageTypes": ["dr-plan", "nazorg-plan"]})
    detail = problem(r, 422, "validation-failed")["detail"]
    assert detail.startswith("1 invalid field(s): /messageTypes/1: unknown message type 'nazorg-plan' (one of ")
    assert "detention-notice" in detail and "dr-plan" in detail
    r = await client.post("/api/v1/subscriptions", headers=orgs.amsterdam.headers(), json={
        "callbackUrl": "https://connector.amsterdam.example/brb", "eventTypes": ["message.delivered"], "messageTypes": []})
    assert "/messageTypes" in problem(r, 422, "validation-failed")["detail"]

    filtered = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/brb",
                               message_types=["release-notice", "dr-plan", "dr-plan"])
    assert filtered["messageTypes"] == ["dr-plan", "release-notice"]
    unfiltered = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/all")
    assert unfiltered["messageTypes"] is None
    listed = (await client.get("/api/v1/subscriptions", headers=orgs.amsterdam.headers())).json()["items"]
    assert {s["id"]: s["messageTypes"] for s in listed} == {filtered["id"]: ["dr-plan", "release-notice"], unfiltered["id"]: None}


async def test_the_filter_passes_its_message_types_and_events_about_no_message(client, orgs, services):
    filtered = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/brb",
                               event_types=["message.delivered", "consent.withdrawn"], message_types=["dr-plan"])
    unfiltered = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/all",
                                 event_types=["message.delivered", "consent.withdrawn"])
    assert (await queue(services, orgs.amsterdam.oin, message_type="dr-plan"))[1] == 2
    assert (await queue(services, orgs.amsterdam.oin, message_type="detention-notice"))[1] == 1
    assert (await queue(services, orgs.amsterdam.oin, "consent.withdrawn", message_type=None))[1] == 2
    async with services.db.read() as session:
        rows = (await session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
    by_sub = {s: [(r.event_type, json.loads(r.body)["data"].get("messageType")) for r in rows if r.subscription_id == s]
              for s in (filtered["id"], unfiltered["id"])}
    assert by_sub[filtered["id"]] == [("message.delivered", "dr-plan"), ("consent.withdrawn", None)]
    assert by_sub[unfiltered["id"]] == [("message.delivered", "dr-plan"), ("message.delivered", "detention-notice"),
                                        ("consent.withdrawn", None)]


# -- own deliveries, dead letters, replay, logs ------------------------------------------------------

async def test_a_subscriber_sees_its_failures_and_dead_letters_in_the_log_and_replays_its_own(
        client, orgs, services, receiver_server, log_lines):
    services.settings.webhook_max_attempts = 2
    callback = Recorder(status=503)
    sub = await subscribe(client, orgs.amsterdam, await receiver_server(callback))
    event_id, _n = await queue(services, orgs.amsterdam.oin)
    dispatcher = Dispatcher(services)
    try:
        assert await dispatcher.send_due() == 1
        page = (await deliveries(client, orgs.amsterdam, sub["id"])).json()
        [item] = page["items"]
        assert item["eventId"] == event_id and item["eventType"] == "message.delivered"
        assert item["status"] == "pending" and item["attempts"] == 1 and item["lastError"] == "HTTP 503"
        assert item["nextAttemptAt"] is not None and "body" not in item and MARKER not in json.dumps(page)

        services.clock.advance(timedelta(minutes=10))  # past the backoff; back before the next token is checked
        try:
            assert await dispatcher.send_due() == 1
        finally:
            services.clock.advance(timedelta(minutes=-10))
    finally:
        await dispatcher.client.aclose()
    assert len(callback.requests) == 2 and all(h["user-agent"] == USER_AGENT for h, _b in callback.requests)

    failed = log_lines.events("webhook.attempt-failed")
    assert [(f["attempt"], f["final"], f["error"]) for f in failed] == [(1, False, "HTTP 503"), (2, True, "HTTP 503")]
    [dead_line] = log_lines.events("webhook.dead-lettered")
    for line in [*failed, dead_line]:
        assert line["subscription_id"] == sub["id"] and line["event_id"] == event_id
        assert line["subscriber_oin"] == orgs.amsterdam.oin and line["event_type"] == "message.delivered"
    assert dead_line["level"] == "error" and dead_line["attempts"] == 2 and dead_line["error"] == "HTTP 503"
    assert "retry_in_seconds" in failed[0] and "retry_in_seconds" not in failed[1]
    assert not any(MARKER in raw for raw in log_lines.raw)

    [dead] = (await deliveries(client, orgs.amsterdam, sub["id"], status="dead")).json()["items"]
    assert dead["attempts"] == 2 and dead["lastError"] == "HTTP 503" and dead["nextAttemptAt"] is None
    assert (await deliveries(client, orgs.amsterdam, sub["id"], status="pending")).json()["items"] == []
    operator = (await client.get("/api/v1/webhook-dead-letters", headers=orgs.operator.headers())).json()["items"]
    assert [d["id"] for d in operator] == [dead["id"]]  # the operator's list stays

    replay = f"/api/v1/subscriptions/{sub['id']}/deliveries/{dead['id']}/replay"
    problem(await client.post(replay, headers=orgs.rotterdam.headers()), 404, "not-found")
    r = await client.post(replay, headers=orgs.amsterdam.headers())
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending" and r.json()["attempts"] == 0 and r.json()["lastError"] is None
    problem(await client.post(replay, headers=orgs.amsterdam.headers()), 409, "conflict")  # pending: not dead

    callback.status = 204
    dispatcher = Dispatcher(services)
    try:
        assert await dispatcher.send_due() == 1
    finally:
        await dispatcher.client.aclose()
    [done] = (await deliveries(client, orgs.amsterdam, sub["id"], status="delivered")).json()["items"]
    assert done["id"] == dead["id"] and done["attempts"] == 1 and done["deliveredAt"] is not None
    assert len(callback.requests) == 3 and len(log_lines.events("webhook.dead-lettered")) == 1
    [replayed] = log_lines.events("webhook.replayed")
    assert replayed["subscription_id"] == sub["id"] and replayed["event_id"] == event_id


async def test_another_organisations_subscription_and_its_deliveries_are_not_found(client, orgs, services):
    sub = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/brb")
    other = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/other")
    await queue(services, orgs.amsterdam.oin)
    async with services.db.read() as session:
        theirs = (await session.exec(select(WebhookDelivery).where(WebhookDelivery.subscription_id == other["id"]))).one()
    problem(await deliveries(client, orgs.rotterdam, sub["id"]), 404, "not-found")
    for path in (f"/subscriptions/{sub['id']}/ping", f"/subscriptions/{sub['id']}/deliveries/{theirs.id}/replay"):
        problem(await client.post("/api/v1" + path, headers=orgs.rotterdam.headers()), 404, "not-found")
    # a delivery of the organisation's other subscription is not one of this subscription's
    problem(await client.post(f"/api/v1/subscriptions/{sub['id']}/deliveries/{theirs.id}/replay",
                              headers=orgs.amsterdam.headers()), 404, "not-found")
    problem(await client.get(f"/api/v1/subscriptions/{uuid.uuid4()}/deliveries", headers=orgs.amsterdam.headers()),
            404, "not-found")
    assert (await client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=orgs.amsterdam.headers())).status_code == 204
    problem(await deliveries(client, orgs.amsterdam, sub["id"]), 404, "not-found")  # deleted
    r = await deliveries(client, orgs.amsterdam, other["id"], status="lost")
    assert problem(r, 422, "validation-failed")["detail"] == \
        "1 invalid field(s): query:status: Input should be 'pending', 'delivered', 'dead' or 'cancelled'"


async def test_own_deliveries_are_paged_with_a_cursor(client, orgs, services):
    sub = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/brb")
    ids = [(await queue(services, orgs.amsterdam.oin))[0] for _ in range(3)]
    first = (await deliveries(client, orgs.amsterdam, sub["id"], pageSize=2)).json()
    assert [i["eventId"] for i in first["items"]] == ids[:2] and first["hasMore"] is True
    second = (await deliveries(client, orgs.amsterdam, sub["id"], pageSize=2, cursor=first["nextCursor"])).json()
    assert [i["eventId"] for i in second["items"]] == ids[2:] and second["hasMore"] is False
    later = await queue(services, orgs.amsterdam.oin)
    resumed = (await deliveries(client, orgs.amsterdam, sub["id"], cursor=second["nextCursor"])).json()
    assert [i["eventId"] for i in resumed["items"]] == [later[0]]
    r = await client.get(f"/api/v1/inbox?cursor={first['nextCursor']}", headers=orgs.amsterdam.headers())
    assert problem(r, 400, "invalid-request")  # a cursor of this list is no inbox cursor


async def test_deleting_a_subscription_cancels_what_had_not_gone_out(client, orgs, services):
    sub = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/brb")
    other = await subscribe(client, orgs.amsterdam, "https://connector.amsterdam.example/other")
    await queue(services, orgs.amsterdam.oin)  # one pending delivery for each subscription
    r = await client.delete(f"/api/v1/subscriptions/{sub['id']}", headers=orgs.amsterdam.headers())
    assert r.status_code == 204
    async with services.db.read() as session:
        states = dict((await session.exec(select(WebhookDelivery.subscription_id, WebhookDelivery.status))).all())
    assert states == {sub["id"]: "cancelled", other["id"]: "pending"}  # the other subscription still gets it


# -- ping ----------------------------------------------------------------------------------------------

async def test_a_ping_sends_a_signed_test_event_and_answers_what_came_back(client, orgs, services, receiver_server, log_lines):
    callback = Recorder(status=204)
    sub = await subscribe(client, orgs.amsterdam, await receiver_server(callback))
    r = await client.post(f"/api/v1/subscriptions/{sub['id']}/ping", headers=orgs.amsterdam.headers())
    assert r.status_code == 201, r.text
    outcome = r.json()
    assert outcome["delivered"] is True and outcome["statusCode"] == 204 and outcome["error"] is None
    assert outcome["eventType"] == "nl.brb.webhook.ping"
    [(headers, body)] = callback.requests
    assert headers["user-agent"] == USER_AGENT and headers["webhook-id"] == outcome["eventId"]
    assert headers["content-type"] == "application/cloudevents+json"
    event = Webhook(sub["secret"]).verify(body, headers)  # the subscriber's own signature check passes
    assert event["id"] == outcome["eventId"] and event["type"] == "nl.brb.webhook.ping"
    assert event["source"] == "urn:nl:brb:gateway" and event["specversion"] == "1.0"
    assert event["data"] == {"subscriptionId": sub["id"], "parties": [orgs.amsterdam.oin]}
    [line] = log_lines.events("webhook.pinged")
    assert line["subscription_id"] == sub["id"] and line["event_id"] == outcome["eventId"] and line["status_code"] == 204

    callback.status = 500
    outcome = (await client.post(f"/api/v1/subscriptions/{sub['id']}/ping", headers=orgs.amsterdam.headers())).json()
    assert (outcome["delivered"], outcome["statusCode"], outcome["error"]) == (False, 500, "HTTP 500")
    async with services.db.read() as session:
        assert (await session.exec(select(WebhookDelivery))).all() == []  # a ping is no delivery: nothing queued


async def test_a_rotated_secret_signs_beside_the_old_one_until_the_overlap_ends(client, orgs, services, receiver_server, log_lines):
    """A subscriber switches its verification without missing a call: during the overlap each call carries
    a signature by the old and by the new secret; after it, only the new one verifies."""
    callback = Recorder(status=204)
    sub = await subscribe(client, orgs.amsterdam, await receiver_server(callback))
    old = sub["secret"]
    r = await client.post(f"/api/v1/subscriptions/{sub['id']}/secret-rotation", json={"overlapHours": 2},
                          headers=orgs.amsterdam.headers())
    assert r.status_code == 201, r.text
    rotated = r.json()
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old and rotated["previousSecretValidUntil"]
    [listed] = (await client.get("/api/v1/subscriptions", headers=orgs.amsterdam.headers())).json()["items"]
    assert listed["secret"] is None and listed["previousSecretValidUntil"] == rotated["previousSecretValidUntil"]  # shown once
    [line] = log_lines.events("webhook.secret-rotated")
    assert line["subscription_id"] == sub["id"] and new not in json.dumps(line) and old not in json.dumps(line)

    await client.post(f"/api/v1/subscriptions/{sub['id']}/ping", headers=orgs.amsterdam.headers())
    async with services.db.write() as session:  # the overlap is over (its end moved, not the clock: the
        row = await session.get(Subscription, sub["id"])  # receiver checks the signature's time against its own)
        row.previous_secret_until = services.clock.now() - timedelta(seconds=1)
        session.add(row)
    await client.post(f"/api/v1/subscriptions/{sub['id']}/ping", headers=orgs.amsterdam.headers())
    (during, during_body), (after, after_body) = callback.requests
    assert len(during["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(during_body, during) and Webhook(new).verify(during_body, during)
    assert len(after["webhook-signature"].split(" ")) == 1 and Webhook(new).verify(after_body, after)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after_body, after)

    r = await client.post(f"/api/v1/subscriptions/{sub['id']}/secret-rotation", json={"secret": "whsec_c2hvcnQ=", "overlapHours": 0},
                          headers=orgs.amsterdam.headers())
    assert problem(r, 422, "validation-failed")["detail"].startswith("1 invalid field(s): /secret:")
    other = await client.post(f"/api/v1/subscriptions/{sub['id']}/secret-rotation", json={}, headers=orgs.rotterdam.headers())
    problem(other, 404, "not-found")  # another organisation's subscription


async def test_a_ping_to_a_closed_port_or_a_private_target_says_why(client, orgs, services):
    closed = await subscribe(client, orgs.amsterdam, f"http://127.0.0.1:{free_port()}/hooks")
    outcome = (await client.post(f"/api/v1/subscriptions/{closed['id']}/ping", headers=orgs.amsterdam.headers())).json()
    assert outcome["delivered"] is False and outcome["statusCode"] is None and outcome["error"].startswith("ConnectError")

    services.settings.allow_insecure_loopback_webhooks = False  # the name now resolves to loopback (DNS rebinding)
    try:
        outcome = (await client.post(f"/api/v1/subscriptions/{closed['id']}/ping", headers=orgs.amsterdam.headers())).json()
    finally:
        services.settings.allow_insecure_loopback_webhooks = True
    assert outcome == {"eventId": outcome["eventId"], "eventType": "nl.brb.webhook.ping", "delivered": False,
                       "statusCode": None, "error": "target resolves to a private address (127.0.0.1)"}


# -- through the broker: the dispatcher reads the message type from the event --------------------------

@pytest.mark.broker
async def test_through_the_broker_a_filtered_subscription_gets_only_its_message_types(
        kclient, korgs, kafka_services, receiver_server):
    types = ["message.delivered", "consent.recorded"]
    filtered, unfiltered = Recorder(), Recorder()
    sub = await subscribe(kclient, korgs.amsterdam, await receiver_server(filtered), types, message_types=["dr-plan"])
    await subscribe(kclient, korgs.amsterdam, await receiver_server(unfiltered), types)
    chain = Chain(kclient, korgs)
    await chain.admit(korgs.vught, ("municipality:0363",))  # detention-notice: filtered out
    await chain.send(korgs.vught, "dr-plan", ["municipality:0363"])
    await chain.consent(korgs.vught, categories=["children-family"], recipient_oins=[korgs.amsterdam.oin])

    async def all_in():
        return len(unfiltered.requests) == 3 and len(filtered.requests) == 2

    await events.run_workers(kafka_services, all_in)

    def seen(recorder):  # due deliveries are sent side by side: their order is not the events' order
        return sorted((e["type"], e["data"].get("messageType") or "") for e in (json.loads(b) for _h, b in recorder.requests))

    assert seen(filtered) == [("nl.brb.consent.recorded", ""), ("nl.brb.message.delivered", "dr-plan")]
    assert seen(unfiltered) == [("nl.brb.consent.recorded", ""), ("nl.brb.message.delivered", "detention-notice"),
                                ("nl.brb.message.delivered", "dr-plan")]
    assert all(h["user-agent"] == USER_AGENT for h, _b in filtered.requests + unfiltered.requests)
    # same subject, same partition: the detention-notice was taken (and passed over) before the dr-plan
    async with kafka_services.db.read() as session:
        rows = (await session.exec(select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub["id"]))).all()
    assert sorted(r.event_type for r in rows) == ["consent.recorded", "message.delivered"]
