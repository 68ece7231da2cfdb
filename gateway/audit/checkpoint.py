"""Signed checkpoints of the audit chain, kept OUTSIDE the database.

The hash chain alone cannot show that its end was cut off: someone who can write the database can
delete the newest records and set ``audit_head`` to the new last record (or reset it to the genesis
state, or delete it) and what is left is still a perfectly linked chain. A checkpoint closes that gap:
``{seq, hash, recordedAt, signature}`` says "on <recordedAt> the chain reached record <seq>, whose hash
was <hash>", signed with an HMAC under a key derived from the chain key (``AuditChain.checkpoint_signature``),
so whoever can write the database but does not hold the key cannot forge or move one.

Each checkpoint is appended as one JSON line to ``BRB_AUDIT_CHECKPOINT_FILE`` (fsynced; the file belongs
on a volume the database operator cannot write) and published as an ``audit.checkpoint`` event on the
audit topic (via the outbox), so a copy also lives in the audit archive. The verifier
(``gateway.audit.queries.verify_chain``) checks the chain against the newest valid checkpoint.

A checkpoint is only written for a chain that extends the previous checkpoint: the records after it are
verified first (incrementally), and a head that went backwards is refused, so a rolled-back chain is
never vouched for."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import col, func, select

from gateway.audit.chain import GENESIS, ROW_ORDER, Anchor, AuditChain, verify
from gateway.db.models import AuditHead, AuditRecord
from gateway.outbox.events import audit_checkpoint
from gateway.services import SYSTEM, Services
from gateway.settings import Settings

try:  # a lock against a second writer (another gateway process, the CronJob); POSIX only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

log = logging.getLogger("brb.audit")
CHUNK = 5000  # records per read: fewer round trips for a walk over millions
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    recorded_at: str  # ISO 8601, exactly as signed and stored
    signature: str

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.recorded_at)

    def as_dict(self) -> dict:
        return {"seq": self.seq, "hash": self.hash, "recordedAt": self.recorded_at, "signature": self.signature}

    def valid_for(self, chain: AuditChain) -> bool:
        return hmac.compare_digest(self.signature, chain.checkpoint_signature(self.seq, self.hash, self.recorded_at))


class CheckpointRefused(Exception):
    """The chain does not extend the newest checkpoint: no checkpoint is written for it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckpointLog:
    """What the checkpoint file holds: its newest valid checkpoint, and every line that is not one."""

    latest: Checkpoint | None
    valid: int
    findings: tuple[str, ...]


def _chain(settings: Settings) -> AuditChain:
    return AuditChain(settings.audit_chain_key.get_secret_value().encode())


def _parse(line: bytes) -> Checkpoint | None:
    try:
        d = json.loads(line)
        cp = Checkpoint(seq=d["seq"], hash=d["hash"], recorded_at=d["recordedAt"], signature=d["signature"])
        if not (isinstance(cp.seq, int) and all(isinstance(v, str) for v in (cp.hash, cp.recorded_at, cp.signature))):
            return None
        cp.when  # noqa: B018 - a parseable time
        return cp
    except (ValueError, KeyError, TypeError):
        return None


def _scan(lines: Iterable[bytes], chain: AuditChain) -> tuple[Checkpoint | None, int, list[str]]:
    latest, valid, findings = None, 0, []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cp = _parse(line)
        if cp is None:
            findings.append(f"line {n} of the checkpoint file is not a readable checkpoint (edited or damaged)")
        elif not cp.valid_for(chain):
            findings.append(f"line {n} of the checkpoint file (record {cp.seq}, {cp.recorded_at}) has a bad signature: "
                            "it was edited or forged")
        else:
            valid += 1
            if latest is None or cp.seq >= latest.seq:
                latest = cp
    return latest, valid, findings


def read_checkpoints(settings: Settings) -> CheckpointLog:
    """Read the whole checkpoint file, verifying each line's signature. A missing file has no checkpoints;
    an unreadable one is a finding."""
    path = settings.audit_checkpoint_file
    if not path:
        return CheckpointLog(None, 0, ())
    try:
        with Path(path).open("rb") as f:  # line by line: the file grows by a line per interval with activity
            latest, valid, findings = _scan(f, _chain(settings))
    except FileNotFoundError:
        return CheckpointLog(None, 0, ())
    except OSError as exc:
        return CheckpointLog(None, 0, (f"the checkpoint file could not be read ({exc.__class__.__name__})",))
    return CheckpointLog(latest, valid, tuple(findings))


def latest_checkpoint(settings: Settings) -> Checkpoint | None:
    """The newest checkpoint in the file whose signature is valid (lines with a bad one are skipped)."""
    return read_checkpoints(settings).latest


