"""The gateway's signed receipts through the HTTP API, on SQLite and PostgreSQL: the key set at
/.well-known/jwks.json, and the receipt in each acknowledgement's answer, checked the way a connector
checks it (brb_client.receipts.verify_receipt, against the key set fetched from the gateway)."""
import base64
import json
from datetime import datetime

import pytest
from sqlalchemy import update
from sqlmodel import select

from brb_client import ReceiptInvalid, verify_receipt
from gateway.db.models import Message
from tests.scenario import Chain

JWKS = "/.well-known/jwks.json"
REASON = "Betrokkene staat niet ingeschreven in Amsterdam"


async def jwks_of(client) -> dict:
    r = await client.get(JWKS)  # no Authorization header
    assert r.status_code == 200, r.text
    return r.json()


async def acknowledged(client, orgs, body: dict) -> tuple[str, dict]:
    mid = (await Chain(client, orgs).send(orgs.vught, "release-notice", ["municipality:0363"], purpose="aftercare")).json()["id"]
    r = await client.post(f"/api/v1/messages/{mid}/acknowledgements", headers=orgs.amsterdam.headers(), json=body)
    assert r.status_code == 201, r.text
    return mid, r.json()


async def stored_digest(services, mid: str) -> str | None:
    async with services.db.read() as s:
        return (await s.exec(select(Message.payload_digest).where(Message.id == mid))).one()


async def test_the_key_set_is_public_cacheable_and_holds_no_private_key(client, services):
    r = await client.get(JWKS)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] in ("application/jwk-set+json", "application/json")
    assert r.headers["cache-control"] == "public, max-age=300"
    (key,) = r.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
    assert key["kid"] == json.loads(services.settings.receipt_signing_key.get_secret_value())["kid"]
    assert "d" not in key
    assert (await client.get("/api/v1/.well-known/jwks.json")).status_code == 404  # outside the API's path


async def test_an_acknowledgements_receipt_verifies_against_the_published_keys_and_names_what_was_said(client, orgs, services, stay):
    mid, answer = await acknowledged(client, orgs, {"status": "accepted"})
    assert answer["acknowledgement"] == "accepted" and answer["recipientOin"] == orgs.amsterdam.oin

    claims = verify_receipt(answer["signedReceipt"], await jwks_of(client), issuer=services.settings.audience)
    assert claims["receipt"] == "acknowledgement"
    assert (claims["messageId"], claims["recipient"], claims["sender"]) == (mid, orgs.amsterdam.oin, orgs.vught.oin)
    assert claims["status"] == "accepted"
    assert claims["acknowledgedAt"] == answer["acknowledgedAt"]  # the very time the gateway recorded and answered
    assert abs(datetime.fromisoformat(claims["acknowledgedAt"]).timestamp() - claims["iat"]) < 1
    assert claims["payloadDigest"] == await stored_digest(services, mid)

    deliveries = (await client.get(f"/api/v1/messages/{mid}/deliveries", headers=orgs.vught.headers())).json()
    assert deliveries[0]["acknowledgedAt"] == claims["acknowledgedAt"]  # what the sender sees is what was signed


async def test_one_altered_byte_of_the_receipt_is_refused(client, orgs, stay):
    _mid, answer = await acknowledged(client, orgs, {"status": "received"})
    jwks = await jwks_of(client)
    header, payload, signature = answer["signedReceipt"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other = "rejected"
    forged_payload = base64.urlsafe_b64encode(json.dumps({**claims, "status": other}).encode()).rstrip(b"=").decode()
    middle = len(signature) // 2
    for forged in (f"{header}.{forged_payload}.{signature}",
                   f"{header}.{payload}.{signature[:middle]}{'A' if signature[middle] != 'A' else 'B'}{signature[middle + 1:]}"):
        with pytest.raises(ReceiptInvalid):
            verify_receipt(forged, jwks)


async def test_a_rejection_receipt_keeps_the_reason_out_and_an_old_message_has_a_null_digest(client, orgs, services, stay):
    mid = (await Chain(client, orgs).send(orgs.vught, "release-notice", ["municipality:0363"], purpose="aftercare")).json()["id"]
    async with services.db.write() as s:  # a message sent before payload digests were kept
        await s.exec(update(Message).where(Message.id == mid).values(payload_digest=None))
    r = await client.post(f"/api/v1/messages/{mid}/acknowledgements", headers=orgs.amsterdam.headers(),
                          json={"status": "rejected", "reason": REASON})
    assert r.status_code == 201, r.text
    receipt = r.json()["signedReceipt"]
    claims = verify_receipt(receipt, await jwks_of(client))
    assert (claims["status"], claims["payloadDigest"]) == ("rejected", None)
    assert REASON not in json.dumps(claims) and "reason" not in claims
