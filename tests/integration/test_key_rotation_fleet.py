"""The rotation runbook (deploy/runbook-key-rotation.md) against a running fleet: two `brb serve` processes
on loopback sharing the test's database, one with the embedded relay, under a stream of sends and reads
from the test. Step 1 puts k2 in the key file (both processes re-read it), step 2 is `brb key promote k2`
and `brb key rewrap`, step 3 `brb key retire k1` and k1 out of the key file. No request may fail, and
every message, old and new, stays readable with k2 alone. Bounded: at most 150 requests of traffic, paced so
that they last the whole rotation."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import httpx
from sqlmodel import select

from gateway.broker import free_port
from gateway.crypto import KeyRing, write_key_file
from gateway.db.models import PAYLOAD, Message, OutboxEvent
from gateway.keyrotation import live_holders, ring_state
from tests.conftest import eventually, settings_env, settings_for
from tests.scenario import example, seed_stay
from tests.support.processes import wait_or_kill

ROOT = Path(__file__).resolve().parents[2]
BRB = [sys.executable, "-m", "gateway.cli"]
K1, K2 = b"\x11" * 32, b"\x22" * 32
MAX_TRAFFIC = 150


class Fleet:
    def __init__(self, env: dict, tmp_path: Path):
        self.env, self.tmp_path = env, tmp_path
        self.procs: list[asyncio.subprocess.Process] = []
        self.bases: list[str] = []

    async def start(self, count: int) -> None:
        for i in range(count):
            port = free_port()
            env = {**self.env, "BRB_RUN_WORKERS": "true" if i == 0 else "false"}  # the first one runs the relay
            log = (self.tmp_path / f"gateway-{i}.log").open("wb")
            self.procs.append(await asyncio.create_subprocess_exec(*BRB, "serve", "--port", str(port), cwd=ROOT, env=env,
                                                                   stdout=log, stderr=log))
            self.bases.append(f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(timeout=5) as http:
            for proc, base in zip(self.procs, self.bases):
                async def ready():
                    assert proc.returncode is None, self.logs()
                    try:
                        return (await http.get(f"{base}/health/ready")).status_code == 200
                    except httpx.TransportError:
                        return False
                await eventually(ready, timeout=60, interval=0.2)

    async def brb(self, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(*BRB, *args, cwd=self.tmp_path, env=self.env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode(errors="replace")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp_path.glob("gateway-*.log")))

    async def stop(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        await wait_or_kill(self.procs)


async def test_rotating_the_payload_key_under_traffic_with_two_gateways_fails_no_request(database, orgs, broker, tmp_path):
    key_file = tmp_path / "ring.json"
    write_key_file(key_file, {"k1": K1}, "k1")
    settings = settings_for(database, kafka_bootstrap_servers=broker, encryption_keys_file=str(key_file),
                            key_reload_seconds=0.2, key_heartbeat_seconds=0.5, key_holder_window_seconds=10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_")}
    env |= {k: v for k, v in settings_env(settings).items() if k != "BRB_ENCRYPTION_KEYS"} | {"PYTHONPATH": str(ROOT)}
    from gateway.services import Services

    observer = Services.from_settings(settings)  # the test's own view of the shared database
    await seed_stay(observer)
    fleet = Fleet(env, tmp_path)
    answers: list[tuple[str, int, str]] = []
    sent: list[str] = []
    stop = asyncio.Event()

    async def traffic(http: httpx.AsyncClient) -> None:
        """Sends through one gateway, reads (old and new messages in turn) through the other."""
        i = 0
        while not stop.is_set() and len(answers) < MAX_TRAFFIC:
            body = {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
                    "payload": example("dr-plan")}
            r = await http.post(f"{fleet.bases[i % 2]}/api/v1/messages", json=body,
                                headers=orgs.vught.headers(**{"Idempotency-Key": uuid.uuid4().hex}))
            answers.append(("send", r.status_code, r.text[:300]))
            if r.status_code == 201:
                sent.append(r.json()["id"])
            if sent:
                mid = sent[(i * 7) % len(sent)]
                r = await http.get(f"{fleet.bases[(i + 1) % 2]}/api/v1/messages/{mid}", params={"purpose": "aftercare"},
                                   headers=orgs.amsterdam.headers())
                answers.append(("read", r.status_code, r.text[:300]))
            i += 1
            await asyncio.sleep(_pause(len(answers)))

    async def holders(held: list[str], current: str):
        found = [(sorted(h.held), h.current_id) for h in await live_holders(observer)]
        return found == [(held, current)] * 2

    async def more_traffic(n: int):
        target = len(answers) + n
        await eventually(lambda: _true(len(answers) >= target or len(answers) >= MAX_TRAFFIC), timeout=30)

    try:
        await fleet.start(2)
        async with httpx.AsyncClient(timeout=30) as http:
            task = asyncio.create_task(traffic(http))
            try:
                await eventually(lambda: holders(["k1"], "k1"))
                await more_traffic(6)

                # step 1: k2 in the key file, known everywhere, sealing nowhere
                write_key_file(key_file, {"k1": K1, "k2": K2}, "k1")
                await eventually(lambda: holders(["k1", "k2"], "k1"))
                for base in fleet.bases:
                    assert (await http.get(f"{base}/health/ready")).json()["keys"] == {"held": ["k1", "k2"], "current": "k1"}
                await more_traffic(6)

                # step 2: promote, wait until every process seals with k2, rewrap
                code, out = await fleet.brb("key", "promote", "k2")
                assert code == 0, out
                await eventually(lambda: holders(["k1", "k2"], "k2"))
                await more_traffic(6)
                code, out = await fleet.brb("key", "rewrap")
                assert code == 0, out
                await more_traffic(6)

                # step 3: retire k1, then take it out of the key file
                code, out = await fleet.brb("key", "retire", "k1")
                assert code == 0, out
                write_key_file(key_file, {"k2": K2}, "k2")
                await eventually(lambda: holders(["k2"], "k2"))
                await more_traffic(6)
                assert not task.done(), "the traffic ended before the rotation did"
            finally:
                stop.set()
                await task

            failed = [a for a in answers if a[1] not in (200, 201)]
            assert not failed, (failed, fleet.logs())
            assert len(answers) <= MAX_TRAFFIC + 1
            print(f"{len(answers)} requests during the rotation, {len(sent)} messages")
            # the oldest and the newest message, through either gateway, now that only k2 is known
            for base in fleet.bases:
                for mid in (sent[0], sent[-1]):
                    r = await http.get(f"{base}/api/v1/messages/{mid}", params={"purpose": "aftercare"},
                                       headers=orgs.amsterdam.headers())
                    assert r.status_code == 200, r.text

        assert (await ring_state(observer)).retired == ["k1"]
        only_k2 = KeyRing({"k2": K2})
        async with observer.db.read() as s:
            messages = (await s.exec(select(Message))).all()
        assert {m.id for m in messages} == set(sent) and {m.key_id for m in messages} == {"k2"}
        for m in messages:
            only_k2.open(PAYLOAD.get(m), aad=m.id.encode())

        async def relayed():  # the embedded relay kept publishing through the rotation
            async with observer.db.read() as s:
                return not (await s.exec(select(OutboxEvent).where(OutboxEvent.published_at.is_(None)))).first()
        await eventually(relayed, timeout=30)
    finally:
        await fleet.stop()
        await observer.db.dispose()


def _pause(spent: int) -> float:
    """The traffic slows as its budget is spent (0.05 s at first, ~2 s near the end), so that a slow, loaded
    machine stretches the 150 requests over the whole rotation instead of running out before its last step."""
    return 0.05 + 2.0 * (spent / MAX_TRAFFIC) ** 2


async def _true(value: bool) -> bool:
    return value
