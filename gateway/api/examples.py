"""One realistic example request body and success response per operation, keyed by operationId; the
OpenAPI document carries them (gateway/openapi.py) and tests/contract/test_openapi_contract.py requires one for
every operation and validates each against its schema. Organisations are the demo ones (gateway/demo.py), the
subject a test BSN (999990019), the payload the contract's own example; the audit export and the HTML subject
report are rendered by the gateway's own code from the example record, so they cannot drift from it."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

_CONTRACT_EXAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "examples"
VUGHT, AMSTERDAM = "00000001001234567000", "00000001009990363000"
MESSAGE_ID = "0f9e4c1a-6b2d-4e8f-9a31-7c5d2e8b4a10"
SUBJECT_ID = "sub-5d41402abc4b2a76b9719d911017c592"
SENT_AT = "2026-11-23T09:14:02.118000Z"


def _payload(message_type: str, variant: str = "valid-minimal") -> dict:
    return json.loads((_CONTRACT_EXAMPLES / message_type / f"{variant}.json").read_text())


_DELIVERY = {
    "recipientOin": AMSTERDAM, "recipientKind": "municipality", "status": "delivered", "decision": "allow-with-redaction",
    "rule": "dr-plan/dji-to-municipality", "legalBasis": "pm-20d-2",
    "redactions": [{"section": "health", "category": "health", "reason": "not-permitted", "rule": "dr-plan/dji-to-municipality"}],
    "releasedSections": [{"section": "housing", "category": "basic-conditions", "legalBasis": "pm-20d-2", "consents": []}],
    "deliveredAt": SENT_AT, "firstReadAt": None, "acknowledgement": None, "acknowledgementReason": None,
    "acknowledgedAt": None, "repliedAt": None, "purgedAt": None,
}
_ACKNOWLEDGED = _DELIVERY | {"status": "received", "firstReadAt": "2026-11-23T09:20:11Z", "acknowledgement": "received",
                             "acknowledgedAt": "2026-11-23T09:20:12Z"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed_receipt(claims: dict) -> str:
    """The shape of a ``signedReceipt`` (gateway/receipts.py): its real header and claims; the signature part
    is a fixed filler, so the document stays the same build after build."""
    header = {"alg": "ES256", "kid": "brb-receipts-2026-1", "typ": "brb-receipt+jwt"}
    parts = [json.dumps(header, separators=(",", ":")).encode(), json.dumps(claims, separators=(",", ":")).encode(),
             bytes(range(64))]
    return ".".join(_b64url(p) for p in parts)


_ACK_RECEIPT = {"receipt": "acknowledgement", "messageId": MESSAGE_ID, "recipient": AMSTERDAM, "sender": VUGHT,
                "status": "received", "acknowledgedAt": "2026-11-23T09:20:12Z",
                "payloadDigest": "sha-256:" + _b64url(b"example digest of the payload".ljust(32, b".")),
                "iss": "urn:nl:brb:gateway", "iat": 1795425612}


def _signature_example(payload: dict, withheld: set[str] = frozenset()) -> dict:
    """A payload's proof (brb_client/proof.py): fixed salts and real digests; the JWS's signature part is a fixed
    filler, so the document stays the same build after build."""
    from brb_client.proof import digest_at, digest_form, payload_digest, signature_digest
    from contracts.registry import section_pointers, sections_present

    present = sections_present("dr-plan", 1, payload)
    salts = {p: _b64url(f"salt of {name}".encode().ljust(16, b".")) for p, name in section_pointers("dr-plan", 1).items()
             if name in present}
    form = digest_form(payload, salts)
    header = {"alg": "ES256", "kid": "vught-2026-1", "typ": "brb-payload+jws"}
    jws = _b64url(json.dumps(header, separators=(",", ":")).encode()) + ".." + _b64url(bytes(range(64)))
    withheld_pointers = {p for p in salts if p.rsplit("/", 1)[1] in withheld}
    return {"jws": jws, "salts": salts, "payloadDigest": payload_digest(form), "signatureDigest": signature_digest(jws),
            "proof": {"payloadDigest": payload_digest(form), "signature": jws,
                      "salts": {p: v for p, v in salts.items() if p not in withheld_pointers},
                      "withheld": {p: digest_at(form, p) for p in sorted(withheld_pointers)}}}


def _normal(message_type: str) -> dict:
    """The contract's example in its normal form (what a signature is over, and what the gateway stores)."""
    from contracts import validate_payload

    return validate_payload(message_type, 1, _payload(message_type)).model_dump(mode="json", by_alias=True, exclude_none=True)


