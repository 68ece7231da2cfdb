"""Paging the inbox, the sent list and the audit records across pages, on both databases: every item
exactly once, oldest first, also when many messages share one instant; the time filters hold on every
page; a cursor of one list is refused by another with the problem ``invalid-request``."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.clock import Clock
from gateway.problems import PROBLEM_BASE
from tests.scenario import Chain


class StillClock(Clock):
    """A clock that stands still until moved: several messages stored at one instant."""

    def __init__(self, at: datetime):
        super().__init__()
        self.at = at

    def now(self) -> datetime:
        return self.at + self.offset


T1 = datetime.now(timezone.utc).replace(microsecond=654321)
T2 = T1 + timedelta(seconds=1)


@pytest.fixture
async def history(client, orgs, services, stay):
    """Vught sends five D&R-plans at T1 (four to Amsterdam, one to Rotterdam) and three to Amsterdam at T2."""
    services.clock = StillClock(T1)
    chain = Chain(client, orgs)

    async def plan(municipality: str) -> str:
        return (await chain.send(orgs.vught, "dr-plan", [f"municipality:{municipality}"])).json()["id"]

    at_t1 = [await plan(m) for m in ("0363", "0599", "0363", "0363", "0363")]
    services.clock.advance(T2 - T1)
    at_t2 = [await plan("0363") for _ in range(3)]
    return at_t1, at_t2


async def walk(client, path: str, headers, size: int, **params) -> list[list[dict]]:
    """Every page of a list, following nextCursor until hasMore is false (a list that never ends fails)."""
    pages, cursor = [], None
    for _ in range(20):
        r = await client.get(path, params={"pageSize": size, **params, **({"cursor": cursor} if cursor else {})}, headers=headers())
        assert r.status_code == 200, r.text
        pages.append(r.json()["items"])
        cursor = r.json()["nextCursor"]
        assert cursor is not None and len(cursor) <= 200  # always a place to go on from, also on the last page
        if not r.json()["hasMore"]:
            return pages
    raise AssertionError(f"still a next page after 20: {[len(p) for p in pages]}")


def ids(pages: list[list[dict]], key: str = "id") -> list:
    return [item[key] for page in pages for item in page]


async def test_the_inbox_pages_through_every_message_once_oldest_first(client, orgs, history):
    at_t1, at_t2 = history
    to_amsterdam = [at_t1[0], *at_t1[2:], *at_t2]
    pages = await walk(client, "/api/v1/inbox", orgs.amsterdam.headers, 2)
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert ids(pages) == to_amsterdam  # four share T1: the order they were delivered in
    assert ids(await walk(client, "/api/v1/inbox", orgs.amsterdam.headers, 7)) == to_amsterdam  # no empty last page
    later = await walk(client, "/api/v1/inbox", orgs.amsterdam.headers, 2, since=T2.isoformat())
    assert [len(p) for p in later] == [2, 1] and ids(later) == at_t2


async def test_the_sent_list_pages_through_messages_of_one_instant_without_loss_or_repeat(client, orgs, history):
    at_t1, at_t2 = history
    for size in (1, 2, 3):
        pages = await walk(client, "/api/v1/messages", orgs.vught.headers, size)
        seen = ids(pages)
        assert len(seen) == len(set(seen)) == 8 and set(seen) == {*at_t1, *at_t2}
        assert [len(p) for p in pages] == [size] * (8 // size) + ([8 % size] if 8 % size else [])
        times = [datetime.fromisoformat(t) for t in ids(pages, "createdAt")]
        assert times == [T1] * 5 + [T2] * 3
    earlier = await walk(client, "/api/v1/messages", orgs.vught.headers, 2, until=T2.isoformat())
    assert sorted(ids(earlier)) == sorted(at_t1)


async def test_audit_records_page_through_every_record_once_in_chain_order(client, orgs, history):
    at_t1, at_t2 = history
    everything = await walk(client, "/api/v1/audit/records", orgs.inspectorate.headers, 200, activity="deliver")
    assert len(everything) == 1 and sorted(ids(everything, "messageId")) == sorted([*at_t1, *at_t2])
    pages = await walk(client, "/api/v1/audit/records", orgs.inspectorate.headers, 3, activity="deliver")
    assert [len(p) for p in pages] == [3, 3, 2]
    seqs = ids(pages, "seq")
    assert seqs == sorted(set(seqs)) and ids(pages) == ids(everything)
    earlier = await walk(client, "/api/v1/audit/records", orgs.inspectorate.headers, 2, activity="deliver", until=T2.isoformat())
    assert sorted(ids(earlier, "messageId")) == sorted(at_t1)
    own = await walk(client, "/api/v1/audit/records", orgs.fg_amsterdam.headers, 2, activity="deliver")
    assert sorted(ids(own, "messageId")) == sorted([at_t1[0], *at_t1[2:], *at_t2])  # not Rotterdam's


def refused(r) -> dict:
    body = r.json()
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert body["type"] == PROBLEM_BASE + "invalid-request" and body["status"] == 400
    assert body["detail"].startswith("1 invalid field(s): query:cursor: not a cursor this API gave out: a cursor of another list")
    return body


async def test_a_cursor_of_one_list_is_refused_by_another(client, orgs, history):
    async def first_cursor(path, org) -> str:
        r = await client.get(path, params={"pageSize": 1}, headers=org.headers())
        return r.json()["nextCursor"]

    inbox = await first_cursor("/api/v1/inbox", orgs.amsterdam)
    sent = await first_cursor("/api/v1/messages", orgs.vught)
    audit = await first_cursor("/api/v1/audit/records", orgs.inspectorate)
    assert "(this is sent)" in refused(await client.get("/api/v1/messages", params={"cursor": inbox}, headers=orgs.vught.headers()))["detail"]
    assert "(this is inbox)" in refused(await client.get("/api/v1/inbox", params={"cursor": sent}, headers=orgs.amsterdam.headers()))["detail"]
    assert "(this is inbox)" in refused(await client.get("/api/v1/inbox", params={"cursor": audit}, headers=orgs.amsterdam.headers()))["detail"]

    def queries_logged() -> int:  # the look-ups recorded in the audit trail so far
        return client.get("/api/v1/audit/records", params={"activity": "audit-query", "pageSize": 200},
                          headers=orgs.inspectorate.headers())

    before = len((await queries_logged()).json()["items"])
    refused(await client.get("/api/v1/audit/records", params={"cursor": inbox}, headers=orgs.inspectorate.headers()))
    after = len((await queries_logged()).json()["items"])
    assert after == before + 1  # only the second listing itself: a refused cursor looked nothing up
