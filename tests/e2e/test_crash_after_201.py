"""A crash after a 201 loses nothing: the gateway process is killed (SIGKILL) right after answering,
a new one starts on the same database, and the message, its audit trail and its event are all there."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlmodel import func, select

from gateway.broker import free_port
from gateway.db.models import AuditRecord, OutboxEvent
from tests.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]


def start_gateway(services, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, **settings_env(services.settings)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not start")


async def test_a_message_answered_201_survives_a_sigkill_of_the_gateway(orgs, services, stay):
    plan = json.loads((ROOT / "contracts/examples/dr-plan/valid-full.json").read_text())
    body = {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"], "payload": plan}
    port = free_port()
    first = start_gateway(services, port)
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/messages", json=body,
                       headers=orgs.vught.headers(**{"Idempotency-Key": "crash-1"}), timeout=30)
        assert r.status_code == 201
    finally:
        first.send_signal(signal.SIGKILL)  # no shutdown, no flush: the 201 is all we have
        first.wait(10)

    second = start_gateway(services, port)
    try:
        mid = r.json()["id"]
        read = httpx.get(f"http://127.0.0.1:{port}/api/v1/messages/{mid}", params={"purpose": "aftercare"},
                         headers=orgs.amsterdam.headers(), timeout=30)
        assert read.status_code == 200 and read.json()["payload"]["sections"]["housing"]
        again = httpx.post(f"http://127.0.0.1:{port}/api/v1/messages", json=body,
                           headers=orgs.vught.headers(**{"Idempotency-Key": "crash-1"}), timeout=30)
        assert again.status_code == 201 and again.json() == r.json()  # the retry after the crash is recognised
    finally:
        second.terminate()
        second.wait(10)
    async with services.db.read() as s:
        assert (await s.exec(select(func.count()).select_from(AuditRecord).where(AuditRecord.message_id == mid))).one() >= 5
        events = (await s.exec(select(OutboxEvent.type).where(OutboxEvent.type == "message.delivered"))).all()
    assert events == ["message.delivered"]  # waiting for the relay, not lost
    assert uuid.UUID(mid)
