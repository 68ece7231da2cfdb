"""Workers fail loudly and keep going (issue 16): a subscription whose secret cannot be decrypted is
dead-lettered while every other subscriber gets its deliveries, readiness names a degraded or stuck
worker, and a worker process (`brb dispatcher`) serves /health/* and /metrics on its own port. Real
broker, real loopback receivers, the embedded workers as a gateway runs them."""
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text, update

from gateway.broker import free_port
from gateway.db.models import Subscription
from gateway.workers import worker_tasks
from tests.conftest import eventually, settings_env, settings_for
from tests.integration import test_events as events
from tests.integration.test_events import ROOT, Receiver, subscribe
from tests.scenario import Chain, seed_stay

kafka_services, kclient, korgs, receiver_server = events.kafka_services, events.kclient, events.korgs, events.receiver_server
pytestmark = pytest.mark.broker


@contextlib.asynccontextmanager
async def embedded_workers(services):
    """Relay, dispatcher and retention, supervised and registered for readiness, as ``BRB_RUN_WORKERS`` runs them."""
    stop = asyncio.Event()
    tasks = worker_tasks(services, stop)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)


def metric(metrics: str, name: str, **labels) -> float:
    """A sample's value (0 when the series does not exist yet)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    values = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.split(" ", 1)[0] == want]
    return values[0] if values else 0.0


async def test_a_secret_that_cannot_be_decrypted_dead_letters_that_subscription_only(
        kclient, korgs, kafka_services, receiver_server, log_lines):
    svc = kafka_services
    await seed_stay(svc)
    good_a, good_v, bad = Receiver(failure_rate=0.0), Receiver(failure_rate=0.0), Receiver(failure_rate=0.0)
    await subscribe(kclient, korgs.amsterdam, await receiver_server(good_a))
    await subscribe(kclient, korgs.vught, await receiver_server(good_v))
    tampered = await subscribe(kclient, korgs.amsterdam, await receiver_server(bad))
    keyless = await subscribe(kclient, korgs.vught, await receiver_server(bad))
    async with svc.db.write() as s:  # one ciphertext altered at rest; one sealed under a ring key this gateway lost
        row = await s.get(Subscription, tampered["id"])
        kid, ciphertext = row.secret_key_id, row.secret_ciphertext
        await s.exec(update(Subscription).where(Subscription.id == tampered["id"])
                     .values(secret_ciphertext=ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])))
        await s.exec(update(Subscription).where(Subscription.id == keyless["id"]).values(secret_key_id="retired-2025"))
    before = await kclient.get("/metrics")
    failures_before = metric(before.text, "brb_worker_item_failures_total", worker="dispatcher", reason="undecryptable-secret")
    chain = Chain(kclient, korgs)
    sent = [(await chain.send(korgs.vught, "dr-plan", ["municipality:0363"])).json()["id"] for _ in range(2)]

    async def dead():
        r = await kclient.get("/api/v1/webhook-dead-letters", headers=korgs.operator.headers())
        return r.json()["items"] if len(r.json()["items"]) == 4 else None

    async def delivered():
        return len(good_a.accepted) == 2 and len(good_v.accepted) == 2

    async with embedded_workers(svc):
        await eventually(delivered, timeout=60, interval=0.1)
        letters = await eventually(dead, timeout=30, interval=0.1)
        ready = await kclient.get("/health/ready")

        async def gauged():  # the dispatcher refreshes its gauges each round (at most once a second)
            return metric((await kclient.get("/metrics")).text, "brb_webhook_dead_letters") == 4

        await eventually(gauged, timeout=10, interval=0.1)

    assert bad.calls == 0  # an unsigned or wrongly signed call never leaves the gateway
    for receiver in (good_a, good_v):
        assert sorted(json.loads(body)["data"]["messageId"] for body, _h in receiver.accepted.values()) == sorted(sent)
    by_sub = {}
    for letter in letters:
        by_sub.setdefault(letter["subscriptionId"], []).append(letter["lastError"])
    assert by_sub == {
        tampered["id"]: ["subscription secret cannot be decrypted under ring key "
                         f"{kid!r} (InvalidTag: tampered, or sealed under another key)"] * 2,
        keyless["id"]: ["subscription secret cannot be decrypted: ring key 'retired-2025' is not held by this process"] * 2,
    }

    lines = log_lines.events("webhook.dead-lettered")
    assert sorted(line["subscription_id"] for line in lines) == sorted([tampered["id"], keyless["id"]] * 2)
    assert all(line["level"] == "error" and line["reason"] == "undecryptable-secret" and line["worker"] == "dispatcher"
               and line["event_id"] and line["delivery_id"] for line in lines)
    everything = "\n".join(log_lines.raw) + json.dumps(letters) + ready.text
    for secret in (tampered["secret"], keyless["secret"], tampered["secret"].removeprefix("whsec_")):
        assert secret not in everything
    assert log_lines.events("worker.crashed") == [] and log_lines.events("dispatcher.send-failed") == []

    assert ready.status_code == 200, ready.text  # degraded, not out of service
    dispatcher = ready.json()["workers"]["dispatcher"]
    assert dispatcher["state"] == "running" and dispatcher["lastSuccessAt"] is not None
    assert dispatcher["itemFailures"] == {"undecryptable-secret": 4}
    assert dispatcher["lastError"].startswith("undecryptable-secret: subscription ")
    assert {"relay", "retention"} <= set(ready.json()["workers"])
    metrics = (await kclient.get("/metrics")).text
    assert metric(metrics, "brb_worker_item_failures_total", worker="dispatcher",
                  reason="undecryptable-secret") == failures_before + 4
    assert metric(metrics, "brb_worker_last_success_timestamp_seconds", worker="dispatcher") > 0


async def test_a_stuck_worker_takes_readiness_down_and_names_it(kclient, kafka_services, log_lines):
    svc = kafka_services

    async def states():
        r = await kclient.get("/health/ready")
        workers = r.json().get("workers", {})
        return r.status_code, {name: w["state"] for name, w in workers.items()}, r.json()

    async def both_rounds_done():
        r = (await kclient.get("/health/ready")).json()
        return r.get("workers") and all(r["workers"][n]["lastSuccessAt"] for n in ("relay", "dispatcher", "retention"))

    async def relay_stuck_only():
        status, by_name, body = await states()
        return (status, body) if by_name == {"relay": "stuck", "dispatcher": "running", "retention": "running"} else None

    async def all_running():
        status, by_name, _body = await states()
        return status == 200 and set(by_name.values()) == {"running"}

    async with embedded_workers(svc):
        await eventually(both_rounds_done, timeout=30, interval=0.1)
        assert await all_running()
        async with svc.db.write() as s:  # every relay round fails from now on; the relay never crashes
            await s.exec(text("ALTER TABLE outbox RENAME TO outbox_away"))
        try:
            await log_lines.wait_for("relay.round-failed")
            svc.clock.advance(timedelta(seconds=svc.settings.worker_stuck_min_seconds + 1))
            status, body = await eventually(relay_stuck_only, timeout=30, interval=0.1)
        finally:
            async with svc.db.write() as s:
                await s.exec(text("ALTER TABLE outbox_away RENAME TO outbox"))
        assert status == 503 and body["status"] == "down"
        assert body["checks"] == {"database": "up", "broker": "up"}  # the dependencies are fine: the worker is not
        assert body["workers"]["relay"]["lastError"].startswith("database: ")
        await eventually(all_running, timeout=30, interval=0.1)  # a finished round makes it ready again
    assert log_lines.events("worker.crashed") == []


async def test_brb_dispatcher_serves_readiness_and_metrics_on_its_health_port(database, broker):
    port = free_port()
    settings = settings_for(database, kafka_bootstrap_servers=broker, health_port=port)
    env = {**os.environ, **settings_env(settings)}
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "dispatcher"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            async def ready():
                assert process.poll() is None, process.stderr.read().decode()[-3000:]
                try:
                    r = await http.get("/health/ready")
                except httpx.TransportError:
                    return None
                return r if r.status_code == 200 and r.json()["workers"]["dispatcher"]["lastSuccessAt"] else None

            r = await eventually(ready, timeout=45, interval=0.1)
            body = r.json()
            assert body["status"] == "up" and body["checks"] == {"database": "up", "broker": "up"}
            assert body["workers"]["dispatcher"]["state"] == "running" and set(body["workers"]) == {"dispatcher"}
            assert (await http.get("/health/live")).json() == {"status": "up"}
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
            assert metric(metrics.text, "brb_worker_last_success_timestamp_seconds", worker="dispatcher") > 0
            for family in ("brb_webhook_backlog", "brb_webhook_dead_letters", "brb_webhook_oldest_pending_age_seconds",
                           "brb_dispatcher_consumer_lag"):
                assert f"\n{family} " in metrics.text, family
            missing = await http.get("/nowhere")
            assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
            assert missing.json()["type"].endswith("/not-found")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stderr = process.stderr.read().decode()
    assert code == 0, stderr[-3000:]
    assert '"event": "worker.crashed"' not in stderr
