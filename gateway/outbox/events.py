"""Every event type the gateway publishes, in one table. Adding a type is one line here.

Events carry ids, types, OINs and the subject pseudonym, never a payload, a name or a BSN.
``data.parties`` lists the OINs an event concerns; the webhook dispatcher only sends it to them."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.db.models import OutboxEvent

CE_TYPE_PREFIX = "nl.brb."
CE_SOURCE = "urn:nl:brb:gateway"


@dataclass(frozen=True)
class EventType:
    stream: Literal["events", "audit"]
    description: str


EVENT_TYPES: dict[str, EventType] = {
    "message.delivered": EventType("events", "a message was delivered to a recipient (one event per recipient)"),
    "message.read": EventType("events", "a recipient read a message (told to the sender)"),
    "message.acknowledged": EventType("events", "a recipient acknowledged a message: received, accepted or rejected"),
    "consent.recorded": EventType("events", "a consent was recorded for a subject"),
    "consent.withdrawn": EventType("events", "a consent was withdrawn: delete local copies of the sections it opened"),
    "retention.purged": EventType("events", "a delivered payload was purged under the retention schedule: delete local copies"),
    "audit.recorded": EventType("audit", "one audit record (pseudonymous), the audit stream"),
    "audit.checkpoint": EventType("audit", "a signed checkpoint of the audit chain: its head seq and hash"),
}

_FORBIDDEN_KEYS = {"bsn", "payload", "name", "skn", "dateOfBirth"}


def new_event(type_: str, key: str, data: dict, now: datetime, topics: dict[str, str]) -> OutboxEvent:
    spec = EVENT_TYPES[type_]  # KeyError: an event type that is not in the table
    leaked = _FORBIDDEN_KEYS & set(data)
    if leaked:
        raise ValueError(f"event {type_} may not carry {sorted(leaked)}")
    return OutboxEvent(event_id=str(uuid.uuid4()), topic=topics[spec.stream], type=type_, key=key, data=data, created_at=now)
