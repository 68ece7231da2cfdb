"""Outbox row -> CloudEvents 1.0, structured JSON mode, via the ``cloudevents`` SDK. The trace context of
the transaction that wrote the event travels as the distributed-tracing extension attribute ``traceparent``."""
from __future__ import annotations

from cloudevents.core.bindings import kafka
from cloudevents.core.v1.event import CloudEvent

from gateway import telemetry
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
    if row.traceparent:
        attributes["traceparent"] = row.traceparent
    return CloudEvent(attributes, row.data)


def to_kafka(row: OutboxEvent) -> kafka.KafkaMessage:
    """Structured mode: the whole event is the record value; the key is the subject pseudonym. The span
    publishing it (a relay round) links to the event's trace."""
    telemetry.link_to(row.traceparent)
    return kafka.to_structured_event(to_cloudevent(row), key_mapper=lambda _e: row.key.encode())


def from_kafka(value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> CloudEvent:
    message = kafka.KafkaMessage(headers=dict(headers or []), key=key, value=value)
    return kafka.from_structured_event(message)