def _latest_from_tail(path: Path, chain: AuditChain) -> Checkpoint | None:
    """The writer's view: the newest valid checkpoint among the last lines (the whole file if need be)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return None
    lines = tail.split(b"\n")
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first one is probably cut
    latest, _valid, _findings = _scan(lines, chain)
    if latest is None and size > TAIL_BYTES:
        with path.open("rb") as f:
            latest, _valid, _findings = _scan(f, chain)
    return latest


# in the chain's ROW_ORDER, then the rest: the verifier slices the values by position (gateway/audit/chain.py)
_RECORD_COLUMNS = tuple(sorted(AuditRecord.__table__.columns,
                               key=lambda c: ROW_ORDER.index(c.name) if c.name in ROW_ORDER else len(ROW_ORDER)))


async def records_from(services: Services, from_seq: int, upto: int | None = None) -> AsyncIterator[AuditRecord]:
    """Audit records in seq order from ``from_seq`` (up to ``upto``), read in chunks."""
    after = from_seq - 1
    while True:
        q = select(*_RECORD_COLUMNS).where(AuditRecord.seq > after)  # rows, not ORM objects: a walk reads millions
        if upto is not None:
            q = q.where(AuditRecord.seq <= upto)
        async with services.db.read() as session:  # Core on the session's connection: rows, no ORM loading
            rows = (await (await session.connection()).execute(q.order_by(col(AuditRecord.seq)).limit(CHUNK))).all()
        if not rows:
            return
        for r in rows:
            yield r
        after = rows[-1].seq


async def anchor_for(services: Services) -> Anchor | None:
    """What the verifier checks the chain against: the newest valid checkpoint, the stored record it
    vouches for, where the chain ends now, and what is wrong with the file. None: no file configured."""
    if not services.settings.audit_checkpoint_file:
        return None
    book = read_checkpoints(services.settings)
    record, end = None, 0
    async with services.db.read() as session:
        if book.latest is not None:
            record = await session.get(AuditRecord, book.latest.seq)
        end = (await session.exec(select(func.max(AuditRecord.seq)))).one() or 0
    cp = book.latest
    return Anchor(seq=cp.seq if cp else None, hash=cp.hash if cp else None, recorded_at=cp.when if cp else None,
                  record=record, chain_end=end, findings=book.findings)


def _append(fd: int, path: Path, line: bytes, created: bool) -> None:
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        line = b"\n" + line  # a line cut short by a crash stays on its own line
    os.write(fd, line)
    os.fsync(fd)
    if created:  # make the new directory entry durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


async def write_checkpoint(services: Services) -> Checkpoint | None:
    """Sign the chain's head and append it to the checkpoint file and the audit stream. None when the head
    has not moved since the newest checkpoint (or nothing was recorded yet); ``CheckpointRefused`` when
    the chain does not extend the newest checkpoint."""
    settings = services.settings
    if not settings.audit_checkpoint_file:
        raise RuntimeError("no checkpoint file configured (BRB_AUDIT_CHECKPOINT_FILE)")
    path = Path(settings.audit_checkpoint_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        if fcntl is not None:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)  # released by close
        last = _latest_from_tail(path, services.audit)
        async with services.db.read() as session:
            head = await session.get(AuditHead, 1)
            head = (head.seq, head.hash) if head is not None else None
        if head is None:
            raise CheckpointRefused("the chain head row (audit_head) is missing")
        head_seq, head_hash = head
        if last is not None and (head_seq, head_hash) == (last.seq, last.hash):
            return None
        if last is None and head_seq == 0:
            return None
        if last is not None and head_seq <= last.seq:
            raise CheckpointRefused(
                f"the chain head is at record {head_seq} but the checkpoint of {last.recorded_at} vouches for record "
                f"{last.seq}: the head was rolled back or rewritten")
        start = last.seq + 1 if last else 1
        head_row = AuditHead(id=1, seq=head_seq, hash=head_hash)
        result = await verify(services.audit, records_from(services, start, upto=head_seq), head_row, from_seq=start,
                              prev_hash=last.hash if last else GENESIS)
        if not result.intact:
            raise CheckpointRefused(f"record {result.broken_seq}: {result.reason}")
        now = services.clock.now().isoformat(timespec="microseconds")
        cp = Checkpoint(head_seq, head_hash, now, services.audit.checkpoint_signature(head_seq, head_hash, now))
        async with services.unit_of_work(SYSTEM) as uow:  # no audit record: a checkpoint must not move the head
            uow.emit(audit_checkpoint(cp.as_dict()))
            await asyncio.to_thread(_append, fd, path, (json.dumps(cp.as_dict(), separators=(",", ":")) + "\n").encode(), created)
        log.debug("audit checkpoint: record %d", cp.seq)
        return cp
    finally:
        os.close(fd)
