"""Appending to and verifying the hash chain.

Each record commits to its predecessor: ``hash = HMAC(chain key, prev_hash || canonical_of(chained_values(record)))``.
Appenders lock the single ``audit_head`` row at the very end of their transaction, so the chain stays
linear (no fork, no gap) across concurrent requests and several gateway processes, and the lock is
held only for the last statements before commit."""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Row, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.audit.record import CHAINED_FIELDS, AuditEntry
from gateway.db.engine import core
from gateway.db.models import AuditHead, AuditRecord
from gateway.metrics import AUDIT_HEAD_SEQ, AUDIT_VERIFY_INTACT

GENESIS = "0" * 64


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode  # built once: json.dumps makes one per call


_CHAINED = len(CHAINED_FIELDS)


def chained_values(record: AuditRecord | dict) -> list:
    """The chained fields' values, in order. A record is a stored row (an ORM object or a Core row:
    attributes) or the dict of one being appended."""
    if isinstance(record, dict):
        return [record[name] for name in CHAINED_FIELDS]
    return [getattr(record, name) for name in CHAINED_FIELDS]


_TIME = CHAINED_FIELDS.index("recorded_at")  # the one chained field that holds a time
_SEQ = CHAINED_FIELDS.index("seq")
# how ``records_from`` orders a record's columns: the chained fields, then the link, then the rest
ROW_ORDER = (*CHAINED_FIELDS, "prev_hash", "hash")


# the fields from here on were added after the first release: hashed only when set, so every record written
# before one was added keeps its hash (and one that sets none hashes as it always did)
_ADDED_LATER = CHAINED_FIELDS.index("payload_digest")


def canonical_of(values: list) -> bytes:
    """The chained values as a compact JSON array (the time as ISO 8601 with microseconds), without the
    fields added later (``_ADDED_LATER``) that are unset at its end."""
    if isinstance(values[_TIME], datetime):
        values[_TIME] = values[_TIME].isoformat(timespec="microseconds")
    while len(values) > _ADDED_LATER and values[-1] is None:
        values.pop()
    return _ENCODE(values).encode()


def in_row_order(record: object) -> bool:
    """A Core row whose columns lead with ``ROW_ORDER`` (``records_from`` selects so): its values are
    sliced by position instead of looked up one attribute at a time (a walk reads millions)."""
    return isinstance(record, Row) and tuple(record._fields[:len(ROW_ORDER)]) == ROW_ORDER


# built once: a statement built per append costs about as much as running it
_LOCK_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_INSERT_RECORDS = insert(AuditRecord.__table__)
_MOVE_HEAD = update(AuditHead).where(AuditHead.id == 1).values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))


class AuditChain:
    def __init__(self, key: bytes):
        self._key = key
        self._checkpoint_key = hmac.new(key, b"brb-audit-checkpoint-key|v1", hashlib.sha256).digest()

    def digest(self, prev_hash: str, record: AuditRecord | dict) -> str:
        return self.digest_of(prev_hash, chained_values(record))

    def digest_of(self, prev_hash: str, values: list) -> str:
        """``digest`` of a record given as its chained values (``chained_values``)."""
        return hmac.digest(self._key, prev_hash.encode() + b"|" + canonical_of(values), "sha256").hex()

    def checkpoint_signature(self, seq: int, hash_: str, recorded_at: str) -> str:
        """The signature of a checkpoint (``gateway/audit/checkpoint.py``): an HMAC under a key derived from
        the chain key, so checkpoints and record hashes can never stand in for one another."""
        return hmac.new(self._checkpoint_key, f"checkpoint|{seq}|{hash_}|{recorded_at}".encode(), hashlib.sha256).hexdigest()

    async def append(
        self, session: AsyncSession | AsyncConnection, entries: list[AuditEntry], *, trace_id: str, token_id: str | None,
        scope: str | None, now: datetime,
    ) -> list[dict]:
        """Append ``entries`` in order; returns the stored rows as dicts (one bulk insert)."""
        if not entries:
            return []
        conn = await core(session)
        seq, prev = (await conn.execute(_LOCK_HEAD)).one()
        rows = []
        for entry in entries:
            seq += 1
            row = asdict(entry)
            row.update(seq=seq, id=str(uuid.uuid4()), trace_id=trace_id, token_id=token_id, scope=scope,
                       recorded_at=now, prev_hash=prev)
            row["hash"] = prev = self.digest(prev, row)
            rows.append(row)
        await conn.execute(_INSERT_RECORDS, rows)  # core executemany: one round trip
        await conn.execute(_MOVE_HEAD, {"head_seq": seq, "head_hash": prev})
        AUDIT_HEAD_SEQ.set(seq)  # before commit: a rolled-back append is overtaken by the next one
        return rows


