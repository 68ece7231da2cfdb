"""A separate gateway process for the race tests: its own app, engine and connection pool against the
shared database. It reads one request per stdin line, sends it at the wall-clock instant the line names
(so that several processes hit the same row at once) and writes the answer as one JSON line."""
import asyncio
import json
import sys
import time

import httpx
from sqlalchemy import text

from gateway.app import create_app
from gateway.services import Services
from gateway.settings import Settings


async def main(settings_json: str) -> None:
    services = Services.from_settings(Settings(**json.loads(settings_json)))
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        async with services.db.read() as session:  # warm up: a pooled connection and the app's first request
            await session.exec(text("SELECT 1"))
        await client.get("/api/v1/inbox")
        print("ready", flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            spec = json.loads(line)
            await asyncio.sleep(max(0.0, spec["at"] - time.time()))
            r = await client.request(spec["method"], spec["path"], params=spec.get("params"), json=spec.get("json"),
                                     headers=spec["headers"])
            print(json.dumps({"status": r.status_code, "contentType": r.headers.get("content-type"),
                              "body": r.json() if r.content else None}), flush=True)
    await services.db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
