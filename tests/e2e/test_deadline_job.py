"""`brb deadlines` is what a CronJob runs: one round marks what a stay already missed as overdue, once."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from gateway.db.models import Deadline, OutboxEvent
from gateway.trajectory.norms import local_date
from tests.conftest import settings_env
from tests.scenario import Chain, example, with_subject

ROOT = Path(__file__).resolve().parents[2]


def run_job(services) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "deadlines"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **settings_env(services.settings)}, timeout=60)


async def test_the_deadline_job_marks_what_a_stay_that_arrived_20_days_ago_missed(client, orgs, services):
    # a stay as a first migration from TULP brings it in: the detainee arrived 20 days ago
    payload = with_subject(example("detention-notice"))
    payload.update(arrivalDate=(local_date(services.clock.now()) - timedelta(days=20)).isoformat())
    payload.pop("knownReleaseDate")
    await Chain(client, orgs).send(orgs.vught, "detention-notice", ["municipality:0363"], payload)

    done = run_job(services)
    assert done.returncode == 0, done.stderr[-2000:]
    # the screening (day 10); the plan is due on day 28. The SOM triage of the stay has nothing that time changes
    assert done.stdout.strip().splitlines() == ["1 deadline(s) found overdue", "0 triage outcome(s) changed by time"]
    again = run_job(services)
    assert again.stdout.strip().splitlines() == ["0 deadline(s) found overdue", "0 triage outcome(s) changed by time"]
    async with services.db.read() as s:
        assert (await s.exec(select(Deadline.norm, Deadline.status).order_by(Deadline.norm))).all() == [
            ("plan-established", "open"), ("screening-shared", "overdue")]
        assert len((await s.exec(select(OutboxEvent).where(OutboxEvent.type == "deadline.overdue"))).all()) == 1