@dataclass(frozen=True)
class Anchor:
    """What the chain is checked against from outside the database (``gateway/audit/checkpoint.py``): the
    newest validly signed checkpoint (seq, hash, time; None when there is none yet), the stored record at
    that seq (None: not there), the highest seq stored, and what is wrong with the checkpoint file itself."""

    seq: int | None
    hash: str | None
    recorded_at: datetime | None
    record: AuditRecord | None
    chain_end: int
    findings: tuple[str, ...] = ()


class ChainBreak(StrEnum):
    """What broke the chain, as a stable code beside the verdict's English ``reason`` (which carries the
    numbers): the audit pages say it in the officer's language, a monitor can alert on it."""

    RECORDS_MISSING = "records-missing"  # a gap in seq before a record
    LINK_MISMATCH = "link-mismatch"  # a record removed, inserted or reordered
    CONTENT_MISMATCH = "content-mismatch"  # a field changed, or a record forged
    HEAD_MISSING = "head-missing"
    HEAD_REWRITTEN = "head-rewritten"
    HEAD_BEHIND = "head-behind"  # records added without the head, or the head rolled back
    END_REMOVED = "end-removed"  # the newest records removed (the head still counts them)
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"  # the chain disagrees with a signed checkpoint outside the database
    CHECKPOINT_FILE = "checkpoint-file"  # the checkpoint file itself is damaged or forged


@dataclass(frozen=True)
class VerifyResult:
    intact: bool
    checked: int
    last_seq: int
    broken_seq: int | None = None
    broken_id: str | None = None
    reason: str | None = None
    reason_code: ChainBreak | None = None
    anchored: bool = False  # checked against a signed checkpoint kept outside the database
    checkpoint_seq: int | None = None
    checkpoint_at: datetime | None = None


Head = AuditHead | None | Callable[[], Awaitable[AuditHead | None]]


async def verify(chain: AuditChain, records: AsyncIterator[AuditRecord], head: Head, *, from_seq: int = 1,
                 prev_hash: str | None = None, anchor: Anchor | None = None) -> VerifyResult:
    """``_walk`` (below); its verdict is also brb_audit_chain_intact (alert when 0)."""
    result = await _walk(chain, records, head, from_seq=from_seq, prev_hash=prev_hash, anchor=anchor)
    AUDIT_VERIFY_INTACT.set(1 if result.intact else 0)
    return result


