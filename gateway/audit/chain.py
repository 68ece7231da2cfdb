"""Appending to and verifying the hash chain.

Each record commits to its predecessor: ``hash = HMAC(chain key, prev_hash || canonical(record))``.
Appenders lock the single ``audit_head`` row at the very end of their transaction, so the chain stays
linear (no fork, no gap) across concurrent requests and several gateway processes, and the lock is
held only for the last statements before commit."""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import AuditHead, AuditRecord

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """What a caller says about one processing; the chain adds seq, id, time and hashes."""

    activity: str
    actor_oin: str
    outcome: str
    counterparty_oin: str | None = None
    subject_id: str | None = None
    message_id: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    rule: str | None = None
    detail: str | None = None


CHAINED_FIELDS = (
    "seq", "id", "trace_id", "activity", "actor_oin", "counterparty_oin", "token_id", "scope", "subject_id",
    "message_id", "purpose", "legal_basis", "rule", "outcome", "detail", "recorded_at",
)


def canonical(record: AuditRecord | dict) -> bytes:
    get = record.get if isinstance(record, dict) else lambda name: getattr(record, name)
    values = []
    for name in CHAINED_FIELDS:
        value = get(name)
        values.append(value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value)
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()


class AuditChain:
    def __init__(self, key: bytes):
        self._key = key

    def digest(self, prev_hash: str, record: AuditRecord | dict) -> str:
        return hmac.new(self._key, prev_hash.encode() + b"|" + canonical(record), hashlib.sha256).hexdigest()

    async def append(
        self, session: AsyncSession, entries: list[AuditEntry], *, trace_id: str, token_id: str | None,
        scope: str | None, now: datetime,
    ) -> list[dict]:
        """Append ``entries`` in order; returns the stored rows as dicts (one bulk insert)."""
        if not entries:
            return []
        head = (await session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update())).one()
        seq, prev = head.seq, head.hash
        rows = []
        for entry in entries:
            seq += 1
            row = {f.name: getattr(entry, f.name) for f in fields(entry)}
            row.update(seq=seq, id=str(uuid.uuid4()), trace_id=trace_id, token_id=token_id, scope=scope,
                       recorded_at=now, prev_hash=prev)
            row["hash"] = prev = self.digest(prev, row)
            rows.append(row)
        await session.exec(insert(AuditRecord.__table__), params=rows)  # core executemany: one round trip
        head.seq, head.hash = seq, prev
        session.add(head)
        return rows


@dataclass(frozen=True)
class VerifyResult:
    intact: bool
    checked: int
    last_seq: int
    broken_seq: int | None = None
    broken_id: str | None = None
    reason: str | None = None


async def verify(chain: AuditChain, records: AsyncIterator[AuditRecord], head: AuditHead | None, *, from_seq: int = 1) -> VerifyResult:
    """Walk the records in seq order and report the first one that breaks the chain, and why."""
    expected_seq, prev_hash, checked = from_seq, None, 0
    last_seq = from_seq - 1
    async for record in records:
        if prev_hash is None:
            prev_hash = GENESIS if record.seq == 1 else record.prev_hash  # trust the checkpoint's link
        if record.seq != expected_seq:
            return VerifyResult(False, checked, last_seq, record.seq, record.id,
                                f"record(s) {expected_seq}..{record.seq - 1} are missing before this record")
        if record.prev_hash != prev_hash:
            return VerifyResult(False, checked, last_seq, record.seq, record.id,
                                "the link to the previous record does not match (a record was removed, inserted or reordered)")
        if chain.digest(record.prev_hash, record) != record.hash:
            return VerifyResult(False, checked, last_seq, record.seq, record.id,
                                "the record's content does not match its hash (a field was changed or the record was forged)")
        prev_hash, expected_seq, last_seq, checked = record.hash, record.seq + 1, record.seq, checked + 1
    if head is not None and from_seq <= head.seq and (head.seq != last_seq or (prev_hash and head.hash != prev_hash)):
        return VerifyResult(False, checked, last_seq, last_seq + 1, None,
                            f"the chain head says {head.seq} records but the log ends at {last_seq} (records removed at the end)")
    return VerifyResult(True, checked, last_seq)
