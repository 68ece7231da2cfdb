"""Every event type the gateway publishes, each declared once: its name, its stream, what it means and
the one function that builds its payload. Adding a type is one decorated function here.

Events carry ids, types, OINs and the subject pseudonym, never a payload, a name or a BSN.
``data.parties`` lists the OINs an event concerns; the webhook dispatcher only sends it to them."""
from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from contracts.parties import SYSTEM_OIN
from gateway.db.models import Consent, Delivery, Message, OutboxEvent

CE_TYPE_PREFIX = "nl.brb."
CE_SOURCE = "urn:nl:brb:gateway"


@dataclass(frozen=True)
class EventType:
    stream: Literal["events", "audit", "direct"]  # direct: sent to one callback at once, never through Kafka
    description: str


@dataclass(frozen=True)
class Event:
    """One event to publish: its type, its partition key (the subject pseudonym: per-subject order) and data."""

    type: str
    key: str
    data: dict


EVENT_TYPES: dict[str, EventType] = {}


def event_type(name: str, stream: Literal["events", "audit", "direct"], description: str):
    """Declare an event type; the decorated function returns (key, data) and is called as ``name(...) -> Event``."""
    EVENT_TYPES[name] = EventType(stream, description)

    def register(build: Callable[..., tuple[str, dict]]) -> Callable[..., Event]:
        @functools.wraps(build)
        def make(*args: Any, **kwargs: Any) -> Event:
            key, data = build(*args, **kwargs)
            return Event(name, key, data)
        return make
    return register


def _message(message: Message) -> dict:
    return {"messageId": message.id, "messageType": message.type, "subjectId": message.subject_id}


@event_type("message.delivered", "events", "a message was delivered to a recipient (one event per recipient)")
def message_delivered(message: Message, delivery: Delivery) -> tuple[str, dict]:
    return message.subject_id, {
        **_message(message), "senderOin": message.sender_oin, "recipientOin": delivery.recipient_oin,
        "purpose": message.purpose, "decision": delivery.decision["outcome"],
        "parties": sorted({message.sender_oin, delivery.recipient_oin}),
    }


@event_type("message.read", "events", "a recipient read a message (told to the sender)")
def message_read(message: Message, reader_oin: str, purpose: str) -> tuple[str, dict]:
    return message.subject_id, {
        **_message(message), "senderOin": message.sender_oin, "recipientOin": reader_oin, "purpose": purpose,
        "parties": sorted({message.sender_oin, reader_oin}),
    }


@event_type("message.acknowledged", "events", "a recipient acknowledged a message: received, accepted or rejected")
def message_acknowledged(message: Message, delivery: Delivery) -> tuple[str, dict]:
    return message.subject_id, {
        **_message(message), "senderOin": message.sender_oin, "recipientOin": delivery.recipient_oin,
        "acknowledgement": delivery.acknowledgement, "parties": sorted({message.sender_oin, delivery.recipient_oin}),
    }


@event_type("consent.recorded", "events", "a consent was recorded for a subject")
def consent_recorded(consent: Consent) -> tuple[str, dict]:
    return consent.subject_id, {
        "consentId": consent.id, "subjectId": consent.subject_id, "categories": consent.categories,
        "recipientOins": consent.recipient_oins, "recipientKinds": consent.recipient_kinds,
        "parties": sorted({consent.recorded_by_oin, *consent.recipient_oins}),
    }


@event_type("consent.withdrawn", "events", "a consent was withdrawn: delete local copies of the sections it opened")
def consent_withdrawn(consent: Consent, concerned: set[str]) -> tuple[str, dict]:
    """``concerned``: besides the recorder, the withdrawer and the named recipients, every organisation that
    received a section the consent opened (gateway/consents.py ``Involvement``)."""
    return consent.subject_id, {
        "consentId": consent.id, "subjectId": consent.subject_id, "categories": consent.categories,
        "withdrawnAt": consent.withdrawn_at.isoformat(),
        "parties": sorted({consent.recorded_by_oin, consent.withdrawn_by_oin, *consent.recipient_oins, *concerned} - {None}),
    }


