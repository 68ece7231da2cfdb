"""The key cache across real processes (issue 17): a gateway process on loopback (uvicorn with the app's
lifespan, so its KeyKeeper and the cache's watcher run as in production) caches its callers' keys; a
`brb key revoke` in another process is refused there within 2 s, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from gateway.broker import free_port
from gateway.services import Services
from tests.conftest import eventually, settings_env, settings_for
from tests.support.processes import wait_or_kill

ROOT = Path(__file__).resolve().parents[2]
INBOX = "/api/v1/inbox"


async def test_a_key_revoked_by_another_process_is_refused_within_two_seconds(database, orgs, tmp_path):
    settings = settings_for(database, key_cache_poll_seconds=0.5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_")} | settings_env(settings) | {"PYTHONPATH": str(ROOT)}
    port = free_port()
    log = (tmp_path / "gateway.log").open("wb")
    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app", "--host", "127.0.0.1", "--port", str(port),
        cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            async def up():
                assert gateway.returncode is None, (tmp_path / "gateway.log").read_text()[-3000:]
                try:
                    return (await http.get("/health/live")).status_code == 200
                except httpx.TransportError:
                    return False
            await eventually(up, timeout=60, interval=0.2)
            for org in (orgs.amsterdam, orgs.vught):
                assert (await http.get(INBOX, headers=org.headers())).status_code == 200

            # the process answers from its cache: a hand edit (no registry version bump) goes unseen
            svc = Services.from_settings(settings)
            try:
                async with svc.db.write() as session:
                    await session.exec(text("UPDATE organisation_keys SET revoked_at = CURRENT_TIMESTAMP WHERE oin = :oin")
                                       .bindparams(oin=orgs.amsterdam.oin))
            finally:
                await svc.db.dispose()
            assert (await http.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200

            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.cli", "key", "revoke", orgs.vught.oin, orgs.vught.private_jwk["kid"],
                cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(cli.communicate(), 60)
            assert cli.returncode == 0, out.decode(errors="replace")
            revoked = time.monotonic()

            while (r := await http.get(INBOX, headers=orgs.vught.headers())).status_code == 200:
                assert time.monotonic() - revoked < 2.0, "the revoked key is still accepted after 2 s"
                await asyncio.sleep(0.05)
            assert r.status_code == 401 and "revoked" in r.json()["detail"], r.text
            # the whole cache went: the hand-edited key is read again, and refused too
            r = await http.get(INBOX, headers=orgs.amsterdam.headers())
            assert r.status_code == 401 and "revoked" in r.json()["detail"], r.text
    finally:
        if gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
        await wait_or_kill([gateway])
