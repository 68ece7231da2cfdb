"""A scenario builder: the chain's moves in one line each, so tests read like the process."""
from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import httpx

EXAMPLES = Path(__file__).resolve().parents[1] / "contracts" / "examples"
BSN = "999990019"


def example(message_type: str, variant: str = "valid-full") -> dict:
    return json.loads((EXAMPLES / message_type / f"{variant}.json").read_text())


def with_subject(payload: dict, bsn: str = BSN, **extra) -> dict:
    payload = copy.deepcopy(payload)
    payload["subject"] = {"bsn": bsn, **extra}
    return payload


class Chain:
    def __init__(self, client: httpx.AsyncClient, orgs):
        self.client, self.orgs = client, orgs

    async def send(self, sender, message_type: str, recipients: list[str], payload: dict | None = None, *,
                   purpose: str = "reintegration", key: str | None = None, expect: int | None = 201) -> httpx.Response:
        body = {"type": message_type, "version": 1, "purpose": purpose, "recipients": recipients,
                "payload": payload if payload is not None else example(message_type)}
        r = await self.client.post("/api/v1/messages", json=body,
                                   headers=sender.headers(**{"Idempotency-Key": key or uuid.uuid4().hex}))
        if expect is not None:
            assert r.status_code == expect, r.text
        return r

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
