"""The replay guard where a token's jti is recorded inside the request's own transaction (send, read,
acknowledge: issue 17). The guarantee is the one of DESIGN §4 — a jti is accepted once, across requests and
processes — now without a write transaction of its own; a request that fails before its transaction still
spends the jti. On SQLite and PostgreSQL."""
import asyncio
import uuid

from sqlalchemy import func
from sqlmodel import select

from gateway.db.models import AuditRecord, Message, UsedToken
from tests.scenario import Chain, example, problem


async def count(services, model, *where) -> int:
    async with services.db.read() as s:
        return (await s.exec(select(func.count()).select_from(model).where(*where))).one()


def send_body(message_type: str = "dr-plan") -> dict:
    return {"type": message_type, "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
            "payload": example(message_type)}


async def test_a_send_token_is_spent_with_the_message_and_refused_the_second_time(client, orgs, services, stay):
    headers = orgs.vught.headers()
    first = await client.post("/api/v1/messages", json=send_body(), headers={**headers, "Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    again = await client.post("/api/v1/messages", json=send_body(), headers={**headers, "Idempotency-Key": "k-2"})
    problem(again, 401, "token-replayed")
    assert await count(services, Message) == 1
    assert await count(services, UsedToken, UsedToken.iss == orgs.vught.oin) == 1


async def test_a_token_whose_send_was_refused_before_its_transaction_is_spent_too(client, orgs, services, stay):
    headers = orgs.vught.headers()
    bad = send_body()
    bad["payload"] = {**bad["payload"], "subject": {"bsn": "not-a-bsn"}}
    refused = await client.post("/api/v1/messages", json=bad, headers={**headers, "Idempotency-Key": "k-1"})
    assert refused.status_code == 422, refused.text
    retried = await client.post("/api/v1/messages", json=send_body(), headers={**headers, "Idempotency-Key": "k-2"})
    problem(retried, 401, "token-replayed")
    assert await count(services, Message) == 0


async def test_a_send_that_fails_inside_its_transaction_stores_nothing_but_spends_the_jti(client, orgs, services, stay,
                                                                                           monkeypatch):
    import gateway.services as services_module

    def broken_outbox(*_args, **_kwargs):
        raise RuntimeError("injected fault: outbox write failed")

    headers = orgs.vught.headers()
    with monkeypatch.context() as patched:
        patched.setattr(services_module, "outbox_values", broken_outbox)
        failed = await client.post("/api/v1/messages", json=send_body(), headers={**headers, "Idempotency-Key": "k-1"})
    problem(failed, 500, "internal-error")
    assert await count(services, Message) == 0 and await count(services, UsedToken, UsedToken.iss == orgs.vught.oin) == 1
    replayed = await client.post("/api/v1/messages", json=send_body(), headers={**headers, "Idempotency-Key": "k-1"})
    problem(replayed, 401, "token-replayed")
    assert await count(services, Message) == 0


async def test_concurrent_requests_with_one_token_store_one_message(client, orgs, services, stay):
    headers = orgs.vught.headers()
    answers = await asyncio.gather(*(
        client.post("/api/v1/messages", json=send_body(), headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        for _ in range(6)))
    assert sorted(r.status_code for r in answers) == [201] + [401] * 5
    assert all(r.json()["type"].endswith("/token-replayed") for r in answers if r.status_code == 401)
    assert await count(services, Message) == 1


async def test_a_read_token_is_spent_with_the_read_and_its_audit_record(client, orgs, services, stay):
    mid = (await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    headers = orgs.amsterdam.headers()
    first = await client.get(f"/api/v1/messages/{mid}", params={"purpose": "aftercare"}, headers=headers)
    assert first.status_code == 200, first.text
    again = await client.get(f"/api/v1/messages/{mid}", params={"purpose": "aftercare"}, headers=headers)
    problem(again, 401, "token-replayed")
    reads = await count(services, AuditRecord, AuditRecord.activity == "read", AuditRecord.message_id == mid)
    assert reads == 1  # the replay read nothing and recorded no read


async def test_an_acknowledgement_token_is_spent_once(client, orgs, services, stay):
    mid = (await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    headers = orgs.amsterdam.headers()
    first = await client.post(f"/api/v1/messages/{mid}/acknowledgements", json={"status": "received"}, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(f"/api/v1/messages/{mid}/acknowledgements", json={"status": "accepted"}, headers=headers)
    problem(again, 401, "token-replayed")
    status = (await client.get(f"/api/v1/messages/{mid}/deliveries", headers=orgs.vught.headers())).json()
    assert status[0]["acknowledgement"] == "received"
