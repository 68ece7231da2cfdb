"""The resumable inbox: a connector stores the cursor of its last poll and later gets exactly what
arrived since, on both databases, also while sends to it commit side by side."""
from __future__ import annotations

import asyncio

from tests.scenario import EMPTY_INBOX, Chain


async def poll(client, org, cursor: str | None, size: int = 200) -> dict:
    params = {"pageSize": size, **({"cursor": cursor} if cursor else {})}
    r = await client.get("/api/v1/inbox", params=params, headers=org.headers())
    assert r.status_code == 200, r.text
    return r.json()


async def drain(client, org, cursor: str | None, size: int = 200) -> tuple[list[str], str]:
    """Everything after ``cursor`` now, page after page, and the cursor to resume from."""
    seen = []
    while True:
        page = await poll(client, org, cursor, size)
        seen += [m["id"] for m in page["items"]]
        assert page["nextCursor"], "every page gives a cursor to resume from"
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            return seen, cursor


async def test_the_last_page_gives_a_cursor_that_later_returns_only_what_arrived_since(client, orgs, stay):
    chain = Chain(client, orgs)
    assert await poll(client, orgs.amsterdam, None) == EMPTY_INBOX
    first = [(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"] for _ in range(3)]
    seen, cursor = await drain(client, orgs.amsterdam, None, size=2)
    assert seen == first

    quiet = await poll(client, orgs.amsterdam, cursor)
    assert quiet == {"items": [], "nextCursor": cursor, "hasMore": False}  # nothing new: stay where you are

    later = [(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"] for _ in range(2)]
    await chain.send(orgs.vught, "dr-plan", ["municipality:0599"])  # Rotterdam's, not Amsterdam's
    seen_again, resumed = await drain(client, orgs.amsterdam, cursor)
    assert seen_again == later  # not the last one seen before, nothing of another organisation
    assert resumed != cursor and (await poll(client, orgs.amsterdam, resumed))["items"] == []


async def test_a_poller_running_beside_parallel_senders_sees_every_message_exactly_once(client, orgs, stay):
    """Four senders' twelve messages commit side by side (PostgreSQL runs them concurrently) while a connector
    polls with its cursor: the union of its polls is every message, each once, in inbox order."""
    chain = Chain(client, orgs)
    sent: list[str] = []
    done = asyncio.Event()

    async def sender(n: int) -> None:
        for _ in range(n):
            sent.append((await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"])

    async def poller() -> list[str]:
        seen, cursor = [], None
        while not done.is_set():
            batch, cursor = await drain(client, orgs.amsterdam, cursor, size=3)
            seen += batch
            await asyncio.sleep(0)
        batch, cursor = await drain(client, orgs.amsterdam, cursor, size=3)  # after the last commit
        return seen + batch

    polling = asyncio.create_task(poller())
    await asyncio.gather(*(sender(3) for _ in range(4)))
    done.set()
    seen = await polling
    assert len(seen) == len(set(seen)) == 12 and set(seen) == set(sent)