_SIGNED = _signature_example(_normal("dr-plan"))
_SEND_RECEIPT = {"receipt": "send", "messageId": MESSAGE_ID, "type": "dr-plan", "version": 1, "sender": VUGHT,
                 "subjectId": SUBJECT_ID, "createdAt": SENT_AT, "payloadDigest": _SIGNED["payloadDigest"],
                 "signatureDigest": _SIGNED["signatureDigest"],
                 "recipients": [{"recipient": AMSTERDAM, "decision": "allow-with-redaction", "withheld": ["health"]}],
                 "iss": "urn:nl:brb:gateway", "iat": 1795425242}


_HEADER = {"id": MESSAGE_ID, "type": "dr-plan", "version": 1, "subjectId": SUBJECT_ID, "purpose": "aftercare",
           "createdAt": SENT_AT}
_SUMMARY = _HEADER | {"senderOin": VUGHT, "dueDate": None, "inReplyTo": None, "deliveries": [_DELIVERY]}

EXAMPLES: dict[str, dict] = {
    "sendMessage": {
        "request": {"type": "dr-plan", "version": 1, "purpose": "aftercare", "recipients": ["municipality:0363"],
                    "payload": _normal("dr-plan"), "signature": {"jws": _SIGNED["jws"], "salts": _SIGNED["salts"]}},
        "response": _HEADER | {"deliveries": [_DELIVERY], "payloadDigest": _SIGNED["payloadDigest"],
                               "signatureDigest": _SIGNED["signatureDigest"], "signedReceipt": _signed_receipt(_SEND_RECEIPT)},
    },
    "listSentMessages": {"response": {"items": [_SUMMARY], "nextCursor": "MTczMjM1MzI0Mg", "hasMore": False}},
    "listInbox": {"response": {"items": [_SUMMARY], "nextCursor": "MTczMjM1MzI0Mg", "hasMore": False}},
    "readMessage": {"response": _HEADER | {
        "senderOin": VUGHT, "dueDate": None, "inReplyTo": None, "readPurpose": "aftercare", "legalBasis": "pm-20d-2",
        "rule": "dr-plan/dji-to-municipality", "redactions": _DELIVERY["redactions"],
        "releasedSections": _DELIVERY["releasedSections"], "payload": _normal("dr-plan"), "proof": _SIGNED["proof"]}},
    "acknowledgeMessage": {"request": {"status": "received"}, "response": _ACKNOWLEDGED | {"signedReceipt": _signed_receipt(_ACK_RECEIPT)}},
    "listDeliveries": {"response": [_ACKNOWLEDGED]},
}

# --- consents ------------------------------------------------------------------------------------------
CONSENT_ID = "7c1d9e52-3a4b-4f60-8d2e-91b0c4a7e5f3"
_CONSENT_REQUEST = {
    "subject": {"bsn": "999990019"}, "givenBy": "detainee", "categories": ["children-family"],
    "recipientOins": [], "recipientKinds": ["municipality"], "purposes": ["aftercare", "reintegration"],
    "validFrom": "2026-11-23T00:00:00Z", "validUntil": "2027-05-23T00:00:00Z",
    "evidenceReference": "toestemmingsformulier-2026-0042",
}
_CONSENT = {
    "id": CONSENT_ID, "subjectId": SUBJECT_ID, "givenBy": "detainee", "categories": ["children-family"],
    "recipientOins": [], "recipientKinds": ["municipality"], "purposes": ["aftercare", "reintegration"],
    "validFrom": "2026-11-23T00:00:00Z", "validUntil": "2027-05-23T00:00:00Z", "recordedByOin": VUGHT,
    "evidenceReference": "toestemmingsformulier-2026-0042", "recordedAt": "2026-11-23T08:47:31.402000Z",
    "withdrawnAt": None, "withdrawnByOin": None, "withdrawalReason": None,
}
_WITHDRAWN = _CONSENT | {"withdrawnAt": "2026-12-02T14:05:09Z", "withdrawnByOin": VUGHT,
                         "withdrawalReason": "ingetrokken door gedetineerde"}

