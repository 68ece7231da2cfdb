"""`brb retention --once` is what the production CronJob runs: one round purges due copies AND prunes
confirmed outbox rows and expired jtis, like the in-process loop does."""
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlmodel import select

from gateway.db.models import OutboxEvent, UsedToken
from gateway.outbox.events import Event, outbox_row
from tests.conftest import settings_env

ROOT = Path(__file__).resolve().parents[2]


async def test_the_retention_job_prunes_confirmed_outbox_rows_and_expired_jtis(services):
    now = datetime.now(timezone.utc)
    async with services.db.write() as s:
        old = outbox_row(Event("message.read", "sub-1", {"messageId": "m-old", "parties": []}), now - timedelta(days=9), services.topics)
        old.published_at = now - timedelta(days=8)
        pending = outbox_row(Event("message.read", "sub-1", {"messageId": "m-new", "parties": []}), now, services.topics)
        s.add_all([old, pending])
        s.add(UsedToken(iss="1" * 20, jti="expired-jti-0001", expires_at=now - timedelta(hours=1)))
        s.add(UsedToken(iss="1" * 20, jti="current-jti-0001", expires_at=now + timedelta(minutes=5)))

    done = subprocess.run([sys.executable, "-m", "gateway.cli", "retention", "--once"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **settings_env(services.settings)}, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pruned 2 confirmed outbox row(s) and expired jti(s)" in done.stdout
    async with services.db.read() as s:
        assert (await s.exec(select(OutboxEvent.event_id))).all() == [pending.event_id]
        assert (await s.exec(select(UsedToken.jti))).all() == ["current-jti-0001"]
