"""The exchange through the HTTP API, on SQLite and PostgreSQL."""
import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, text
from sqlmodel import select

from gateway.db.models import AuditRecord, Delivery, IdempotencyKey, Message, OutboxEvent
from gateway.exchange.retention import purge_due
from tests.scenario import BSN, Chain, example, problem, with_subject


async def count(services, model) -> int:
    async with services.db.read() as s:
        return (await s.exec(select(func.count()).select_from(model))).one()


async def test_round_trip_prison_to_municipality(client, orgs, services, stay):
    chain = Chain(client, orgs)
    receipt = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()
    assert receipt["deliveries"][0]["status"] == "delivered" and receipt["deliveries"][0]["legalBasis"] == "pm-20d-2"
    assert receipt["subjectId"].startswith("sub-") and BSN not in str(receipt)

    inbox = (await client.get("/api/v1/inbox", headers=orgs.amsterdam.headers())).json()["items"]
    assert [m["id"] for m in inbox] == [receipt["id"]]
    assert "payload" not in inbox[0]

    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert view["payload"]["subject"]["bsn"] == BSN and view["readPurpose"] == "aftercare"

    r = await client.post(f"/api/v1/messages/{receipt['id']}/acknowledgements", headers=orgs.amsterdam.headers(),
                          json={"status": "accepted"})
    assert r.status_code == 201 and r.json()["acknowledgement"] == "accepted"

    status = (await client.get(f"/api/v1/messages/{receipt['id']}/deliveries", headers=orgs.vught.headers())).json()
    assert status[0]["status"] == "accepted" and status[0]["firstReadAt"] and status[0]["acknowledgedAt"]
    sent = (await client.get("/api/v1/messages", params={"direction": "sent"}, headers=orgs.vught.headers())).json()
    assert sent["items"][0]["deliveries"][0]["acknowledgement"] == "accepted"


async def test_rejection_needs_a_reason_and_reaches_the_sender(client, orgs):
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "release-notice", ["municipality:0363"], purpose="aftercare")).json()["id"]
    r = await client.post(f"/api/v1/messages/{mid}/acknowledgements", headers=orgs.amsterdam.headers(), json={"status": "rejected"})
    assert "/reason:" in problem(r, 422, "validation-failed")["detail"]
    r = await client.post(f"/api/v1/messages/{mid}/acknowledgements", headers=orgs.amsterdam.headers(),
                          json={"status": "rejected", "reason": "Betrokkene staat niet ingeschreven in Amsterdam"})
    assert r.status_code == 201
    status = (await client.get(f"/api/v1/messages/{mid}/deliveries", headers=orgs.vught.headers())).json()
    assert status[0]["acknowledgementReason"] == "Betrokkene staat niet ingeschreven in Amsterdam"


async def test_same_idempotency_key_and_body_returns_the_first_answer(client, orgs, services, stay):
    chain = Chain(client, orgs)
    first = await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], key="plan-v2-0001")
    again = await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], key="plan-v2-0001")
    assert again.json() == first.json()
    assert await count(services, Message) == 1


async def test_same_idempotency_key_with_another_body_is_a_conflict(client, orgs, services, stay):
    chain = Chain(client, orgs)
    await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], key="plan-v2-0002")
    r = await chain.send(orgs.vught, "dr-plan", ["municipality:0599"], key="plan-v2-0002", expect=409)
    problem(r, 409, "idempotency-conflict")
    assert await count(services, Message) == 1


