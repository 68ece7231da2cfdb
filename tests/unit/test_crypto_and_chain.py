"""Pure building blocks: envelope encryption, pseudonyms, the hash chain."""
import base64
from datetime import datetime, timezone

import pytest
from cryptography.exceptions import InvalidTag

from gateway.audit.chain import GENESIS, AuditChain, verify
from gateway.crypto import KeyRing, Sealed
from gateway.db.models import AuditHead, AuditRecord
from gateway.pseudonym import Pseudonymizer

K1 = "k1:" + base64.b64encode(b"\x01" * 32).decode()
K2 = "k2:" + base64.b64encode(b"\x02" * 32).decode()


def test_a_sealed_payload_opens_only_with_its_own_message_id_and_untouched():
    ring = KeyRing.parse(K1)
    sealed = ring.seal(b'{"bsn": "999990019"}', aad=b"message-1")
    assert b"999990019" not in sealed.ciphertext and ring.open(sealed, aad=b"message-1") == b'{"bsn": "999990019"}'
    with pytest.raises(InvalidTag):
        ring.open(sealed, aad=b"message-2")  # a payload moved to another message does not open
    flipped = Sealed(sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1]), sealed.wrapped_key, sealed.key_id)
    with pytest.raises(InvalidTag):
        ring.open(flipped, aad=b"message-1")


def test_rotation_writes_with_the_newest_key_and_rewrap_retires_the_old_one():
    old = KeyRing.parse(K1).seal(b"x", aad=b"m")
    both = KeyRing.parse(f"{K1},{K2}")
    assert both.current_id == "k2" and both.seal(b"y", aad=b"n").key_id == "k2"
    moved = both.rewrap(old)
    assert moved.key_id == "k2" and moved.ciphertext == old.ciphertext
    assert KeyRing.parse(K2).open(moved, aad=b"m") == b"x"
    with pytest.raises(KeyError):
        KeyRing.parse(K2).open(old, aad=b"m")


def test_pseudonyms_are_stable_keyed_and_reveal_nothing():
    a, b = Pseudonymizer(b"key-a"), Pseudonymizer(b"key-b")
    assert a.subject_id("bsn", "999990019") == a.subject_id("bsn", "999990019")
    assert a.subject_id("bsn", "999990019") != b.subject_id("bsn", "999990019")
    assert "999990019" not in a.subject_id("bsn", "999990019") and a.identifier_hash("bsn", "1") != a.identifier_hash("skn", "1")


def chain_of(n: int, key: bytes = b"chain-key") -> list[AuditRecord]:
    chain, prev, records = AuditChain(key), GENESIS, []
    for seq in range(1, n + 1):
        r = AuditRecord(seq=seq, id=f"r{seq}", trace_id="t", activity="read", actor_oin="1" * 20, outcome="allow",
                        recorded_at=datetime(2026, 11, 22, 12, 0, seq, tzinfo=timezone.utc), prev_hash=prev, hash="")
        r.hash = prev = chain.digest(prev, r)
        records.append(r)
    return records


async def run_verify(records, head_seq=None, key=b"chain-key"):
    async def walk():
        for r in records:
            yield r

    head = AuditHead(id=1, seq=head_seq if head_seq is not None else (records[-1].seq if records else 0),
                     hash=records[-1].hash if records else GENESIS)
    return await verify(AuditChain(key), walk(), head)


async def test_an_intact_chain_verifies():
    result = await run_verify(chain_of(5))
    assert result.intact and result.checked == 5


async def test_the_chain_key_matters():
    assert not (await run_verify(chain_of(3), key=b"another-key")).intact


async def test_each_kind_of_tampering_names_the_record():
    changed = chain_of(5)
    changed[2].purpose = "public-order"
    assert (await run_verify(changed)).broken_seq == 3

    deleted = chain_of(5)
    del deleted[1]
    result = await run_verify(deleted)
    assert result.broken_seq == 3 and "missing" in result.reason

    swapped = chain_of(5)
    swapped[1].seq, swapped[2].seq = 3, 2
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert (await run_verify(swapped)).broken_seq == 2

    truncated = chain_of(5)[:4]
    result = await run_verify(truncated, head_seq=5)
    assert not result.intact and "ends at 4" in result.reason


def test_a_row_read_by_position_hashes_as_the_record_read_by_name():
    """The verifier slices Core rows in ROW_ORDER (a walk reads millions); their digest must be the one the
    record got when it was appended, whatever the path: dict at append, ORM object, row by position."""
    from sqlalchemy import create_engine, insert, select

    from gateway.audit.chain import ROW_ORDER, chained_values, in_row_order
    from gateway.audit.record import CHAINED_FIELDS

    records = chain_of(4)
    engine = create_engine("sqlite://")
    AuditRecord.__table__.create(engine)
    columns = [AuditRecord.__table__.c[name] for name in ROW_ORDER]
    with engine.begin() as conn:
        conn.execute(insert(AuditRecord.__table__), [r.model_dump() for r in records])
        rows = conn.execute(select(*columns).order_by(AuditRecord.seq)).all()
    chain = AuditChain(b"chain-key")
    for record, row in zip(records, rows, strict=True):
        assert in_row_order(row) and not in_row_order(record)
        by_position = list(row[:len(CHAINED_FIELDS)])
        assert by_position == chained_values(record)
        assert chain.digest_of(row.prev_hash, by_position) == record.hash == chain.digest(record.prev_hash, record)


async def test_a_changed_row_read_by_position_is_caught():
    from sqlalchemy import create_engine, insert, select, update

    from gateway.audit.chain import ROW_ORDER

    records = chain_of(3)
    engine = create_engine("sqlite://")
    AuditRecord.__table__.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(AuditRecord.__table__), [r.model_dump() for r in records])
        conn.execute(update(AuditRecord.__table__).where(AuditRecord.seq == 2).values(outcome="deny"))
        rows = conn.execute(select(*(AuditRecord.__table__.c[n] for n in ROW_ORDER)).order_by(AuditRecord.seq)).all()

    async def walk():
        for row in rows:
            yield row

    head = AuditHead(id=1, seq=3, hash=records[-1].hash)
    result = await verify(AuditChain(b"chain-key"), walk(), head)
    assert not result.intact and result.broken_seq == 2 and "content" in result.reason
