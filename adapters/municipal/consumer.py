"""The connector: Kafka consumer (its own group), reads, local store, case system, acknowledgements.

It consumes its organisation's own topic ``<prefix>.org.<oin>`` (every event that names it in
``data.parties``; Kafka ACLs let it read nothing else), or the topic given with ``--topic``.

Exactly once, across crashes:

- Kafka offsets are committed (``enable_auto_commit=False``) only after the record's work is committed in
  the local SQLite file; a record that fails is sought back and tried again after a backoff.
- Every handled event's CloudEvent id is kept (``events``): a record seen again (the relay publishes at
  least once; a crash before the offset commit) is passed over.
- A message is read once: once its row exists it is not read again for the delivery.
- ``received`` is sent once at most: the row moves to ``receiving`` before the call and to ``received``
  after it; a crash in between skips ``received`` on restart (the final acknowledgement follows anyway).
- The final acknowledgement (``accepted``/``rejected``) is final at the gateway: a second one answers 409,
  which the connector takes as "already done". The case system gets ``Idempotency-Key: <message id>``.

Consent withdrawal (``consent.withdrawn``): every locally held message of that subject is read again with
its purpose and the stored payload is replaced by what the gateway returns now (the sections the consent
opened are gone from it); a message the gateway no longer releases (403/404/410) loses its payload. The
case system is told (``replace`` / ``delete``). Retention (``retention.purged`` for this OIN): the local
payload is deleted and the case system told ``delete``; the row stays (state ``purged``) as the record
that it was held and deleted, without any personal data but the subject pseudonym."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from brb_client import GatewayClient, GatewayProblem
from adapters.municipal.forwarder import CaseSystem, CaseSystemUnavailable
from adapters.municipal.reports import sweep_drop_folder
from adapters.municipal.store import Store, now_iso

log = logging.getLogger("brb.municipal")
DEFAULT_PURPOSES = {"risk-information": "public-order"}  # what a mayor receives; everything else: default_purpose
GONE_OR_HIDDEN = (403, 404, 410)


@dataclass
class Config:
    oin: str
    bootstrap: str
    topic_prefix: str = "brb"
    group_id: str | None = None
    default_purpose: str = "aftercare"
    purposes: dict[str, str] = field(default_factory=dict)
    drop: Path | None = None
    report_to: list[str] = field(default_factory=list)
    sweep_seconds: float = 5.0
    session_timeout_ms: int = 10_000  # how soon a killed connector's partitions go to its restarted self
    topic_override: str | None = None  # e.g. <prefix>.events, for a service component allowed to read it
    # production Kafka (deploy/README.md): SASL_SSL with this organisation's own principal
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None  # SCRAM-SHA-512 (Strimzi) or PLAIN
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None

    @property
    def topic(self) -> str:
        """This organisation's own topic (docs/events.md) unless overridden."""
        return self.topic_override or f"{self.topic_prefix}.org.{self.oin}"

    @property
    def group(self) -> str:
        """The ACL grants an organisation the consumer groups that start with ``<oin>.`` (deploy/k8s/kafka-users.yaml)."""
        return self.group_id or f"{self.oin}.municipal"

    def kafka_options(self) -> dict:
        """The consumer's security arguments (nothing for PLAINTEXT, the demo broker)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        options: dict = {"security_protocol": self.security_protocol}
        if self.security_protocol.endswith("SSL"):
            import ssl

            options["ssl_context"] = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        if self.security_protocol.startswith("SASL"):
            options |= {"sasl_mechanism": self.sasl_mechanism or "SCRAM-SHA-512",
                        "sasl_plain_username": self.sasl_username, "sasl_plain_password": self.sasl_password}
        return options

    def purpose_for(self, message_type: str) -> str:
        return self.purposes.get(message_type) or DEFAULT_PURPOSES.get(message_type) or self.default_purpose


def parse_event(value: bytes) -> dict | None:
    """A CloudEvent in structured JSON mode (docs/events.md); None for a record that is none."""
    try:
        event = json.loads(value)
    except (ValueError, TypeError):
        return None
    if not isinstance(event, dict) or "id" not in event or "type" not in event:
        return None
    if "data" not in event and "data_base64" in event:
        try:
            event["data"] = json.loads(base64.b64decode(event["data_base64"]))
        except ValueError:
            return None
    if not isinstance(event.get("data"), dict):
        event["data"] = {}
    return event


class Connector:
    def __init__(self, config: Config, gateway: GatewayClient, store: Store, case_system: CaseSystem | None = None):
        self.config, self.gateway, self.store, self.case_system = config, gateway, store, case_system

    # --- one event ------------------------------------------------------------------------------------
    async def handle(self, event: dict) -> str:
        """Handle one CloudEvent; returns what was done (for logs and tests)."""
        event_id, kind = str(event["id"]), str(event["type"]).removeprefix("nl.brb.")
        data = event["data"]
        if kind == "message.delivered":
            if data.get("recipientOin") != self.config.oin:
                return "not-for-us"
            if self.store.seen(event_id):
                return "duplicate"
            outcome = await self.deliver(data, event_id)
        elif kind == "retention.purged":
            if data.get("recipientOin") != self.config.oin:
                return "not-for-us"
            if self.store.seen(event_id):
                return "duplicate"
            outcome = await self.purge(data["messageId"], "retention.purged")
        elif kind == "consent.withdrawn":
            if not data.get("subjectId") or not self.store.of_subject(data["subjectId"]):
                return "not-for-us"
            if self.store.seen(event_id):
                return "duplicate"
            outcome = await self.withdrawn(data)
        else:
            return "ignored"
        self.store.mark_handled(event_id, kind, outcome)
        log.info("municipal.event-handled", extra={"event_type": kind, "outcome": outcome})
        return outcome

    async def deliver(self, data: dict, event_id: str) -> str:
        message_id = data["messageId"]
        if self.store.message(message_id) is None:
            purpose = self.config.purpose_for(data.get("messageType", ""))
            try:
                view = await self.gateway.read(message_id, purpose)
            except GatewayProblem as exc:
                if exc.status not in GONE_OR_HIDDEN:
                    raise
                state = "purged" if exc.status == 410 else "unreadable"
                self.store.record_placeholder(message_id, data, purpose, state, f"read for {purpose}: {exc}", event_id)
                return state
            self.store.store_read(view, event_id, now_iso())
        return await self.settle(message_id)

    async def settle(self, message_id: str) -> str:
        """Move a stored message on: received -> case system -> final acknowledgement."""
        m = self.store.message(message_id)
        try:
            if m["state"] == "stored":
                self.store.set_state(message_id, "receiving")
                await self.gateway.acknowledge(message_id, "received")
                self.store.set_state(message_id, "received", ack="received", acked_at=now_iso())
                m = self.store.message(message_id)
            if m["state"] in ("receiving", "received"):  # receiving: a crash mid-call; received is not sent twice
                if self.case_system is None:
                    status, reason = "accepted", None
                else:
                    try:
                        verdict = await self.case_system.deliver(m)
                    except CaseSystemUnavailable as exc:
                        log.warning("municipal.case-system-unavailable", extra={"cause": str(exc)})
                        return "pending"
                    status, reason = verdict.status, verdict.reason
                self.store.set_state(message_id, "forwarded", verdict=status, ack_reason=reason, forwarded_at=now_iso())
                m = self.store.message(message_id)
            if m["state"] == "forwarded":
                try:
                    await self.gateway.acknowledge(message_id, m["verdict"], m["ack_reason"])
                except GatewayProblem as exc:
                    if exc.type != "conflict":  # conflict: the final acknowledgement is there already
                        raise
                self.store.set_state(message_id, m["verdict"], ack=m["verdict"], acked_at=now_iso())
                return m["verdict"]
            return m["state"]
        except GatewayProblem as exc:
            if exc.status in GONE_OR_HIDDEN:  # purged (or withdrawn from us) meanwhile
                self.store.replace_payload(message_id, None, None, f"acknowledgement refused: {exc}")
                return "purged"
            raise

    async def purge(self, message_id: str, why: str) -> str:
        m = self.store.message(message_id)
        if m is None:
            return "not-held"
        self.store.replace_payload(message_id, None, None, why)
        if self.case_system is not None:
            await self.case_system.tell("delete", m, why)
        return "purged"

    async def withdrawn(self, data: dict) -> str:
        why = f"consent.withdrawn {data.get('consentId')}"
        changed = 0
        for m in self.store.of_subject(data["subjectId"]):
            try:
                view = await self.gateway.read(m["message_id"], m["purpose"])
            except GatewayProblem as exc:
                if exc.status not in GONE_OR_HIDDEN:
                    raise
                await self.purge(m["message_id"], f"{why}: {exc.type}")
                changed += 1
                continue
            if view["payload"] != m["payload"]:
                self.store.replace_payload(m["message_id"], view["payload"], view.get("releasedSections"), why)
                if self.case_system is not None:
                    await self.case_system.tell("replace", self.store.message(m["message_id"]), why)
                changed += 1
        return f"re-read, {changed} replaced"

    async def settle_pending(self) -> int:
        """Retry what a crash or an absent case system left unsettled."""
        done = 0
        for m in self.store.unsettled():
            if await self.settle(m["message_id"]) not in ("pending",):
                done += 1
        return done

    async def sweep(self) -> None:
        await self.settle_pending()
        if self.config.drop is not None:
            self.config.drop.mkdir(parents=True, exist_ok=True)
            counts = await sweep_drop_folder(self.gateway, self.store, self.config.drop, self.config.report_to)
            if counts["sent"] or counts["failed"]:
                log.info("municipal.reports-swept", extra=counts)

    # --- the loop -------------------------------------------------------------------------------------
    def consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(self.config.topic, bootstrap_servers=self.config.bootstrap, group_id=self.config.group,
                                enable_auto_commit=False, auto_offset_reset="earliest", client_id=self.config.group,
                                metadata_max_age_ms=5_000, session_timeout_ms=self.config.session_timeout_ms,
                                heartbeat_interval_ms=max(500, self.config.session_timeout_ms // 5),
                                **self.config.kafka_options())

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self.consumer()
        await consumer.start()
        loop = asyncio.get_running_loop()
        next_sweep, failures = 0.0, 0
        try:
            while not stop.is_set():
                if loop.time() >= next_sweep:
                    try:
                        await self.sweep()
                    except Exception:  # noqa: BLE001 - the next sweep tries again
                        log.exception("municipal.sweep-failed")
                    next_sweep = loop.time() + self.config.sweep_seconds
                batches = await consumer.getmany(timeout_ms=300, max_records=200)
                failed = False
                for tp, records in batches.items():
                    committed = None
                    for record in records:
                        event = parse_event(record.value)
                        if event is None:
                            log.warning("municipal.unreadable-record", extra={"partition": tp.partition, "offset": record.offset})
                        else:
                            try:
                                await self.handle(event)
                            except Exception:  # noqa: BLE001 - try the record again after a backoff
                                log.exception("municipal.event-failed")
                                consumer.seek(tp, record.offset)
                                failed = True
                                break
                        committed = record.offset + 1
                    if committed is not None:  # after the local commit: a crash before it re-reads, dedup passes over
                        await consumer.commit({tp: committed})
                failures = failures + 1 if failed else 0
                if failed:
                    delay = min(30.0, 0.5 * 2 ** min(failures, 6)) * (0.5 + random.random() / 2)
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
        finally:
            await consumer.stop()
