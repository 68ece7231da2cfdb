"""A separate gateway process for the concurrency test: sends N messages through its own app,
its own engine and connection pool, against the shared database. Prints how many got a 201."""
import asyncio
import json
import sys
import uuid

import httpx

from gateway.app import create_app
from gateway.auth.mint import mint
from gateway.services import Services
from gateway.settings import Settings


async def main(settings_json: str, sender_json: str, count: int, concurrency: int) -> None:
    settings = Settings(**json.loads(settings_json))
    sender = json.loads(sender_json)
    services = Services.from_settings(settings)
    app = create_app(services=services)
    body = json.loads(sys.stdin.read())
    gate = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(client):
        nonlocal ok
        async with gate:
            token = mint(sender["jwk"], sender["oin"], settings.audience, "messages:send")
            r = await client.post("/api/v1/messages", json=body,
                                  headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
            ok += r.status_code == 201
            if r.status_code != 201:
                print(r.status_code, r.text, file=sys.stderr)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client:
        await asyncio.gather(*(one(client) for _ in range(count)))
    await services.db.dispose()
    print(ok)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