async def test_concurrent_duplicates_with_the_same_key_store_one_message(client, orgs, services, stay):
    chain = Chain(client, orgs)
    responses = await asyncio.gather(*(chain.send(orgs.vught, "dr-plan", ["municipality:0363"], key="same-key", expect=None)
                                       for _ in range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(services, Message) == 1 and await count(services, Delivery) == 1


async def test_a_fault_after_the_message_insert_leaves_no_trace(client, orgs, services, monkeypatch):
    import gateway.services as services_module

    def broken_outbox(*_args, **_kwargs):
        raise RuntimeError("injected fault: outbox write failed")

    monkeypatch.setattr(services_module, "outbox_values", broken_outbox)
    before = {m: await count(services, m) for m in (Message, Delivery, AuditRecord, OutboxEvent, IdempotencyKey)}
    r = await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"], expect=500)
    problem(r, 500, "internal-error")
    after = {m: await count(services, m) for m in before}
    assert after == before == {Message: 0, Delivery: 0, AuditRecord: 0, OutboxEvent: 0, IdempotencyKey: 0}


async def test_an_organisation_that_is_not_a_party_gets_404_on_every_message_endpoint(client, orgs, stay):
    mid = (await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    outsider = orgs.rotterdam
    calls = [
        client.get(f"/api/v1/messages/{mid}", params={"purpose": "aftercare"}, headers=outsider.headers()),
        client.post(f"/api/v1/messages/{mid}/acknowledgements", json={"status": "received"}, headers=outsider.headers()),
        client.get(f"/api/v1/messages/{mid}/deliveries", headers=outsider.headers()),
    ]
    answers = [problem(r, 404, "not-found") for r in await asyncio.gather(*calls)]
    unknown = await client.get(f"/api/v1/messages/{uuid.uuid4()}", params={"purpose": "aftercare"}, headers=outsider.headers())
    assert problem(unknown, 404, "not-found")["detail"] == answers[0]["detail"]  # not a party: as if there were no such message


async def test_stored_payload_does_not_contain_the_plaintext_bsn(client, orgs, services, stay):
    await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])
    async with services.db.read() as s:
        row = (await s.exec(select(Message.payload_ciphertext, Message.key_id))).one()
        assert BSN.encode() not in row[0] and b"Vries" not in row[0] and row[1] == "k1"
        dump = (await s.exec(text("SELECT * FROM messages"))).all() + (await s.exec(text("SELECT * FROM outbox"))).all() \
            + (await s.exec(text("SELECT * FROM audit_records"))).all() + (await s.exec(text("SELECT * FROM subjects"))).all()
    assert BSN not in repr(dump)


async def test_unknown_recipient_is_422_and_nothing_is_stored(client, orgs, services):
    r = await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363", "municipality:9999"], expect=422)
    assert "/recipients/1:" in problem(r, 422, "unknown-recipient")["detail"]
    assert await count(services, Message) == 0 and await count(services, AuditRecord) == 0


async def test_contract_violation_is_422_with_pointer_and_nothing_is_stored(client, orgs, services):
    bad = with_subject(example("dr-plan"), bsn="999990018")
    r = await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"], bad, expect=422)
    assert problem(r, 422, "validation-failed")["detail"] == \
        "1 invalid field(s): /payload/subject/bsn: BSN fails the 11-test (check digit is wrong)"
    assert await count(services, Message) == 0


async def test_a_municipality_cannot_send_a_dr_plan(client, orgs):
    r = await Chain(client, orgs).send(orgs.amsterdam, "dr-plan", [orgs.vught.oin], expect=403)
    problem(r, 403, "exchange-not-allowed")


async def test_information_request_is_open_until_the_reply_closes_it(client, orgs, stay):
    chain = Chain(client, orgs)
    request_id = (await chain.send(orgs.vught, "information-request", ["municipality:0363", orgs.reclassering.oin])).json()["id"]
    open_for_amsterdam = (await client.get("/api/v1/inbox", params={"open": "true"}, headers=orgs.amsterdam.headers())).json()
    assert [m["id"] for m in open_for_amsterdam["items"]] == [request_id] and open_for_amsterdam["items"][0]["dueDate"] == "2026-11-12"

    reply = with_subject({"inReplyTo": request_id, "answers": [{"questionId": "q1", "text": "Geen woning bekend."}]})
    await chain.send(orgs.amsterdam, "information-response", [orgs.vught.oin], reply)
    assert (await client.get("/api/v1/inbox", params={"open": "true"}, headers=orgs.amsterdam.headers())).json()["items"] == []
    sent = (await client.get("/api/v1/messages", params={"open": "true"}, headers=orgs.vught.headers())).json()["items"]
    assert [m["id"] for m in sent] == [request_id]  # probation has not answered yet
    answered = {d["recipientOin"]: d["repliedAt"] for d in sent[0]["deliveries"]}
    assert answered[orgs.amsterdam.oin] and answered[orgs.reclassering.oin] is None

    stray = with_subject({"inReplyTo": str(uuid.uuid4()), "answers": [{"questionId": "q1", "text": "x"}]})
    r = await chain.send(orgs.rotterdam, "information-response", [orgs.vught.oin], stray, expect=422)
    assert "/payload/inReplyTo:" in problem(r, 422, "validation-failed")["detail"]


async def test_inbox_pages_with_a_cursor_and_filters(client, orgs):
    chain = Chain(client, orgs)
    ids = [(await chain.send(orgs.vught, "detention-notice", ["municipality:0363"], with_subject(example("detention-notice"), bsn=b)))
           .json()["id"] for b in ("999990019", "111222333", "123456782")]
    await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])
    seen, cursor = [], None
    while True:
        params = {"pageSize": 2, "type": "detention-notice", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/inbox", params=params, headers=orgs.amsterdam.headers())).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    assert seen == ids
    subject = (await client.get("/api/v1/inbox", params={"type": "dr-plan"}, headers=orgs.amsterdam.headers())).json()["items"][0]["subjectId"]
    by_subject = (await client.get("/api/v1/inbox", params={"subjectId": subject}, headers=orgs.amsterdam.headers())).json()["items"]
    assert len(by_subject) == 2
    r = await client.get("/api/v1/inbox", params={"pageSize": 10_000}, headers=orgs.amsterdam.headers())
    assert "query:pageSize" in problem(r, 422, "validation-failed")["detail"]  # the declared maximum


async def test_municipal_copy_is_gone_six_months_after_release_while_the_prison_keeps_its_own(client, orgs, services, stay):
    chain = Chain(client, orgs)
    plan_id = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    notice = example("release-notice")  # expected release 2027-02-15
    await chain.send(orgs.vught, "release-notice", ["municipality:0363"], notice, purpose="aftercare")

    # the day before: still there
    release = services.clock.now().replace(year=2027, month=2, day=15, hour=0, minute=0, second=0, microsecond=0)
    services.clock.advance(release + timedelta(days=182) - services.clock.now())
    await purge_due(services)
    await chain.read(orgs.amsterdam, plan_id, "aftercare", expect=200)

    services.clock.advance(timedelta(days=2))
    assert await purge_due(services) >= 2
    r = await chain.read(orgs.amsterdam, plan_id, "aftercare", expect=410)
    problem(r, 410, "gone")
    own = (await chain.read(orgs.vught, plan_id)).json()
    assert own["payload"]["sections"]["housing"]
    async with services.db.read() as s:
        purged = (await s.exec(select(OutboxEvent).where(OutboxEvent.type == "retention.purged"))).all()
        audit = (await s.exec(select(AuditRecord).where(AuditRecord.activity == "purge"))).all()
    assert {e.data["messageId"] for e in purged} >= {plan_id} and all("bsn" not in str(e.data) for e in purged)
    assert any(a.message_id == plan_id and a.counterparty_oin == orgs.amsterdam.oin for a in audit)

    # ten years on, the prison's own copy follows its own retention and the ciphertext is destroyed
    services.clock.advance(timedelta(days=3660))
    await purge_due(services)
    problem(await chain.read(orgs.vught, plan_id, expect=410), 410, "gone")
    async with services.db.read() as s:
        sealed = (await s.exec(select(Message.payload_ciphertext, Message.salts_ciphertext).where(Message.id == plan_id))).one()
    assert tuple(sealed) == (None, None)  # the payload and its salts alike


async def test_a_body_over_the_limit_is_413_problem(client, orgs):
    big = "x" * (client._transport.app.state.services.settings.max_body_bytes + 10)
    r = await client.post("/api/v1/messages", content=big, headers=orgs.vught.headers(**{"Idempotency-Key": "k", "Content-Type": "application/json"}))
    problem(r, 413, "payload-too-large")


async def test_missing_idempotency_key_is_a_clear_error(client, orgs):
    body = {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"], "payload": example("dr-plan")}
    r = await client.post("/api/v1/messages", json=body, headers=orgs.vught.headers())
    assert "header:Idempotency-Key" in problem(r, 422, "validation-failed")["detail"]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_rate_limit_answers_429_with_retry_after(database):
    import httpx

    from gateway.app import create_app
    from gateway.services import Services
    from tests.conftest import register_demo_organisations, settings_for

    svc = Services.from_settings(settings_for(database, rate_limit_per_minute=3))
    try:
        orgs = await register_demo_organisations(svc)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=svc)), base_url="http://g") as c:
            codes = [(await c.get("/api/v1/inbox", headers=orgs.amsterdam.headers())).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            r = await c.get("/api/v1/inbox", headers=orgs.amsterdam.headers())
            problem(r, 429, "rate-limited")
            assert int(r.headers["retry-after"]) >= 1
            assert (await c.get("/api/v1/inbox", headers=orgs.rotterdam.headers())).status_code == 200
    finally:
        await svc.db.dispose()


async def test_key_rotation_keeps_old_payloads_readable_and_rewrap_moves_them_to_the_new_key(client, orgs, services, stay):
    import base64

    from gateway.crypto import KeyRing
    from gateway.keyrotation import rewrap_all

    chain = Chain(client, orgs)
    old = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    k1 = services.settings.encryption_keys.get_secret_value()
    k2 = "k2:" + base64.b64encode(b"\x02" * 32).decode()
    services.keyring = KeyRing.parse(f"{k1},{k2}")  # rotation: the newest key encrypts from now on
    new = (await chain.send(orgs.vught, "dr-plan", ["municipality:0599"])).json()["id"]
    async with services.db.read() as s:
        key_ids = dict((await s.exec(select(Message.id, Message.key_id))).all())
    assert key_ids == {old: "k1", new: "k2"}
    assert (await chain.read(orgs.amsterdam, old, "aftercare")).status_code == 200

    assert await rewrap_all(services) == 2  # the old message's data keys: its payload's and its salts'
    services.keyring = KeyRing.parse(k2)  # the old key can now be retired
    for org, mid in ((orgs.amsterdam, old), (orgs.rotterdam, new)):
        assert (await chain.read(org, mid, "aftercare")).json()["payload"]["subject"]["bsn"] == BSN


async def test_no_bsn_in_any_log_line(client, orgs, caplog, stay):
    import logging

    caplog.set_level(logging.DEBUG)
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    await chain.read(orgs.amsterdam, mid, "aftercare")
    problem(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], with_subject(example("dr-plan"), bsn="999990018"),
                             expect=422), 422, "validation-failed")
    problem(await chain.send(orgs.vught, "risk-information", ["municipality:0363"], purpose="aftercare", expect=403),
            403, "exchange-not-allowed")
    await client.post("/api/v1/audit/subject-report", json={"bsn": BSN}, headers=orgs.inspectorate.headers())
    assert caplog.records, "the gateway logged nothing to check"
    assert all(BSN not in r.getMessage() and "999990018" not in r.getMessage() for r in caplog.records)


async def test_expired_jtis_are_forgotten_but_live_ones_kept(client, orgs, services):
    from datetime import timedelta

    from gateway.auth.tokens import prune_used_tokens

    await client.get("/api/v1/inbox", headers=orgs.amsterdam.headers())
    assert await prune_used_tokens(services) == 0
    services.clock.advance(timedelta(hours=1))
    assert await prune_used_tokens(services) == 1
