"""The tables. One class per stored concept; the migrations in ``db/migrations`` create them."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from gateway.crypto import SealedColumns
from gateway.db.types import UtcDateTime


def utc_col(nullable: bool = True, index: bool = False, description: str | None = None) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index, comment=description))


def json_col() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Organisation(SQLModel, table=True):
    __tablename__ = "organisations"
    __table_args__ = (  # one active municipality and one active mayor per CBS code (migration 0004)
        Index("ux_organisations_active_cbs", "kind", "cbs_code", unique=True,
              postgresql_where=text("active"), sqlite_where=text("active")),
    )
    oin: str = Field(primary_key=True, max_length=20)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20, index=True)
    cbs_code: str | None = Field(default=None, max_length=4, index=True)
    parent_oin: str | None = Field(default=None, max_length=20, description="for an auditor: the organisation it audits")
    active: bool = True
    created_at: datetime = utc_col(nullable=False)
    # the last inbox position handed to a delivery for this organisation (migration 0005): taken by a
    # conditional UPDATE in the send transaction, so positions are given out in commit order per recipient
    inbox_position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class OrganisationKey(SQLModel, table=True):
    __tablename__ = "organisation_keys"
    __table_args__ = (UniqueConstraint("oin", "kid"),)
    id: int | None = Field(default=None, primary_key=True)
    oin: str = Field(foreign_key="organisations.oin", max_length=20, index=True)
    kid: str = Field(max_length=100)
    alg: str = Field(max_length=10)
    jwk: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_col(nullable=False)
    revoked_at: datetime | None = utc_col()


class UsedToken(SQLModel, table=True):
    """Replay guard: a `jti` is accepted once per issuer within its lifetime, across processes."""

    __tablename__ = "used_tokens"
    iss: str = Field(primary_key=True, max_length=20)
    jti: str = Field(primary_key=True, max_length=200)
    expires_at: datetime = utc_col(nullable=False, index=True)


class SubjectRecord(SQLModel, table=True):
    """A detainee, known only by pseudonym; the release date drives retention."""

    __tablename__ = "subjects"
    id: str = Field(primary_key=True, max_length=64)
    release_date: date | None = None
    created_at: datetime = utc_col(nullable=False)


class Stay(SQLModel, table=True):
    """One prison stay of a subject, and the municipalities competent for it (art. 18a lid 4 Pbw):
    where the detainee lived before detention and where they intend to live after release. Learnt from
    the detention, transfer and release notices the gateway carried; the latest stay is the current one."""

    __tablename__ = "stays"
    id: int | None = Field(default=None, primary_key=True)
    subject_id: str = Field(foreign_key="subjects.id", max_length=64, index=True)
    arrival_date: date | None = None
    prison_oin: str | None = Field(default=None, max_length=20)
    residence_cbs: str | None = Field(default=None, max_length=4, description="municipality of residence before detention")
    intended_cbs: str | None = Field(default=None, max_length=4, description="intended municipality after release")
    created_at: datetime = utc_col(nullable=False)
    updated_at: datetime = utc_col(nullable=False)
    # the trajectory (migration 0010, gateway/trajectory): what the notices said of the stay, for its deadlines
    detention_kind: str | None = Field(default=None, max_length=20, description="remand | sentence (detention-notice)")
    release_date: date | None = Field(default=None, description="the expected release date as last announced")
    release_certainty: str | None = Field(default=None, max_length=20, description="planned | provisional | unexpected")
    supervision_follows: bool | None = Field(default=None, description="release-notice: a legal framework with supervision follows")
    aftercare_lead: str | None = Field(default=None, max_length=20, description="release-notice: probation | municipality")
    probation_oin: str | None = Field(default=None, max_length=20, description="the stay's probation organisation")
    closed_at: datetime | None = utc_col(description="when a later stay of the subject began")


class Deadline(SQLModel, table=True):
    """One process norm of one stay (gateway/trajectory/norms.yaml): due when, met by which message and when,
    and which organisation must act. A repeating norm (the plan review) has one row per round."""

    __tablename__ = "deadlines"
    __table_args__ = (
        UniqueConstraint("stay_id", "norm", "round"),
        Index("ix_deadlines_status_due", "status", "due_on"),
        Index("ix_deadlines_responsible_due", "responsible_oin", "due_on"),
    )
    id: int | None = Field(default=None, primary_key=True)
    stay_id: int = Field(foreign_key="stays.id", index=True)
    subject_id: str = Field(max_length=64, index=True)
    norm: str = Field(max_length=40)
    round: int = 1
    responsible_kind: str = Field(max_length=20)
    responsible_oin: str | None = Field(default=None, max_length=20)
    due_on: date
    status: str = Field(max_length=20, description="open | overdue | met | met-late | not-applicable")
    met_at: datetime | None = utc_col()
    met_by_message_id: str | None = Field(default=None, max_length=36)
    days_late: int | None = Field(default=None, description="when met: days after the due day (0: in time)")
    overdue_at: datetime | None = utc_col(description="when the job found it overdue (the deadline.overdue event)")
    reason: str | None = Field(default=None, max_length=200, description="why not applicable")
    created_at: datetime = utc_col(nullable=False)
    updated_at: datetime = utc_col(nullable=False)


class Triage(SQLModel, table=True):
    """The SOM triage of one stay (gateway/triage): the first pass's outcome, its criterion and since when, the
    round (a new one after the verdict) and the joint decision that closes a round. The facts it rests on, the
    casemanager's override reason and the decision's justification are personal data: sealed (``TRIAGE_FACTS``)."""

    __tablename__ = "triages"
    __table_args__ = (Index("ix_triages_reevaluate_on", "reevaluate_on"),)
    id: int | None = Field(default=None, primary_key=True)
    stay_id: int = Field(foreign_key="stays.id", unique=True)
    subject_id: str = Field(max_length=64, index=True)
    round: int = 1
    moment: str = Field(max_length=20, description="week-3 | after-verdict | new-admission")
    phase: str | None = Field(default=None, max_length=20, description="remand | convicted")
    outcome: str = Field(max_length=20, description="no-priority | priority | postponed | rest-group")
    criterion: str = Field(max_length=40, description="the som.yaml criterion that decided the outcome")
    since: datetime = utc_col(nullable=False, description="when the outcome last changed")
    status: str = Field(max_length=20, description="open | decided (part 3, the joint decision)")
    decision_outcome: str | None = Field(default=None, max_length=60)
    decided_at: datetime | None = utc_col()
    reevaluate_on: date | None = Field(default=None, description="the day time alone may change the outcome")
    facts_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    facts_wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    facts_key_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = utc_col(nullable=False)
    updated_at: datetime = utc_col(nullable=False)


class TriageChange(SQLModel, table=True):
    """One change of a triage's outcome or state: what it was, what it became, and what caused it (a message, the
    passing of time, the joint decision, a new round)."""

    __tablename__ = "triage_changes"
    id: int | None = Field(default=None, primary_key=True)
    triage_id: int = Field(foreign_key="triages.id", index=True)
    round: int
    outcome: str = Field(max_length=20)
    criterion: str = Field(max_length=40)
    previous_outcome: str | None = Field(default=None, max_length=20)
    cause: str = Field(max_length=40, description="the message type, or time | new-round")
    message_id: str | None = Field(default=None, max_length=36)
    changed_at: datetime = utc_col(nullable=False)


class SubjectIdentifier(SQLModel, table=True):
    """Keyed hash of each identifier (BSN, SKN) -> the subject it belongs to."""

    __tablename__ = "subject_identifiers"
    identifier_hash: str = Field(primary_key=True, max_length=64)
    subject_id: str = Field(foreign_key="subjects.id", max_length=64, index=True)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_sender_created", "sender_oin", "created_at"),
        # retention (migration 0004): sender copies still to purge, and purged messages still holding a ciphertext
        Index("ix_messages_sender_purge_open", "sender_purge_due_at",
              postgresql_where=text("purged_at IS NULL"), sqlite_where=text("purged_at IS NULL")),
        Index("ix_messages_ciphertext_left", "purged_at",
              postgresql_where=text("purged_at IS NOT NULL AND payload_ciphertext IS NOT NULL"),
              sqlite_where=text("purged_at IS NOT NULL AND payload_ciphertext IS NOT NULL")),
    )
    id: str = Field(primary_key=True, max_length=36)
    type: str = Field(max_length=40, index=True)
    version: int
    sender_oin: str = Field(max_length=20)
    subject_id: str = Field(max_length=64, index=True)
    purpose: str = Field(max_length=40)
    in_reply_to: str | None = Field(default=None, max_length=36, index=True)
    due_date: date | None = Field(default=None, description="information-request: answer wanted by")
    trace_id: str = Field(max_length=64)
    created_at: datetime = utc_col(nullable=False)
    # envelope encryption: payload sealed with a per-message data key, the data key wrapped by the ring
    payload_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    key_id: str | None = Field(default=None, max_length=40)
    sender_purge_due_at: datetime | None = utc_col()
    purged_at: datetime | None = utc_col()
    # the payload's proof (brb_client/proof.py, migration 0012): the salts of its sections, sealed like the
    # payload; the digest of its digest form; the sender's detached JWS over that form, when it signed
    salts_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    salts_wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    salts_key_id: str | None = Field(default=None, max_length=40)
    payload_digest: str | None = Field(default=None, max_length=80)
    signature: str | None = Field(default=None, max_length=4000)


class Delivery(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "recipient_oin"),
        Index("ix_deliveries_recipient_created", "recipient_oin", "created_at"),
        # the resumable inbox (migration 0005): a recipient's deliveries in the order they committed
        Index("ux_deliveries_inbox_position", "recipient_oin", "inbox_position", unique=True),
        # retention (migration 0004): only copies not yet purged, so the due-query does not wade through history
        Index("ix_deliveries_purge_open", "purge_due_at",
              postgresql_where=text("purged_at IS NULL"), sqlite_where=text("purged_at IS NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(foreign_key="messages.id", max_length=36, index=True)
    recipient_oin: str = Field(max_length=20)
    recipient_kind: str = Field(max_length=20)
    inbox_position: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=20, description="delivered | read | received | accepted | rejected | purged")
    decision: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_col(nullable=False)
    first_read_at: datetime | None = utc_col()
    acknowledged_at: datetime | None = utc_col()
    acknowledgement: str | None = Field(default=None, max_length=20)
    acknowledgement_reason: str | None = Field(default=None, max_length=2000, description="legacy: plain text before migration 0003; new rows leave it NULL")
    # the recipient's free-text reason, sealed like a payload (AAD: views.ack_reason_aad)
    acknowledgement_reason_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    acknowledgement_reason_wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    acknowledgement_reason_key_id: str | None = Field(default=None, max_length=40)
    replied_at: datetime | None = utc_col(description="information-request: when this recipient answered")
    purge_due_at: datetime | None = utc_col()
    purged_at: datetime | None = utc_col()


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    sender_oin: str = Field(primary_key=True, max_length=20)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    message_id: str = Field(max_length=36)
    response: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_col(nullable=False)


class Consent(SQLModel, table=True):
    __tablename__ = "consents"
    id: str = Field(primary_key=True, max_length=36)
    subject_id: str = Field(max_length=64, index=True)
    given_by: str = Field(max_length=20)
    categories: list = json_col()
    recipient_oins: list = json_col()
    recipient_kinds: list = json_col()
    purposes: list = json_col()
    valid_from: datetime = utc_col(nullable=False)
    valid_until: datetime | None = utc_col()
    recorded_by_oin: str = Field(max_length=20)
    evidence_reference: str = Field(max_length=200)
    recorded_at: datetime = utc_col(nullable=False)
    withdrawn_at: datetime | None = utc_col()
    withdrawn_by_oin: str | None = Field(default=None, max_length=20)
    withdrawal_reason: str | None = Field(default=None, max_length=2000, description="legacy: plain text before migration 0003; new rows leave it NULL")
    # the free-text reason for a withdrawal, sealed like a payload (AAD: consents.withdrawal_reason_aad)
    withdrawal_reason_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    withdrawal_reason_wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    withdrawal_reason_key_id: str | None = Field(default=None, max_length=40)


class AuditRecordFields(SQLModel):
    """The audit record (Logboek Dataverwerkingen), declared once. The table below, the chain's canonical
    form, the export columns, the API view and the audit event are all derived from these fields, in
    this order (``gateway/audit/record.py``); the chain hashes them in this order, so never reorder."""

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    id: str = Field(max_length=36, unique=True)
    trace_id: str = Field(max_length=64)
    activity: str = Field(max_length=30, index=True)
    actor_oin: str = Field(max_length=20)
    counterparty_oin: str | None = Field(default=None, max_length=20)
    token_id: str | None = Field(default=None, max_length=200)
    scope: str | None = Field(default=None, max_length=200)
    subject_id: str | None = Field(default=None, max_length=64, index=True)
    message_id: str | None = Field(default=None, max_length=36, index=True)
    purpose: str | None = Field(default=None, max_length=40)
    legal_basis: str | None = Field(default=None, max_length=40)
    rule: str | None = Field(default=None, max_length=100)
    outcome: str = Field(max_length=30)
    detail: str | None = Field(default=None, max_length=2000)
    recorded_at: datetime = utc_col(nullable=False, index=True)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    # added later (migration 0012): hashed only when set, so the records written before keep their hashes
    # (gateway/audit/chain.py canonical_of). A send's record: which content was exchanged, without holding it
    payload_digest: str | None = Field(default=None, max_length=80)
    signature_digest: str | None = Field(default=None, max_length=80)


class AuditRecord(AuditRecordFields, table=True):
    """One processing of personal data, hash-chained by ``seq``."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_actor_seq", "actor_oin", "seq"),
        Index("ix_audit_counterparty_seq", "counterparty_oin", "seq"),
    )


