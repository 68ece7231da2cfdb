"""Issue 12: the defects found from outside, each as a test. Every answer is a problem+json 4xx with a
stable type, never a 5xx, and a rejected request stores nothing. Both databases, except for the checks of
a token's claims, which read no data (SQLite only, like the JWT matrix in test_auth.py)."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlmodel import func, select

from gateway.db.models import Consent, Message
from tests.scenario import BSN, Chain, detention_notice, example, problem, with_subject



sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # token checks: no backend in play


# 1 ---------------------------------------------------------------------------------------------------

@sqlite_only
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_a_signed_token_with_a_numeric_string_time_claim_is_an_invalid_token_not_a_500(client, orgs, claim):
    now = int(time.time())
    values = {"exp": str(now + 300), "iat": str(now), "nbf": str(now)}
    token = orgs.vught.token(**{claim: values[claim]})
    r = await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    assert claim in problem(r, 401, "invalid-token")["detail"]


@sqlite_only
@pytest.mark.parametrize("value", [True, 1.5e300, [1], {"a": 1}])
async def test_a_signed_token_with_an_exp_that_is_no_integer_is_an_invalid_token(client, orgs, value):
    r = await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {orgs.vught.token(exp=value)}"})
    problem(r, 401, "invalid-token")


# 2 ---------------------------------------------------------------------------------------------------

async def test_a_consent_is_seen_only_by_those_it_concerns(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")  # Vught holds the detainee, Reclassering is informed
    consent = await chain.consent(orgs.vught, categories=["children-family"], recipient_oins=[orgs.amsterdam.oin])
    subject = consent["subjectId"]

    async def listed(org) -> list[str]:
        r = await client.get("/api/v1/consents", params={"subjectId": subject}, headers=org.headers())
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert await listed(orgs.vught) == [consent["id"]]  # recorder, and the current prison
    assert await listed(orgs.amsterdam) == [consent["id"]]  # named recipient
    assert await listed(orgs.reclassering) == [consent["id"]]  # probation involved with the subject
    assert await listed(orgs.zwolle) == []  # another prison, no part in this stay
    assert await listed(orgs.rotterdam) == []


async def test_only_the_recorder_or_the_subjects_current_prison_and_probation_may_withdraw(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")
    consent = await chain.consent(orgs.vught, categories=["children-family"], recipient_oins=[orgs.amsterdam.oin])
    r = await client.post(f"/api/v1/consents/{consent['id']}/withdrawal", headers=orgs.zwolle.headers(), json={})
    problem(r, 404, "not-found")  # a prison with no part in it does not even learn it exists
    async with services.db.read() as s:
        assert (await s.get(Consent, consent["id"])).withdrawn_at is None
    withdrawn = await chain.withdraw(orgs.reclassering, consent["id"])
    assert withdrawn["withdrawnByOin"] == orgs.reclassering.oin


# 4, 11 -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/inbox", "/api/v1/messages", "/api/v1/audit/records", "/api/v1/audit/export"])
@pytest.mark.parametrize("param,value", [("since", "2026-11-01T10:00:00"), ("until", "2026-11-01T10:00:00"),
                                         ("until", "0.5"), ("since", "1700000000"), ("since", "yesterday")])
async def test_a_date_time_filter_must_be_rfc_3339_with_an_offset(client, orgs, path, param, value):
    org = orgs.inspectorate if "audit" in path else orgs.amsterdam
    r = await client.get(path, params={param: value}, headers=org.headers())
    # the audit filters are checked as one vocabulary (issue 20): a 400 invalid-filter naming what they accept
    expected = (400, "invalid-filter") if "audit" in path else (422, "validation-failed")
    assert f"query:{param}" in problem(r, *expected)["detail"]


async def test_a_date_time_filter_with_an_offset_works(client, orgs):
    r = await client.get("/api/v1/inbox", params={"since": "2026-11-01T10:00:00+01:00"}, headers=orgs.amsterdam.headers())
    assert r.status_code == 200, r.text


# 5, 6 --------------------------------------------------------------------------------------------------

NOT_SHAPED_LIKE_A_CURSOR = ["!!!"]  # outside the documented pattern ^[A-Za-z0-9_=-]*$
FORGED = ["eyJ4Ijp7fX0", "WyIyMDI2LTExLTAxIiwgW11d", "WyJ4IiwgMV0",  # {"x":{}}, ["2026-11-01",[]], ["x",1]
          "WyIyMDI2LTExLTAxVDEwOjAwOjAwKzAwOjAwIiwgOTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5XQ",  # a 64+-bit id
          "WyIyMDI2LTExLTAxVDEwOjAwOjAwIiwgMV0"]  # a naive date-time


@pytest.mark.parametrize("cursor", NOT_SHAPED_LIKE_A_CURSOR + FORGED)
@pytest.mark.parametrize("path", ["/api/v1/inbox", "/api/v1/messages", "/api/v1/audit/records"])
async def test_a_forged_cursor_is_a_clear_error(client, orgs, path, cursor):
    org = orgs.inspectorate if "audit" in path else orgs.amsterdam
    r = await client.get(path, params={"cursor": cursor}, headers=org.headers())
    if cursor in NOT_SHAPED_LIKE_A_CURSOR:  # refused by the declared parameter schema
        assert "query:cursor" in problem(r, 422, "validation-failed")["detail"]
    else:  # shaped like a cursor, but not one the gateway made
        assert "query:cursor" in problem(r, 400, "invalid-request")["detail"]


@pytest.mark.parametrize("value", ["99999999999999999999999", str(2**63), str(2**31), str(2**31 - 1), "-1", "0"])
async def test_integers_past_their_declared_range_are_422(client, orgs, value):
    n = int(value)
    verify = await client.get("/api/v1/audit/verify", params={"fromSeq": value}, headers=orgs.inspectorate.headers())
    if 1 <= n < 2**63:  # a seq is a 64-bit integer: 2**31 is a valid one
        assert verify.status_code == 200 and verify.json()["intact"] is True, verify.text
    else:
        assert "query:fromSeq" in problem(verify, 422, "validation-failed")["detail"]
    replay = await client.post(f"/api/v1/webhook-dead-letters/{value}/replay", headers=orgs.operator.headers())
    if 1 <= n < 2**31:  # a dead letter id is a 32-bit integer: in range, there is just no such dead letter
        problem(replay, 404, "not-found")
    else:
        assert "dead_letter_id" in problem(replay, 422, "validation-failed")["detail"]
    page = await client.get("/api/v1/inbox", params={"pageSize": value}, headers=orgs.amsterdam.headers())
    assert "query:pageSize" in problem(page, 422, "validation-failed")["detail"]  # 1 to 200


# 7 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("purpose", "x" * 41), ("purpose", "reintegration\x00"), ("type", "dr-plan\x00")])
async def test_overlong_and_nul_strings_in_a_send_are_422_and_store_nothing(client, orgs, services, field, value):
    body = {"type": "detention-notice", "version": 1, "purpose": "reintegration", "recipients": [orgs.reclassering.oin],
            "payload": example("detention-notice"), field: value}
    r = await client.post("/api/v1/messages", json=body, headers=orgs.vught.headers(**{"Idempotency-Key": uuid.uuid4().hex}))
    problem(r, 422, "validation-failed")
    async with services.db.read() as s:
        assert (await s.exec(select(func.count()).select_from(Message))).one() == 0


@pytest.mark.parametrize("path,params", [
    ("/api/v1/inbox", {"subjectId": "sub-" + "a" * 70}), ("/api/v1/inbox", {"type": "x\x00"}),
    ("/api/v1/inbox", {"status": "s" * 50}), ("/api/v1/audit/records", {"purpose": "p" * 41}),
    ("/api/v1/audit/records", {"activity": "a\x00"}), ("/api/v1/audit/records", {"organisation": "1" * 30}),
    ("/api/v1/audit/records", {"messageId": "m" * 40}), ("/api/v1/consents", {"subjectId": "sub-\x00"}),
])
async def test_overlong_and_nul_filters_are_refused(client, orgs, path, params):
    org = orgs.inspectorate if "audit" in path else orgs.vught
    r = await client.get(path, params=params, headers=org.headers())
    problem(r, *((400, "invalid-filter") if "audit" in path else (422, "validation-failed")))


@pytest.mark.parametrize("message_id", ["x" * 37, "abc%00", "00000000-0000-0000-0000-00000000000g"])
async def test_malformed_ids_in_the_path_are_clear_errors(client, orgs, message_id):
    r = await client.get(f"/api/v1/messages/{message_id}", params={"purpose": "p" * 41}, headers=orgs.amsterdam.headers())
    assert "message_id" in problem(r, 422, "validation-failed")["detail"]  # a message id is a UUID
    r = await client.post(f"/api/v1/consents/{message_id}/withdrawal", headers=orgs.vught.headers(), json={})
    assert "consent_id" in problem(r, 422, "validation-failed")["detail"]  # so is a consent id


async def test_a_nul_byte_in_a_consent_body_is_422(client, orgs):
    r = await client.post("/api/v1/consents", headers=orgs.vught.headers(), json={
        "subject": {"bsn": BSN}, "categories": ["children-family"], "recipientKinds": ["municipality"],
        "purposes": ["aftercare"], "evidenceReference": "form\x00-1"})
    problem(r, 422, "validation-failed")


# 8, 9, 11 ----------------------------------------------------------------------------------------------

async def test_a_trailing_slash_is_a_404_problem_never_a_redirect(client, orgs):
    r = await client.get("/api/v1/inbox/", headers=orgs.amsterdam.headers(), follow_redirects=False)
    problem(r, 404, "not-found")


async def test_a_wrong_method_is_405_with_an_allow_header(client, orgs):
    r = await client.delete("/api/v1/inbox", headers=orgs.amsterdam.headers())
    problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "GET"


@pytest.fixture
async def orgs_live(live_server, orgs):
    return live_server, orgs.vught


async def test_a_chunked_body_over_the_limit_is_413(orgs_live):
    url, org = orgs_live

    def chunks():
        for _ in range(1200):
            yield b"x" * 1000  # 1.2 MB, no Content-Length

    async def body():
        for c in chunks():
            yield c

    async with httpx.AsyncClient() as c:
        r = await c.post(f"{url}/api/v1/messages", content=body(),
                         headers=org.headers(**{"Idempotency-Key": "k1", "Content-Type": "application/json"}))
    problem(r, 413, "payload-too-large")


# 10 --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bsn", ["９９９９９００１９", "٩٩٩٩٩٠٠١٩"])  # fullwidth and Arabic-Indic digits
async def test_a_bsn_in_non_ascii_digits_is_refused(client, orgs, services, bsn):
    body = {"type": "detention-notice", "version": 1, "purpose": "reintegration", "recipients": [orgs.reclassering.oin],
            "payload": with_subject(example("detention-notice"), bsn=bsn)}
    r = await client.post("/api/v1/messages", json=body, headers=orgs.vught.headers(**{"Idempotency-Key": uuid.uuid4().hex}))
    assert "/payload/subject/bsn" in problem(r, 422, "validation-failed")["detail"]
    r = await client.post("/api/v1/audit/subject-report", json={"bsn": bsn}, headers=orgs.inspectorate.headers())
    problem(r, 422, "validation-failed")


async def test_an_skn_in_non_ascii_digits_is_refused(client, orgs):
    payload = detention_notice()
    payload["subject"] = {"skn": "１２３４５６７８"}
    body = {"type": "detention-notice", "version": 1, "purpose": "reintegration", "recipients": [orgs.reclassering.oin],
            "payload": payload}
    r = await client.post("/api/v1/messages", json=body, headers=orgs.vught.headers(**{"Idempotency-Key": uuid.uuid4().hex}))
    assert "/payload/subject/skn" in problem(r, 422, "validation-failed")["detail"]


# 11 --------------------------------------------------------------------------------------------------

def test_the_openapi_document_declares_what_the_server_enforces():
    import yaml

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
    def schema(param: dict) -> dict:  # the non-null member of an optional parameter
        s = param["schema"]
        return next(m for m in s.get("anyOf", [s]) if m.get("type") != "null")

    params = {p["name"]: p for p in doc["paths"]["/inbox"]["get"]["parameters"]}
    assert schema(params["pageSize"])["maximum"] == 200 and schema(params["pageSize"])["minimum"] == 1
    assert schema(params["since"])["format"] == "date-time"
    assert schema(params["subjectId"])["pattern"] and schema(params["cursor"])["maxLength"] == 200
    verify = {p["name"]: p for p in doc["paths"]["/audit/verify"]["get"]["parameters"]}
    assert verify["fromSeq"]["schema"]["maximum"] == 2**63 - 1
    schemas = doc["components"]["schemas"]
    assert "anyOf" in schemas["SubjectIdentifiers"] and "anyOf" in schemas["ConsentRequest"]
    bsn = next(m for m in schemas["SubjectIdentifiers"]["properties"]["bsn"]["anyOf"] if m.get("type") == "string")
    assert bsn["pattern"] == "^[0-9]{9}$"
    assert all(schemas[m["$ref"].rsplit("/", 1)[1]]["properties"]["purpose"]["maxLength"] == 40 for m in schemas["SendMessageRequest"]["oneOf"])
    get_message = {p["name"]: p for p in doc["paths"]["/messages/{message_id}"]["get"]["parameters"]}
    assert get_message["message_id"]["schema"]["pattern"]
