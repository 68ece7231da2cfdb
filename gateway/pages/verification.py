"""Chain verification started from a page: it runs in the background of this process while the page polls
its progress (htmx). A job belongs to the officer who started it; each officer has at most one running,
and finished jobs are forgotten after ``KEEP_SECONDS``."""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field

from gateway.audit import queries
from gateway.audit.report import VerifyReport
from gateway.db.models import AuditHead
from gateway.services import Services

log = logging.getLogger("brb.pages")
KEEP_SECONDS = 600


@dataclass
class VerifyJob:
    id: str
    owner: str  # the officer's sub
    from_seq: int
    total: int
    started: float = field(default_factory=time.monotonic)
    checked: int = 0
    result: VerifyReport | None = None
    error: str | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None


class Verifications:
    def __init__(self) -> None:
        self._jobs: dict[str, VerifyJob] = {}

    def get(self, job_id: str, owner: str) -> VerifyJob | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.owner == owner else None

    async def start(self, services: Services, owner: str, from_seq: int) -> VerifyJob:
        self._forget_old()
        running = next((j for j in self._jobs.values() if j.owner == owner and not j.done), None)
        if running is not None:
            return running
        async with services.db.read() as session:
            head = await session.get(AuditHead, 1)
        job = VerifyJob(secrets.token_urlsafe(16), owner, from_seq, total=max(0, (head.seq if head else 0) - from_seq + 1))

        def progress(seq: int) -> None:
            job.checked = seq - from_seq + 1
            job.total = max(job.total, job.checked)

        async def run() -> None:
            try:
                job.result = await queries.chain_report(services, from_seq, progress=progress)
            except Exception as exc:
                log.exception("pages.verify-failed", extra={"job": job.id})
                job.error = type(exc).__name__

        job.task = asyncio.create_task(run(), name=f"verify-{job.id}")
        self._jobs[job.id] = job
        return job

    def _forget_old(self) -> None:
        now = time.monotonic()
        for job_id in [i for i, j in self._jobs.items() if j.done and now - j.started > KEEP_SECONDS]:
            self._jobs.pop(job_id, None)