# --- audit ---------------------------------------------------------------------------------------------
_AUDIT_RECORD = {
    "seq": 4182, "id": "b3e0f6a2-8c41-4d7e-a5b9-2f6c1d0e9a84", "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
    "activity": "deliver", "actorOin": VUGHT, "actorName": "PI Vught", "counterpartyOin": AMSTERDAM,
    "counterpartyName": "Gemeente Amsterdam (nazorg)", "tokenId": "a8f5f167f44f4964e6c998dee827110c",
    "scope": "messages:send messages:read", "subjectId": SUBJECT_ID, "messageId": MESSAGE_ID, "purpose": "aftercare",
    "legalBasis": "pm-20d-2", "rule": "dr-plan/dji-to-municipality", "outcome": "allow-with-redaction",
    "detail": "sections: housing=pm-20d-2", "recordedAt": "2026-11-23T09:14:02.131000Z",
    "prevHash": "9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab",
    "hash": "e3f1a0c29b7d4e58f6a2c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0",
    "payloadDigest": None, "signatureDigest": None,  # set on a send's record
}
_REPORT = {"subjectId": SUBJECT_ID, "generatedAt": "2026-12-03T10:00:00Z", "count": 1, "records": [_AUDIT_RECORD]}


def _export(fmt: str) -> str:
    """The export as the gateway streams it (gateway/audit/queries.py), for the example record."""
    from gateway.audit.queries import BOM, csv_cell, csv_writer
    from gateway.audit.record import AuditRecordView, export_row

    record = AuditRecordView.model_validate(_AUDIT_RECORD)
    row = export_row(record, {record.actor_oin: record.actor_name, record.counterparty_oin: record.counterparty_name})
    if fmt == "jsonl":
        return json.dumps(row, ensure_ascii=False) + "\n"
    buf = io.StringIO()
    writer = csv_writer(buf)
    writer.writeheader()
    writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return BOM + buf.getvalue()


def _report_html() -> str:
    from gateway.audit import citizen_report
    from gateway.audit.report import SubjectReport
    from gateway.demo import DEMO_ORGANISATIONS

    names = {o["oin"]: o["name"] for o in DEMO_ORGANISATIONS}
    return citizen_report.render_html(citizen_report.build(SubjectReport.model_validate(_REPORT), names))


# --- subscriptions -------------------------------------------------------------------------------------
SUBSCRIPTION_ID = "2d7a4c9e-5f13-4b8a-9e06-c3f1d2a8b7e4"
EVENT_ID = "01JDQ7Z3K4M5N6P7Q8R9S0T1V2"
_SUBSCRIPTION_REQUEST = {"callbackUrl": "https://nazorg.amsterdam.example.nl/brb/webhooks",
                         "eventTypes": ["message.delivered", "message.acknowledged"], "messageTypes": ["dr-plan"]}
_SUBSCRIPTION = _SUBSCRIPTION_REQUEST | {"id": SUBSCRIPTION_ID, "createdAt": "2026-11-20T13:02:45Z"}
_DEAD_LETTER = {"id": 17, "subscriptionId": SUBSCRIPTION_ID, "eventId": EVENT_ID, "eventType": "message.delivered",
                "attempts": 8, "lastError": "HTTP 503", "createdAt": "2026-11-23T09:14:03Z"}
_WEBHOOK_DELIVERY = {"id": 17, "eventId": EVENT_ID, "eventType": "message.delivered", "status": "dead", "attempts": 8,
                     "lastError": "HTTP 503", "nextAttemptAt": None, "createdAt": "2026-11-23T09:14:03Z", "deliveredAt": None}

# --- organisations and keys ----------------------------------------------------------------------------
# A public ES256 key and its proof of possession (iat 2026-11-23T09:00:00Z, 240 s): an example, never registered.
_JWK = {"kty": "EC", "crv": "P-256", "x": "lqrmxYUm5P0MR-Xw_bYomx_RwEMETqPWsdisaxvtPHM",
        "y": "auRHeHqN3etk2uaeahW1We3dtnBnrXykelCW5rUI__g", "kid": "363000-2026-11", "alg": "ES256", "use": "sig"}
