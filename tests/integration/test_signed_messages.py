"""Signed messages (issue 21) through the HTTP API, on SQLite and PostgreSQL: the prison signs its D&R-plan, the
gateway checks the signature against the prison's registered key before it stores anything, and the
municipality, which gets the plan without the sections withheld from it, still verifies what it got, and
learns nothing of the rest. A payload altered in the database afterwards is caught at the read."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid

import httpx
import pytest
from joserfc.jwk import ECKey
from sqlalchemy import func
from sqlmodel import select

from brb_client.proof import ProofInvalid, section_digest, sign_payload, verify_payload
from brb_client.receipts import verify_receipt

from gateway.app import create_app
from gateway.audit.queries import verify_chain
from gateway.db.models import PAYLOAD, AuditRecord, Message
from contracts.registry import section_pointers
from gateway.registry import add_key, revoke_key
from gateway.services import Services
from tests.conftest import settings_for
from tests.scenario import Chain, example, problem

DR_PLAN = list(section_pointers("dr-plan", 1))
WITHHELD_FROM_AMSTERDAM = {"/sections/social-network", "/sections/restorative-work", "/sections/behaviour"}


def public(jwk: dict) -> dict:
    return {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}


def signed_body(sender, payload: dict | None = None, *, key: dict | None = None, **overrides) -> dict:
    payload = payload if payload is not None else example("dr-plan")
    signed = sign_payload(payload, DR_PLAN, key or sender.private_jwk)
    return {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
            "payload": payload, "signature": signed.as_request(), **overrides}


async def post(client, sender, body: dict) -> httpx.Response:
    return await client.post("/api/v1/messages", json=body, headers=sender.headers(**{"Idempotency-Key": uuid.uuid4().hex}))


async def count(services, model) -> int:
    async with services.db.read() as s:
        return (await s.exec(select(func.count()).select_from(model))).one()


async def test_a_signed_plan_verifies_at_the_municipality_for_the_sections_it_got(client, orgs, services, stay):
    body = signed_body(orgs.vught)
    r = await post(client, orgs.vught, body)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["payloadDigest"].startswith("sha-256:") and receipt["signatureDigest"].startswith("sha-256:")

    view = (await Chain(client, orgs).read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    proof = view["proof"]
    assert {r["section"] for r in view["redactions"]} == {p.rsplit("/", 1)[1] for p in WITHHELD_FROM_AMSTERDAM}
    assert set(proof["withheld"]) == WITHHELD_FROM_AMSTERDAM and not WITHHELD_FROM_AMSTERDAM & set(proof["salts"])
    assert proof["signature"] == body["signature"]["jws"] and proof["payloadDigest"] == receipt["payloadDigest"]
    jwks = (await client.get(f"/api/v1/organisations/{orgs.vught.oin}/jwks", headers=orgs.amsterdam.headers())).json()
    assert [k["kid"] for k in jwks["keys"]] == [orgs.vught.private_jwk["kid"]] and "d" not in jwks["keys"][0]
    verified = verify_payload(view["payload"], proof, jwks)
    assert verified.signed and verified.kid == orgs.vught.private_jwk["kid"]

    # what the municipality holds of a withheld section: a digest over a salt it never saw, nothing of the text
    behaviour = body["payload"]["sections"]["behaviour"]
    shown = json.dumps(view)
    assert all(goal["description"] not in shown for goal in behaviour["goals"])
    assert body["signature"]["salts"]["/sections/behaviour"] not in shown
    assert proof["withheld"]["/sections/behaviour"] == section_digest(
        body["signature"]["salts"]["/sections/behaviour"], "/sections/behaviour", behaviour)

    # altered at the municipality (or on the way): a section it got, or a digest it was given
    changed = copy.deepcopy(view["payload"])
    changed["sections"]["housing"]["goals"][0]["description"] = "Woning geregeld"
    with pytest.raises(ProofInvalid):
        verify_payload(changed, proof, public(orgs.vught.private_jwk))
    forged = {**proof, "payloadDigest": None, "withheld": {**proof["withheld"], "/sections/behaviour": "A" * 43}}
    with pytest.raises(ProofInvalid, match="does not verify"):
        verify_payload(view["payload"], forged, public(orgs.vught.private_jwk))

    # the sender's own copy carries every salt
    own = (await Chain(client, orgs).read(orgs.vught, receipt["id"], "reintegration")).json()
    assert own["proof"]["withheld"] == {} and verify_payload(own["payload"], own["proof"], public(orgs.vught.private_jwk)).signed


async def test_the_send_receipt_is_signed_by_the_gateway_and_names_what_was_accepted(client, orgs, stay):
    receipt = (await post(client, orgs.vught, signed_body(orgs.vught))).json()
    jwks = (await client.get("/.well-known/jwks.json")).json()
    claims = verify_receipt(receipt["signedReceipt"], jwks)
    assert claims["messageId"] == receipt["id"] and claims["payloadDigest"] == receipt["payloadDigest"]
    assert claims["signatureDigest"] == receipt["signatureDigest"] and claims["sender"] == orgs.vught.oin
    assert claims["recipients"] == [{"recipient": orgs.amsterdam.oin, "decision": "allow-with-redaction",
                                     "withheld": sorted(p.rsplit("/", 1)[1] for p in WITHHELD_FROM_AMSTERDAM)}]
    head, payload, signature = receipt["signedReceipt"].split(".")
    for altered in (f"{head}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}",
                    f"{head}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"):
        with pytest.raises(ValueError):
            verify_receipt(altered, jwks)


async def test_the_send_audit_record_holds_the_digests_and_the_chain_stays_intact(client, orgs, services, stay):
    receipt = (await post(client, orgs.vught, signed_body(orgs.vught))).json()
    unsigned = (await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])).json()
    async with services.db.read() as s:
        sends = (await s.exec(select(AuditRecord).where(AuditRecord.activity == "send").order_by(AuditRecord.seq))).all()
    assert [(a.message_id, a.payload_digest, a.signature_digest) for a in sends] == [
        (receipt["id"], receipt["payloadDigest"], receipt["signatureDigest"]), (unsigned["id"], unsigned["payloadDigest"], None)]
    assert (await verify_chain(services)).intact


@pytest.mark.parametrize("case", ["tampered-payload", "other-organisations-key", "other-key-same-kid", "revoked-key",
                                  "unknown-kid", "salt-missing", "not-normal-form"])
async def test_a_signature_that_does_not_hold_is_refused_and_nothing_is_stored(client, orgs, services, stay, case):
    body = signed_body(orgs.vught)
    if case == "tampered-payload":
        body["payload"]["sections"]["housing"]["goals"][0]["description"] += " (gewijzigd)"
    elif case == "other-organisations-key":
        body = signed_body(orgs.vught, key=orgs.rotterdam.private_jwk)
    elif case == "other-key-same-kid":
        stranger = ECKey.generate_key("P-256", parameters={"kid": orgs.vught.private_jwk["kid"]}).as_dict(private=True)
        body = signed_body(orgs.vught, key=stranger)
    elif case == "revoked-key":
        old = ECKey.generate_key("P-256", parameters={"kid": "vught-2025"}).as_dict(private=True)
        await add_key(services, orgs.vught.oin, public(old))
        await revoke_key(services, orgs.vught.oin, "vught-2025")
        body = signed_body(orgs.vught, key=old)
    elif case == "unknown-kid":
        body = signed_body(orgs.vught, key={**orgs.vught.private_jwk, "kid": "no-such-kid"})
    elif case == "salt-missing":
        del body["signature"]["salts"]["/sections/housing"]
    elif case == "not-normal-form":
        payload = example("dr-plan")
        payload["reviewDate"] = None  # the contract's normal form has no null members
        body = signed_body(orgs.vught, payload)
    before = (await count(services, Message), await count(services, AuditRecord))
    r = await post(client, orgs.vught, body)
    detail = problem(r, 422, "invalid-signature")["detail"]
    expected = {"tampered-payload": "does not verify", "other-organisations-key": "not a registered key",
                "other-key-same-kid": "does not verify", "revoked-key": "was revoked", "unknown-kid": "not a registered key",
                "salt-missing": "/sections/housing", "not-normal-form": "/reviewDate"}[case]
    assert expected in detail, detail
    assert (await count(services, Message), await count(services, AuditRecord)) == before


async def test_signatures_can_be_required(database, orgs, stay):
    services = Services.from_settings(settings_for(database, require_signed_messages=True))
    try:
        app = create_app(services=services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            r = await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"], expect=None)
            assert "sign the payload" in problem(r, 422, "signature-required")["detail"]
            assert (await post(client, orgs.vught, signed_body(orgs.vught))).status_code == 201
    finally:
        await services.db.dispose()


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_payload_altered_in_the_database_is_caught_at_the_read(client, orgs, services, stay, signed):
    """The operator's worst case: the payload re-sealed with the gateway's own keys, so it decrypts fine."""
    if signed:
        mid = (await post(client, orgs.vught, signed_body(orgs.vught))).json()["id"]
    else:
        mid = (await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    async with services.db.write() as s:
        message = await s.get(Message, mid)
        payload = json.loads(services.keyring.open(PAYLOAD.get(message), aad=mid.encode()))
        payload["sections"]["housing"]["goals"][0]["description"] = "Geen woning nodig"
        PAYLOAD.seal_text(services.keyring, message, json.dumps(payload), aad=mid.encode())
        s.add(message)
    for reader, purpose in ((orgs.amsterdam, "aftercare"), (orgs.vught, "reintegration")):
        r = await client.get(f"/api/v1/messages/{mid}", params={"purpose": purpose}, headers=reader.headers())
        assert "altered" in problem(r, 500, "integrity-failed")["detail"]
        assert "Geen woning" not in r.text
    async with services.db.read() as s:
        refused = (await s.exec(select(AuditRecord).where(AuditRecord.outcome == "integrity-failed"))).all()
    assert len(refused) == 2 and {a.message_id for a in refused} == {mid}


async def test_the_verify_command_says_authentic_or_not_for_a_message_and_a_receipt(client, orgs, stay, tmp_path):
    """A connector's check from files alone (brb_client/verify.py): the message as read, the sender's keys as
    fetched once; the receipt against the gateway's JWK Set."""
    receipt = (await post(client, orgs.vught, signed_body(orgs.vught))).json()
    view = (await Chain(client, orgs).read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    files = {"message.json": view, "vught.jwks.json": (await client.get(
        f"/api/v1/organisations/{orgs.vught.oin}/jwks", headers=orgs.amsterdam.headers())).json(),
        "receipt.json": receipt, "gateway.jwks.json": (await client.get("/.well-known/jwks.json")).json()}
    altered = copy.deepcopy(view)
    altered["payload"]["sections"]["housing"]["goals"][0]["description"] = "Woning geregeld"
    files["altered.json"] = altered
    files["altered-receipt.json"] = {**receipt, "signedReceipt": receipt["signedReceipt"][:-3] + "AAA"}
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))

    def verify(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "brb_client.verify", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)

    ok = verify("message", "message.json", "--keys", "vught.jwks.json")
    assert ok.returncode == 0 and ok.stdout.startswith("AUTHENTIC") and "3 withheld" in ok.stdout, ok.stdout + ok.stderr
    bad = verify("message", "altered.json", "--keys", "vught.jwks.json")
    assert bad.returncode == 1 and bad.stdout.startswith("NOT AUTHENTIC"), bad.stdout
    ok = verify("receipt", "receipt.json", "--jwks", "gateway.jwks.json")
    assert ok.returncode == 0 and receipt["id"] in ok.stdout, ok.stdout + ok.stderr
    bad = verify("receipt", "altered-receipt.json", "--jwks", "gateway.jwks.json")
    assert bad.returncode == 1 and "NOT AUTHENTIC" in bad.stdout, bad.stdout
    assert verify("receipt", "nowhere.json", "--jwks", "gateway.jwks.json").returncode == 2
