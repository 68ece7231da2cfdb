"""The one cursor format: what the API gives out comes back as the same position, and anything else a
connector (or an attacker) might send is the problem ``invalid-request`` at ``query:cursor``, never a 500."""
from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

from gateway.audit.queries import AUDIT_RECORDS
from gateway.db.dialect import MAX_BIGINT
from gateway.db.paging import MAX_CURSOR_LENGTH
from gateway.exchange.inbox import INBOX
from gateway.exchange.listing import SENT
from gateway.problems import PROBLEM_BASE, Problem

AT = datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)
MESSAGE = "0b6c8a8e-4f1d-4c38-9d7e-2f4b8f2a9c11"


def forge(body) -> str:
    """A cursor as someone might hand-make one: base64url of any JSON, padding stripped."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def refused(keyset, cursor: str) -> str:
    with pytest.raises(Problem) as caught:
        keyset.decode(cursor)
    problem = caught.value
    assert problem.type.uri == PROBLEM_BASE + "invalid-request" and problem.type.status == 400
    assert problem.detail.startswith("1 invalid field(s): query:cursor: not a cursor this API gave out")
    return problem.detail


@pytest.mark.parametrize(("keyset", "key"), [
    (INBOX, (0,)), (INBOX, (1,)), (INBOX, (MAX_BIGINT,)), (SENT, (AT.replace(microsecond=0), MESSAGE)),
    (SENT, (AT, MESSAGE)), (AUDIT_RECORDS, (1,)), (AUDIT_RECORDS, (MAX_BIGINT,)),
])
def test_a_cursor_given_out_comes_back_as_the_same_position(keyset, key):
    cursor = keyset.encode(key)
    assert keyset.decode(cursor) == key
    assert len(cursor) <= MAX_CURSOR_LENGTH and "=" not in cursor


def test_a_time_in_another_zone_is_given_out_in_utc_and_means_the_same_instant():
    amsterdam = AT.astimezone(timezone(timedelta(hours=1)))
    (back, ident) = SENT.decode(SENT.encode((amsterdam, MESSAGE)))
    assert back == AT and back.utcoffset() == timedelta(0) and ident == MESSAGE


def test_no_cursor_or_an_empty_one_is_the_first_page():
    assert INBOX.decode(None) is None and INBOX.decode("") is None


def test_a_cursor_of_one_list_is_refused_by_another():
    inbox_cursor, sent_cursor, audit_cursor = INBOX.encode((5,)), SENT.encode((AT, MESSAGE)), AUDIT_RECORDS.encode((5,))
    assert "a cursor of another list (this is sent)" in refused(SENT, inbox_cursor)
    assert "(this is inbox)" in refused(INBOX, sent_cursor)
    assert "(this is audit-records)" in refused(AUDIT_RECORDS, inbox_cursor)
    assert "(this is inbox)" in refused(INBOX, audit_cursor)


def body(list_name: str, after: list) -> dict:
    return {"v": 1, "list": list_name, "after": after}


@pytest.mark.parametrize(("keyset", "cursor", "why"), [
    (INBOX, "!!!", "not base64url"),
    (INBOX, "eyJ2IjoxfQ==", "not base64url"),  # padding: the API never writes it
    (INBOX, "a" * (MAX_CURSOR_LENGTH + 1), "not base64url"),
    (INBOX, forge(b"\xff\xfe\x00"), "not an encoded cursor"),  # no UTF-8
    (INBOX, forge(b"not json"), "not an encoded cursor"),
    (INBOX, "eyJ2IjoxL", "not an encoded cursor"),  # a length base64 cannot have
    (INBOX, forge([AT.isoformat(), 5]), "not a cursor of this version"),  # the inbox's former format
    (AUDIT_RECORDS, "42", "not an encoded cursor"),  # the audit records' former format
    (INBOX, forge({**body("inbox", [5]), "v": 2}), "not a cursor of this version"),
    (INBOX, forge({**body("inbox", [5]), "extra": 1}), "not a cursor of this version"),
    (SENT, forge(body("sent", [AT.isoformat()])), "a key of the wrong shape"),
    (SENT, forge(body("sent", {"at": AT.isoformat()})), "a key of the wrong shape"),
    (INBOX, forge(body("inbox", [MAX_BIGINT + 1])), "an id out of range (0..9223372036854775807)"),
    (INBOX, forge(body("inbox", [-1])), "an id out of range"),
    (INBOX, forge(body("inbox", [AT.isoformat(), 5])), "a key of the wrong shape"),  # the inbox's (time, id) cursor before 0005
    (AUDIT_RECORDS, forge(body("audit-records", [MAX_BIGINT + 1])), "an id out of range (0..9223372036854775807)"),
    (AUDIT_RECORDS, forge(body("audit-records", [10**30])), "an id out of range"),  # past 64 bits
    (AUDIT_RECORDS, forge(body("audit-records", [5.0])), "a key that is no integer"),
    (AUDIT_RECORDS, forge(body("audit-records", [True])), "a key that is no integer"),
    (AUDIT_RECORDS, forge(body("audit-records", ["5"])), "a key that is no integer"),
    (SENT, forge(body("sent", ["2026-11-01T09:00:00", MESSAGE])), "a time without an offset"),
    (SENT, forge(body("sent", ["2026-11-01", MESSAGE])), "a time without an offset"),
    (SENT, forge(body("sent", ["yesterday", MESSAGE])), "a time that is no RFC 3339 date-time"),
    (SENT, forge(body("sent", [1700000000, MESSAGE])), "a time that is no RFC 3339 date-time"),
    (SENT, forge(body("sent", ["0001-01-01T00:00:00+01:00", MESSAGE])), "a time out of range"),
    (SENT, forge(body("sent", ["2026-11-01T10:00:00+01:00", MESSAGE])), "not as this API writes it"),  # UTC only
    (SENT, forge(body("sent", [AT.isoformat(), MESSAGE.upper()])), "an id that is no UUID"),
    (SENT, forge(body("sent", [AT.isoformat(), MESSAGE.replace("-", "")])), "an id that is no UUID"),
    (SENT, forge(body("sent", [AT.isoformat(), "' OR 1=1 --"])), "an id that is no UUID"),
    (SENT, forge(body("sent", [AT.isoformat(), 7])), "an id that is no UUID"),
    (SENT, forge(json.dumps(body("sent", [AT.isoformat(), MESSAGE]), indent=1).encode()), "not as this API writes it"),
    (INBOX, forge(json.dumps(body("inbox", [5]), indent=1).encode()), "not as this API writes it"),
])
def test_a_cursor_the_api_did_not_give_out_is_refused_with_the_reason(keyset, cursor, why):
    assert why in refused(keyset, cursor)


@pytest.mark.parametrize("keyset,key", [(INBOX, (123456,)), (SENT, (AT, MESSAGE)), (AUDIT_RECORDS, (987654321,))])
def test_every_truncation_of_a_cursor_is_refused(keyset, key):
    cursor = keyset.encode(key)
    for end in range(1, len(cursor)):
        refused(keyset, cursor[:end])


@pytest.mark.parametrize("keyset,key", [(INBOX, (123456,)), (SENT, (AT, MESSAGE)), (AUDIT_RECORDS, (987654321,))])
def test_a_tampered_cursor_is_refused_or_names_a_position_of_the_same_list(keyset, key):
    """Cursors are not secret (they hold a time and an id the caller was shown): a change that still
    decodes is only another position in the caller's own list. Anything else is refused, never a 500."""
    cursor, alphabet, rnd = keyset.encode(key), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", random.Random(13)
    outcomes = {"refused": 0, "position": 0}
    for _ in range(2000):
        at = rnd.randrange(len(cursor))
        tampered = cursor[:at] + rnd.choice(alphabet.replace(cursor[at], "")) + cursor[at + 1:]
        try:
            position = keyset.decode(tampered)
        except Problem as problem:
            assert problem.type.slug == "invalid-request" and "query:cursor" in problem.detail
            outcomes["refused"] += 1
        else:
            assert position != key and keyset.encode(position) == tampered
            outcomes["position"] += 1
    assert outcomes["refused"] > outcomes["position"] > 0