_PROOF = ("eyJhbGciOiJFUzI1NiIsImtpZCI6IjM2MzAwMC0yMDI2LTExIiwidHlwIjoiSldUIn0.eyJpc3MiOiIwMDAwMDAwMTAwOTk5MDM2MzAwMCIsI"
          "nN1YiI6IjAwMDAwMDAxMDA5OTkwMzYzMDAwIiwiYXVkIjoidXJuOm5sOmJyYjpnYXRld2F5IiwiaWF0IjoxNzk1NDI0NDAwLCJleHAiOjE3OTU0Mj"
          "Q2NDAsImp0aSI6IjViMGUzYzRmOGE5ZDRlMjFiN2M2YTFmMGQyZTNiNGM1In0.KbWiT-tiZmfTxWH4xrp2Cn2DNuGmzHXE69epjWoT-5H10WITtG"
          "Foxgsb4ELxNGtPYlf3kdySXanfm8JdM1rp6w")
_OLD_KEY = {"kid": "363000-demo-1", "alg": "ES256", "createdAt": "2026-01-05T10:00:00Z", "revokedAt": None}
_NEW_KEY = {"kid": _JWK["kid"], "alg": "ES256", "createdAt": "2026-11-23T09:01:12Z", "revokedAt": None}
_REVOKED = _OLD_KEY | {"revokedAt": "2026-11-30T08:00:00Z"}
_ORGANISATION_REQUEST = {"oin": "00000001009990344000", "name": "Gemeente Utrecht (nazorg)", "kind": "municipality",
                         "cbsCode": "0344", "parentOin": None}