async def _walk(chain: AuditChain, records: AsyncIterator[AuditRecord], head: Head, *, from_seq: int = 1,
                prev_hash: str | None = None, anchor: Anchor | None = None) -> VerifyResult:
    """Walk the records in seq order and report the first one that breaks the chain, and why; then check
    the head row against where the chain ends, and the chain against the newest signed checkpoint.

    ``head`` is the ``audit_head`` row (None: it is missing), or an async function returning it, called
    after the walk (so records appended during a long walk are not mistaken for a broken head).
    ``prev_hash``: the hash the record at ``from_seq`` must link to, when known (otherwise its own link is
    trusted). ``anchor``: what a checkpoint file says (None: no file configured, the chain is unanchored)."""
    anchored = anchor is not None and anchor.seq is not None
    extra = {"anchored": anchored, "checkpoint_seq": anchor.seq if anchored else None,
             "checkpoint_at": anchor.recorded_at if anchored else None}
    expected_seq, checked = from_seq, 0
    last_seq = from_seq - 1

    def broken(seq: int | None, id_: str | None, code: ChainBreak, reason: str) -> VerifyResult:
        return VerifyResult(False, checked, last_seq, seq, id_, reason, code, **extra)

    sliced = None  # rows in ROW_ORDER (records_from): values by position
    async for record in records:
        if sliced is None:
            sliced = in_row_order(record)
        if sliced:
            values, link, hash_ = list(record[:_CHAINED]), record[_CHAINED], record[_CHAINED + 1]
        else:
            values, link, hash_ = chained_values(record), record.prev_hash, record.hash
        seq = values[_SEQ]
        if prev_hash is None:
            prev_hash = GENESIS if seq == 1 else link  # trust the checkpoint's link
        if seq != expected_seq:
            return broken(seq, record.id, ChainBreak.RECORDS_MISSING,
                          f"record(s) {expected_seq}..{seq - 1} are missing before this record")
        if link != prev_hash:
            return broken(seq, record.id, ChainBreak.LINK_MISMATCH,
                          "the link to the previous record does not match (a record was removed, inserted or reordered)")
        if chain.digest_of(link, values) != hash_:
            return broken(seq, record.id, ChainBreak.CONTENT_MISMATCH,
                          "the record's content does not match its hash (a field was changed or the record was forged)")
        prev_hash, expected_seq, last_seq, checked = hash_, seq + 1, seq, checked + 1
    if callable(head):
        head = await head()
    if head is None:
        return broken(None, None, ChainBreak.HEAD_MISSING, "the chain head row (audit_head) is missing: it was deleted")
    if from_seq <= head.seq and (head.seq != last_seq or (checked and head.hash != prev_hash)):
        if head.seq == last_seq:
            return broken(head.seq, None, ChainBreak.HEAD_REWRITTEN,
                          f"the chain head's hash does not match record {head.seq} (the head was rewritten)")
        if head.seq < last_seq:
            return broken(head.seq + 1, None, ChainBreak.HEAD_BEHIND,
                          f"the chain head says {head.seq} records but the log goes on to {last_seq} "
                          "(records were added without the head, or the head was rolled back)")
        return broken(last_seq + 1, None, ChainBreak.END_REMOVED,
                      f"the chain head says {head.seq} records but the log ends at {last_seq} (records removed at the end)")
    if anchor is not None:
        finding = _against_checkpoint(anchor, head)
        if finding:
            return broken(finding[0], finding[1], ChainBreak.CHECKPOINT_MISMATCH, finding[2])
        if anchor.findings:
            more = f" (and {len(anchor.findings) - 1} more finding(s) in the file)" if len(anchor.findings) > 1 else ""
            return broken(None, None, ChainBreak.CHECKPOINT_FILE, anchor.findings[0] + more)
    return VerifyResult(True, checked, last_seq, **extra)


def _against_checkpoint(anchor: Anchor, head: AuditHead) -> tuple[int | None, str | None, str] | None:
    """(broken seq, broken id, reason) when the stored chain disagrees with the newest signed checkpoint."""
    if anchor.seq is None:
        return None
    vouch = f"a signed checkpoint of {anchor.recorded_at.isoformat(timespec='microseconds')} vouches for record {anchor.seq}"
    if anchor.record is None:
        if anchor.chain_end == 0:
            return anchor.seq, None, f"the chain is empty but {vouch} (every record was removed)"
        if anchor.chain_end < anchor.seq:
            return anchor.seq, None, f"the chain ends at {anchor.chain_end} but {vouch} (records removed at the end)"
        return anchor.seq, None, f"record {anchor.seq} is missing but {vouch} (records were removed)"
    if anchor.record.hash != anchor.hash:
        return (anchor.seq, anchor.record.id,
                f"record {anchor.seq}'s hash differs from the one {vouch} with (the record was replaced or the chain rewritten)")
    if head.seq < anchor.seq:
        return anchor.seq, None, f"the chain head says {head.seq} records but {vouch} (the head was rolled back)"
    return None