@event_type("retention.purged", "events", "a delivered payload was purged under the retention schedule: delete local copies")
def retention_purged(message: Message, delivery: Delivery) -> tuple[str, dict]:
    return message.subject_id, {
        **_message(message), "recipientOin": delivery.recipient_oin, "purgedAt": delivery.purged_at.isoformat(),
        "parties": [delivery.recipient_oin],
    }


@event_type("deadline.overdue", "events", "a process norm of a stay passed its day unmet (gateway/trajectory/norms.yaml)")
def deadline_overdue(deadline: Any, prison_oin: str | None) -> tuple[str, dict]:
    """To the organisation that must act, and the prison of the stay (the casemanager leads while it lasts)."""
    return deadline.subject_id, {
        "deadlineId": deadline.id, "subjectId": deadline.subject_id, "norm": deadline.norm, "round": deadline.round,
        "dueOn": deadline.due_on.isoformat(), "responsibleKind": deadline.responsible_kind,
        "responsibleOin": deadline.responsible_oin, "prisonOin": prison_oin,
        "parties": sorted({deadline.responsible_oin, prison_oin} - {None}),
    }


@event_type("triage.changed", "events",
            "a SOM triage changed: new information or time changed its outcome, the joint decision closed its round, "
            "or a verdict opened a new round (gateway/triage)")
def triage_changed(triage: Any, previous_outcome: str | None, change: str, cause: str, message_id: str | None,
                   prison_oin: str | None, probation_oin: str | None) -> tuple[str, dict]:
    """To the stay's prison and probation organisation: the SOM is theirs alone, never a municipality's."""
    return triage.subject_id, {
        "triageId": triage.id, "subjectId": triage.subject_id, "round": triage.round, "change": change,
        "previousOutcome": previous_outcome, "outcome": triage.outcome, "criterion": triage.criterion,
        "status": triage.status, "cause": cause, "messageId": message_id, "prisonOin": prison_oin,
        "probationOin": probation_oin, "parties": sorted({prison_oin, probation_oin} - {None}),
    }


@event_type("audit.recorded", "audit", "one audit record (pseudonymous), the audit stream")
def audit_recorded(row: dict) -> tuple[str, dict]:
    from gateway.audit.record import event_data  # the record's fields are declared with the audit table

    return row["subject_id"] or row["actor_oin"], event_data(row)


@event_type("audit.checkpoint", "audit", "a signed checkpoint of the audit chain: its head seq and hash")
def audit_checkpoint(checkpoint: dict) -> tuple[str, dict]:
    return SYSTEM_OIN, {**checkpoint, "parties": []}


@event_type("webhook.ping", "direct", "a test event a subscriber asked for (POST /subscriptions/{id}/ping), sent at once to its callback")
def webhook_ping(subscription_id: str, oin: str) -> tuple[str, dict]:
    return subscription_id, {"subscriptionId": subscription_id, "parties": [oin]}


_FORBIDDEN_KEYS = {"bsn", "payload", "name", "skn", "dateOfBirth"}


def outbox_values(event: Event, now: datetime, topics: dict[str, str], traceparent: str | None = None) -> dict:
    """The column values of the outbox row that the relay will publish (gateway/outbox/relay.py), inserted in
    the caller's transaction (a unit of work inserts all of its rows in one statement)."""
    spec = EVENT_TYPES[event.type]
    leaked = _FORBIDDEN_KEYS & set(event.data)
    if leaked:
        raise ValueError(f"event {event.type} may not carry {sorted(leaked)}")
    return {"event_id": str(uuid.uuid4()), "topic": topics[spec.stream], "type": event.type, "key": event.key,
            "data": event.data, "created_at": now, "traceparent": traceparent}


def outbox_row(event: Event, now: datetime, topics: dict[str, str]) -> OutboxEvent:
    """``outbox_values`` as an ORM row (for code that adds it to a session itself)."""
    return OutboxEvent(**outbox_values(event, now, topics))
