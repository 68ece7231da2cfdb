"""Outbox row -> CloudEvents 1.0, structured JSON mode, via the ``cloudevents`` SDK."""
from __future__ import annotations

from cloudevents.core.bindings import kafka
from cloudevents.core.v1.event import CloudEvent

from gateway.db.models import OutboxEvent
from gateway.outbox.events import CE_SOURCE, CE_TYPE_PREFIX


def to_cloudevent(row: OutboxEvent) -> CloudEvent:
    attributes = {
        "id": row.event_id,
        "source": CE_SOURCE,
        "type": CE_TYPE_PREFIX + row.type,
        "time": row.created_at,
        "datacontenttype": "application/json",
        "partitionkey": row.key,
    }
    if row.data.get("subjectId"):
        attributes["subject"] = row.data["subjectId"]
    return CloudEvent(attributes, row.data)


def to_kafka(row: OutboxEvent) -> kafka.KafkaMessage:
    """Structured mode: the whole event is the record value; the key is the subject pseudonym."""
    return kafka.to_structured_event(to_cloudevent(row), key_mapper=lambda _e: row.key.encode())


def from_kafka(value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> CloudEvent:
    message = kafka.KafkaMessage(headers=dict(headers or []), key=key, value=value)
    return kafka.from_structured_event(message)
