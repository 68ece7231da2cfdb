"""A scenario builder: the chain's moves in one line each, so tests read like the process."""
from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import httpx

EXAMPLES = Path(__file__).resolve().parents[1] / "contracts" / "examples"
BSN = "999990019"


def _empty_inbox() -> dict:
    from gateway.exchange.inbox import INBOX

    return {"items": [], "nextCursor": INBOX.encode(INBOX.start), "hasMore": False}


EMPTY_INBOX = _empty_inbox()  # an inbox with nothing yet still gives the cursor to poll onwards from


def problem(r: httpx.Response, status: int, slug: str) -> dict:
    """Assert an application/problem+json answer with this status and exactly this problem type (the
    ``type`` URIs of gateway/problems.py, docs/problems.md); returns the body."""
    from gateway.problems import PROBLEM_BASE, PROBLEM_TYPES

    assert PROBLEM_TYPES[slug].status == status, f"{slug} is documented with status {PROBLEM_TYPES[slug].status}"
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status, body
    return body


def example(message_type: str, variant: str = "valid-full", version: int = 1) -> dict:
    folder = EXAMPLES / message_type if version == 1 else EXAMPLES / message_type / f"v{version}"
    return json.loads((folder / f"{variant}.json").read_text())


def with_subject(payload: dict, bsn: str = BSN, **extra) -> dict:
    payload = copy.deepcopy(payload)
    payload["subject"] = {"bsn": bsn, **extra}
    return payload


def detention_notice(bsn: str = BSN, *, residence: str | None = "0363", intended: str | None = None,
                     arrival: str = "2026-11-02") -> dict:
    """A detention-notice stating the municipality of residence and/or the intended municipality."""
    payload = with_subject(example("detention-notice"), bsn)
    payload.pop("municipalityOfResidence", None)
    payload["arrivalDate"] = arrival
    if residence:
        payload["municipalityOfResidence"] = residence
    if intended:
        payload["intendedMunicipality"] = intended
    return payload


def risk_18b(offence_kind: str = "violent") -> dict:
    return {"offenceKind": offence_kind, "justification": "Dreigementen jegens ex-partner in Amsterdam-Oost; "
            "melding nodig voor haar veiligheid bij terugkeer", "assertedBy": "Vestigingsdirecteur PI Vught",
            "assertedAt": "2026-11-20T09:00:00+01:00"}


async def seed_stay(services, bsn: str = BSN, residence: str | None = "0363", intended: str | None = "0599") -> str:
    """Test set-up for tests about something else: the subject's stay as if a detention-notice had
    established it (no message, no event, no audit record). Competence itself is tested through the API."""
    from gateway.db.models import Stay
    from gateway.exchange.subjects import ensure_subject

    async with services.db.write() as session:
        now = services.clock.now()
        subject_id = await ensure_subject(session, services.pseudonyms, bsn, None, now)
        session.add(Stay(subject_id=subject_id, arrival_date=None, residence_cbs=residence, intended_cbs=intended,
                         created_at=now, updated_at=now))
    return subject_id


class Chain:
    def __init__(self, client: httpx.AsyncClient, orgs):
        self.client, self.orgs = client, orgs

    async def send(self, sender, message_type: str, recipients: list[str], payload: dict | None = None, *,
                   purpose: str = "reintegration", key: str | None = None, expect: int | None = 201,
                   version: int = 1) -> httpx.Response:
        body = {"type": message_type, "version": version, "purpose": purpose, "recipients": recipients,
                "payload": payload if payload is not None else example(message_type, version=version)}
        r = await self.client.post("/api/v1/messages", json=body,
                                   headers=sender.headers(**{"Idempotency-Key": key or uuid.uuid4().hex}))
        if expect is not None:
            assert r.status_code == expect, r.text
        return r

    async def admit(self, prison, recipients: tuple[str, ...] = ("00000001002345678000",), bsn: str = BSN, **where) -> dict:
        """The prison's detention-notice (to probation unless told otherwise): establishes the stay."""
        return (await self.send(prison, "detention-notice", list(recipients), detention_notice(bsn, **where))).json()

    async def read(self, reader, message_id: str, purpose: str = "reintegration", expect: int | None = 200) -> httpx.Response:
        r = await self.client.get(f"/api/v1/messages/{message_id}", params={"purpose": purpose}, headers=reader.headers())
        if expect is not None:
            assert r.status_code == expect, r.text
        return r

    async def consent(self, recorder, *, bsn: str = BSN, categories: list[str], recipient_oins=(), recipient_kinds=(),
                      purposes=("reintegration", "aftercare"), given_by: str = "detainee") -> dict:
        r = await self.client.post("/api/v1/consents", headers=recorder.headers(), json={
            "subject": {"bsn": bsn}, "givenBy": given_by, "categories": list(categories),
            "recipientOins": list(recipient_oins), "recipientKinds": list(recipient_kinds),
            "purposes": list(purposes), "evidenceReference": "toestemmingsformulier-2026-0042",
        })
        assert r.status_code == 201, r.text
        return r.json()

    async def withdraw(self, recorder, consent_id: str) -> dict:
        r = await self.client.post(f"/api/v1/consents/{consent_id}/withdrawal", headers=recorder.headers(),
                                   json={"reason": "ingetrokken door gedetineerde"})
        assert r.status_code == 201, r.text
        return r.json()


async def read_body(receive) -> bytes:
    """The whole request body an ASGI receiver (a webhook or case-system stand-in) was sent."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