class AuditHead(SQLModel, table=True):
    """The single row every appender locks: it keeps the chain linear across processes."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    hash: str = Field(default="0" * 64, max_length=64)


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox"
    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(__import__("sqlalchemy").Integer, "sqlite"), primary_key=True, autoincrement=True))
    event_id: str = Field(max_length=36, unique=True)
    topic: str = Field(max_length=100)
    type: str = Field(max_length=60)
    key: str = Field(max_length=64, index=True)
    data: dict = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_col(nullable=False)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = utc_col()
    published_at: datetime | None = utc_col(index=True)
    attempts: int = 0
    traceparent: str | None = Field(default=None, max_length=55)  # W3C trace context of the writing transaction (0006)


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    id: str = Field(primary_key=True, max_length=36)
    oin: str = Field(max_length=20, index=True)
    callback_url: str = Field(max_length=2000)
    event_types: list = json_col()
    message_types: list | None = Field(default=None, sa_column=Column(JSON, nullable=True),
                                       description="only events about these message types; NULL: all (migration 0005)")
    secret_ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    secret_wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    secret_key_id: str = Field(max_length=40)
    # the secret before the last rotation, signing beside the new one until ``previous_secret_until``
    # (migration 0008): a subscriber switches its verification without missing a delivery
    previous_secret_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    previous_secret_wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    previous_secret_key_id: str | None = Field(default=None, max_length=40)
    previous_secret_until: datetime | None = utc_col()
    created_at: datetime = utc_col(nullable=False)
    deleted_at: datetime | None = utc_col()


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription; retried with backoff, then ``dead`` (the dead-letter list)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"), Index("ix_webhook_due", "status", "next_attempt_at"))
    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(max_length=36, index=True)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=60)
    body: str
    status: str = Field(max_length=20, description="pending | delivered | dead")
    attempts: int = 0
    next_attempt_at: datetime = utc_col(nullable=False)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = utc_col(nullable=False)
    delivered_at: datetime | None = utc_col()


# every value sealed with the key ring, by table (``brb key rewrap`` walks them all)
PAYLOAD = SealedColumns("payload_ciphertext", "wrapped_key", "key_id")
PAYLOAD_SALTS = SealedColumns("salts_ciphertext", "salts_wrapped_key", "salts_key_id")
SUBSCRIPTION_SECRET = SealedColumns("secret_ciphertext", "secret_wrapped_key", "secret_key_id")
PREVIOUS_SUBSCRIPTION_SECRET = SealedColumns("previous_secret_ciphertext", "previous_secret_wrapped_key", "previous_secret_key_id")
ACKNOWLEDGEMENT_REASON = SealedColumns("acknowledgement_reason_ciphertext", "acknowledgement_reason_wrapped_key",
                                       "acknowledgement_reason_key_id", legacy_plain="acknowledgement_reason")
WITHDRAWAL_REASON = SealedColumns("withdrawal_reason_ciphertext", "withdrawal_reason_wrapped_key",
                                  "withdrawal_reason_key_id", legacy_plain="withdrawal_reason")
TRIAGE_FACTS = SealedColumns("facts_ciphertext", "facts_wrapped_key", "facts_key_id")
SEALED = ((Message, PAYLOAD), (Message, PAYLOAD_SALTS), (Subscription, SUBSCRIPTION_SECRET), (Subscription, PREVIOUS_SUBSCRIPTION_SECRET),
          (Delivery, ACKNOWLEDGEMENT_REASON), (Consent, WITHDRAWAL_REASON), (Triage, TRIAGE_FACTS))


class KeyRingState(SQLModel, table=True):
    """The fleet's payload key ring (one row, id 1): the key every process seals with, and the retired
    ones (migration 0006; gateway/keyrotation.py)."""

    __tablename__ = "key_ring"
    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    current_id: str = Field(max_length=40)
    retired: list = json_col()
    changed_at: datetime = utc_col(nullable=False)


class KeyHolder(SQLModel, table=True):
    """A running process and the ring keys it holds, recorded every few seconds (its heartbeat)."""

    __tablename__ = "key_holders"
    process_id: str = Field(primary_key=True, max_length=120)
    role: str = Field(max_length=40)
    held: list = json_col()
    current_id: str = Field(max_length=40)
    seen_at: datetime = utc_col(nullable=False, index=True)


class OfficerSession(SQLModel, table=True):
    """One login to the audit pages (migration 0013, gateway/pages/officer.py). The signed cookie carries a random
    session id and this row only its SHA-256, so the table opens no session. Logout, the idle and absolute timeouts
    and ``brb sessions end`` set ``ended_at``: from then on every copy of the cookie leads to the login."""

    __tablename__ = "officer_sessions"
    id: str = Field(primary_key=True, max_length=64, description="SHA-256 (hex) of the cookie's session id")
    officer_sub: str = Field(max_length=255, index=True)
    officer_oin: str = Field(max_length=20, index=True)
    created_at: datetime = utc_col(nullable=False)
    last_seen_at: datetime = utc_col(nullable=False, description="refreshed at most once a minute")
    expires_at: datetime = utc_col(nullable=False, description="login + BRB_SESSION_MAX_AGE_SECONDS")
    ended_at: datetime | None = utc_col()
    end_reason: str | None = Field(default=None, max_length=20, description="logout | idle | expired | ended-by-operator")


class RegistryVersion(SQLModel, table=True):
    """One row (id 1): a counter every change of an organisation or key increments in its own transaction
    (migration 0009). Each process polls it and forgets its cached keys when it moves (gateway/auth/keycache.py)."""

    __tablename__ = "registry_version"
    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