EXAMPLES |= {
    "recordConsent": {"request": _CONSENT_REQUEST, "response": _CONSENT},
    "listConsents": {"response": {"items": [_CONSENT]}},
    "withdrawConsent": {"request": {"reason": "ingetrokken door gedetineerde"}, "response": _WITHDRAWN},
    "listAuditRecords": {"response": {"items": [_AUDIT_RECORD], "nextCursor": "MTczMjM1MzI0Mg", "hasMore": False}},
    "exportAuditRecords": {"response application/x-ndjson": _export("jsonl"), "response text/csv": _export("csv")},
    "aggregateAuditRecords": {"response": {"period": "month", "total": 9, "groups": [
        {"period": "2026-11", "since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z", "activity": "deliver",
         "messageType": "dr-plan", "outcome": "redact", "rule": "dr-plan/dji-to-municipality", "actorOin": VUGHT,
         "actorName": "PI Vught", "counterpartyOin": AMSTERDAM, "counterpartyName": "Gemeente Amsterdam (nazorg)", "count": 2},
        {"period": "2026-11", "since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z", "activity": "redact",
         "messageType": "dr-plan", "outcome": "redact", "rule": "dr-plan/dji-to-municipality", "actorOin": VUGHT,
         "actorName": "PI Vught", "counterpartyOin": AMSTERDAM, "counterpartyName": "Gemeente Amsterdam (nazorg)", "count": 6},
        {"period": "2026-11", "since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z", "activity": "deny",
         "messageType": "dr-plan", "outcome": "deny", "rule": "dr-plan/dji-to-municipality", "actorOin": VUGHT,
         "actorName": "PI Vught", "counterpartyOin": "00000001009990599000", "counterpartyName": "Gemeente Rotterdam (nazorg)",
         "count": 1},
    ]}},
    "reportOnSubject": {"request": {"bsn": "999990019"}, "response": _REPORT, "response text/html": _report_html()},
    "verifyAuditChain": {"response": {"intact": True, "checked": 4182, "lastSeq": 4182, "brokenSeq": None, "brokenId": None,
                                      "reason": None, "reasonCode": None, "anchored": True, "checkpointSeq": 4180,
                                      "checkpointAt": "2026-11-23T09:10:00Z"}},
    "createSubscription": {"request": _SUBSCRIPTION_REQUEST,
                           "response": _SUBSCRIPTION | {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
    "listSubscriptions": {"response": {"items": [_SUBSCRIPTION | {"secret": None}]}},
    "deleteSubscription": {},  # 204: no body either way
    "listDeadLetters": {"response": {"items": [_DEAD_LETTER]}},
    "replayDeadLetter": {"response": _DEAD_LETTER | {"attempts": 0, "lastError": None}},
    "listSubscriptionDeliveries": {"response": {"items": [_WEBHOOK_DELIVERY], "nextCursor": "MTczMjM1MzI0Mw", "hasMore": False}},
    "replaySubscriptionDelivery": {"response": _WEBHOOK_DELIVERY | {"status": "pending", "attempts": 0, "lastError": None,
                                                                   "nextAttemptAt": "2026-11-24T08:30:00Z"}},
    "rotateSubscriptionSecret": {"request": {"overlapHours": 24},
                                 "response": _SUBSCRIPTION | {"previousSecretValidUntil": "2026-11-25T08:30:00Z",
                                                              "secret": "whsec_Q2hhbmdlZCBpbiBOb3ZlbWJlciAyMDI2IGZvciB0ZXN0"}},
    "pingSubscription": {"response": {"eventId": "01JDR2B8W9X0Y1Z2A3B4C5D6E7", "eventType": "nl.brb.webhook.ping",
                                      "delivered": True, "statusCode": 204, "error": None}},
    "listOwnKeys": {"response": {"items": [_OLD_KEY, _NEW_KEY]}},
    "addOwnKey": {"request": {"jwk": _JWK, "proof": _PROOF}, "response": _NEW_KEY},
    "revokeOwnKey": {"response": _REVOKED},
    "listOrganisations": {"response": {"items": [
        {"oin": VUGHT, "name": "PI Vught", "kind": "dji", "cbsCode": None, "parentOin": None, "active": True,
         "keys": [{"kid": "567000-demo-1", "alg": "ES256", "createdAt": "2026-01-05T10:00:00Z", "revokedAt": None}]},
        {"oin": AMSTERDAM, "name": "Gemeente Amsterdam (nazorg)", "kind": "municipality", "cbsCode": "0363",
         "parentOin": None, "active": True, "keys": [_OLD_KEY, _NEW_KEY]},
        {"oin": "00000001009990363900", "name": "FG Gemeente Amsterdam", "kind": "auditor", "cbsCode": None,
         "parentOin": AMSTERDAM, "active": True, "keys": []},
    ]}},
    "addOrganisation": {"request": _ORGANISATION_REQUEST, "response": _ORGANISATION_REQUEST | {"active": True, "keys": []}},
    "addKey": {"request": {"jwk": _JWK}, "response": _NEW_KEY},
    "revokeKey": {"response": _REVOKED},
    "getOrganisationJwks": {"response": {"keys": [
        _JWK | {"kid": "363000-demo-1", "revokedAt": "2026-11-30T08:00:00Z"}, _JWK]}},
}

# --- parameters: one example per name, for every operation that takes it (path ids, required query and headers)
PARAMETERS: dict[str, str | int] = {
    "message_id": MESSAGE_ID, "consent_id": CONSENT_ID, "subscription_id": SUBSCRIPTION_ID, "dead_letter_id": 17,
    "delivery_id": 17, "oin": AMSTERDAM, "kid": _OLD_KEY["kid"], "subjectId": SUBJECT_ID,
    "Idempotency-Key": "tulp-export-2026-11-23-000412",
}

# --- trajectories and deadlines (gateway/trajectory)
_PLAN_DEADLINE = {
    "id": 412, "subjectId": SUBJECT_ID, "norm": "plan-established", "title": "D&R-plan established (final)",
    "source": "Art. 18a lid 1 Pbw: the D&R-plan is drawn up within four weeks of arrival (practice adopts it around week 9, MDO 2)",
    "round": 1, "responsibleKind": "dji", "responsibleOin": VUGHT, "responsibleName": "PI Vught", "dueOn": "2026-11-30",
    "status": "met-late", "metAt": "2026-12-04T14:02:11Z", "metByMessageId": MESSAGE_ID, "daysLate": 4, "reason": None,
    "acknowledgements": [{"recipientOin": AMSTERDAM, "acknowledgement": "accepted", "acknowledgedAt": "2026-12-04T15:30:00Z"}],
}
_RELEASE_DEADLINE = _PLAN_DEADLINE | {
    "id": 413, "norm": "release-notified", "title": "Municipality told of the release",
    "source": "Chain practice (no statute sets it): the competent municipality hears of a release at least 28 days ahead; of an unexpected release the same day",
    "dueOn": "2027-01-18", "status": "overdue", "metAt": None, "metByMessageId": None, "daysLate": 3, "acknowledgements": []}
_LEAD = {"role": "casemanager", "organisationOin": VUGHT, "organisationName": "PI Vught",
         "basis": "the stay lasts: the prison's casemanager leads"}
_TRIAGE_ITEM = {
    "subjectId": SUBJECT_ID, "stayId": 97, "prisonOin": VUGHT, "probationOin": "00000001002345678000",
    "arrivalDate": "2026-11-02", "phase": "remand", "round": 1, "moment": "week-3", "outcome": "no-priority",
    "criterion": "low-recidivism-risk", "criterionTitle": "Low risk of reoffending", "since": "2026-11-25T14:11:00Z",
    "status": "decided", "decisionOutcome": "no-priority", "decidedAt": "2026-11-26T09:00:00Z"}
EXAMPLES |= {
    "getTrajectory": {"response": {
        "subjectId": SUBJECT_ID, "lead": _LEAD,
        "leadAfterRelease": {"role": "aftercare-coordinator", "organisationOin": AMSTERDAM,
                             "organisationName": "Gemeente Amsterdam (nazorg)",
                             "basis": "release-notice: no supervision follows; the municipality of return leads aftercare"},
        "stay": {"stayId": 97, "arrivalDate": "2026-11-02", "prisonOin": VUGHT, "prisonName": "PI Vught",
                 "detentionKind": "sentence", "expectedReleaseDate": "2027-02-15", "releaseCertainty": "planned",
                 "shortStay": False, "endedAt": None},
        "deadlines": [_PLAN_DEADLINE, _RELEASE_DEADLINE]}},
    "listDeadlines": {"response": {"items": [_RELEASE_DEADLINE], "nextCursor": "eyJ2IjoxLCJsaXN0IjoiZGVhZGxpbmVzIn0", "hasMore": False}},
    "deadlineStats": {"response": {"dueFrom": "2026-01-01", "dueTo": "2026-12-31", "items": [
        {"organisationOin": VUGHT, "organisationName": "PI Vught", "norm": "plan-established", "due": 212, "metOnTime": 38,
         "metLate": 166, "overdue": 8, "open": 11, "shareOnTime": 0.1792, "averageDaysLate": 34.5},
        {"organisationOin": VUGHT, "organisationName": "PI Vught", "norm": "release-notified", "due": 230, "metOnTime": 151,
         "metLate": 71, "overdue": 8, "open": 19, "shareOnTime": 0.6565, "averageDaysLate": 11.2}]}},
    "listTriage": {"response": {"items": [_TRIAGE_ITEM], "nextCursor": "eyJ2IjoxLCJsaXN0IjoidHJpYWdlIiwiYWZ0ZXIiOls0Ml19",
                                "hasMore": False}},
    "getTriage": {"response": _TRIAGE_ITEM | {
        "explanation": "The latest risk assessment, not older than one year, found a low risk of reoffending.",
        "mandatory": False, "professionalWeighing": False, "firstPass": None, "overrideReason": None,
        "fired": [{"fact": "recent_low_risk", "value": True, "sources": [
            {"messageId": MESSAGE_ID, "messageType": "risk-information", "on": "2026-11-25"}]}],
        "profile": None,
        "decision": {"outcome": "no-priority", "justification": "Laag risico; de casemanager werkt met de gemeente",
                     "deviatesFromGuideline": False, "deviatesFromFirstPass": False, "decidedOn": "2026-11-26",
                     "messageId": "4b8e2f1c-9d3a-4c6e-8f10-2a7b5c9d1e3f"},
        "reevaluateOn": "2027-11-26",
        "history": [
            {"round": 1, "outcome": "no-priority", "criterion": "no-probation-information", "previousOutcome": None,
             "cause": "detention-notice", "messageId": "6a1f3c5e-7b9d-4e2f-8a0c-1d3e5f7a9b2c", "changedAt": "2026-11-02T08:30:00Z"},
            {"round": 1, "outcome": "rest-group", "criterion": "rest-group", "previousOutcome": "no-priority",
             "cause": "som-triage", "messageId": "8c2e4a6b-1d3f-4a5b-9c7d-2e4f6a8b0c1d", "changedAt": "2026-11-20T10:02:00Z"},
            {"round": 1, "outcome": "no-priority", "criterion": "low-recidivism-risk", "previousOutcome": "rest-group",
             "cause": "risk-information", "messageId": MESSAGE_ID, "changedAt": "2026-11-25T14:11:00Z"},
            {"round": 1, "outcome": "no-priority", "criterion": "low-recidivism-risk", "previousOutcome": "no-priority",
             "cause": "decision", "messageId": "4b8e2f1c-9d3a-4c6e-8f10-2a7b5c9d1e3f", "changedAt": "2026-11-26T09:00:00Z"}]}},
}
PARAMETERS["subject_id"] = SUBJECT_ID
