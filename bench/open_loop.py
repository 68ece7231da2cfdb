"""Open-loop sender of the benchmark's Kafka phase (wrk2 is not in Debian): request i starts at t0 + i/rate,
whether or not the earlier ones have been answered, so a slow gateway shows as latency, not as a lower rate.

    python bench/open_loop.py URL TOKENS BODY RATE SECONDS OUT

Each request takes its own single-use token (one per line of TOKENS) and a fresh Idempotency-Key. OUT gets
one JSON line per request: the wall-clock start (time.time(), comparable with the consumer's arrival
time in the benchmark process), the status, the answer's message id and the HTTP latency."""
from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import httpx

GRACE = 15.0  # seconds after the last scheduled send that answers are still waited for


async def send_one(client: httpx.AsyncClient, url: str, token: str, body: bytes, at: float) -> dict:
    """One send, started at ``at`` (loop time); the result line for OUT."""
    await asyncio.sleep(max(0.0, at - asyncio.get_running_loop().time()))
    started_wall, started = time.time(), time.perf_counter()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Idempotency-Key": f"ol-{uuid.uuid4().hex}"}
    try:
        r = await client.post(url, content=body, headers=headers)
        message_id = r.json().get("id") if r.status_code == 201 else None
        status = r.status_code
    except httpx.HTTPError as exc:
        message_id, status = None, f"error:{type(exc).__name__}"
    return {"start": started_wall, "status": status, "id": message_id, "http_ms": (time.perf_counter() - started) * 1e3}


async def run(url: str, tokens: list[str], body: bytes, rate: float, seconds: float) -> list[dict]:
    count = min(len(tokens), int(rate * seconds))
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=seconds + GRACE) as client:
        t0 = asyncio.get_running_loop().time() + 0.2
        tasks = [asyncio.create_task(send_one(client, url, tokens[i], body, t0 + i / rate)) for i in range(count)]
        # bounded: a gateway that cannot keep up leaves sends unanswered at the deadline; they count as failed
        done, pending = await asyncio.wait(tasks, timeout=seconds + GRACE)
        for task in pending:
            task.cancel()
        late = [{"start": None, "status": "error:deadline", "id": None, "http_ms": None} for _ in pending]
        return [t.result() for t in tasks if t in done] + late


def main() -> None:
    url, tokens_file, body_file, rate, seconds, out = sys.argv[1:7]
    tokens = [t for t in open(tokens_file).read().splitlines() if t]
    body = open(body_file, "rb").read()
    results = asyncio.run(run(url, tokens, body, float(rate), float(seconds)))
    with open(out, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
