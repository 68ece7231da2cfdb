"""Send what a TULP export calls for: per detainee in order (detention-notice first), detainees side by side
under a bounded concurrency, unexpected releases first in the run, and a summary at the end."""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import httpx

from brb_client import GatewayClient, GatewayProblem
from adapters.tulp import mapping
from adapters.tulp.export import Detainee, Export
from adapters.tulp.state import State
from contracts import ContractError

DEFAULT_CONCURRENCY = 8
BUSY = frozenset({"rate-limited", "unavailable"})
BUSY_ROUNDS = 10


@dataclass
class Summary:
    detainees: int = 0
    sent: int = 0
    skipped: int = 0  # already sent (the state has the same message as the slot's latest)
    blocked: int = 0  # not attempted: the detainee's detention-notice was refused
    refused: Counter = field(default_factory=Counter)  # problem type -> count
    failed: Counter = field(default_factory=Counter)  # not answered: transport errors after retries
    sent_by_kind: Counter = field(default_factory=Counter)
    urgent_sent: int = 0

    def as_dict(self) -> dict:
        return {"detainees": self.detainees, "sent": self.sent, "skipped": self.skipped, "blocked": self.blocked,
                "refused": dict(self.refused), "failed": dict(self.failed), "sentByKind": dict(self.sent_by_kind),
                "urgentSent": self.urgent_sent}


def slot(m: mapping.Planned) -> str:
    """What a newer message replaces: one slot per kind, a transfer-notice per (date, receiving prison)."""
    if m.kind == "transfer-notice":
        return f"transfer-notice:{m.payload['transferDate']}:{m.payload['toPrisonOin']}"
    return m.kind


class Sender:
    def __init__(self, gateway: GatewayClient, state: State, *, concurrency: int = DEFAULT_CONCURRENCY,
                 on_detainee: Callable[[Detainee], None] | None = None):
        self.gateway, self.state = gateway, state
        self.semaphore = asyncio.Semaphore(concurrency)
        self.on_detainee = on_detainee
        self.summary = Summary()

    async def run(self, exports: Iterable[Export]) -> Summary:
        work = [(e.source_id, d) for e in exports for d in e.detainees]
        self.summary.detainees += len(work)
        urgent = [w for w in work if self._has_pending_urgent(*w)]
        urgent_ids = {id(d) for _, d in urgent}
        rest = [w for w in work if id(w[1]) not in urgent_ids]
        for phase in (urgent, rest):  # unexpected releases first: the municipality must hear at once
            await asyncio.gather(*(self._guarded(source, d) for source, d in phase))
        return self.summary

    def _has_pending_urgent(self, source: str, d: Detainee) -> bool:
        if not mapping.is_unexpected_release(d):
            return False
        notice = mapping.release_notice(d)
        return notice is not None and self.state.latest_key(source, d.skn, slot(notice)) != notice.key

    async def _guarded(self, source: str, d: Detainee) -> None:
        async with self.semaphore:
            await self.send_detainee(source, d)
        if self.on_detainee:
            self.on_detainee(d)

    async def send_detainee(self, source: str, d: Detainee) -> None:
        s = self.summary
        planned = mapping.plan(d)
        for i, m in enumerate(planned):
            if self.state.latest_key(source, d.skn, slot(m)) == m.key:
                s.skipped += 1
                continue
            try:
                m.validate()
            except ContractError as exc:
                s.refused["local-validation-failed"] += 1
                self.state.record_refused(source, d.skn, m.kind, m.key, "local-validation-failed", 0, str(exc))
                continue
            try:
                receipt = await self._send(m)
            except GatewayProblem as exc:
                s.refused[exc.type] += 1
                self.state.record_refused(source, d.skn, m.kind, m.key, exc.type, exc.status, str(exc.body.get("detail", "")))
                if m.kind == "detention-notice":  # without it no municipality is competent: the rest would fail too
                    s.blocked += len(planned) - i - 1
                    return
                continue
            except (httpx.TransportError, httpx.HTTPError) as exc:
                s.failed[type(exc).__name__] += 1
                continue
            self.state.record_sent(source, d.skn, m.kind, slot(m), m.key, m.content_hash, receipt)
            s.sent += 1
            s.sent_by_kind[m.kind] += 1
            s.urgent_sent += m.urgent


    async def _send(self, m: mapping.Planned) -> dict:
        """Send one message; when the gateway stays busy (rate-limited, unavailable) after the client's own
        retries, wait longer and try again: in a bulk run that is load, not a refusal. The Idempotency-Key
        makes every attempt safe."""
        for round_ in range(BUSY_ROUNDS):
            try:
                return await self.gateway.send(m.type, m.version, m.purpose, m.recipients, m.payload, m.key)
            except GatewayProblem as exc:
                if exc.type not in BUSY or round_ == BUSY_ROUNDS - 1:
                    raise
                await asyncio.sleep(min(30.0, 2.0 * (round_ + 1)))
        raise AssertionError("unreachable")


async def send_exports(gateway: GatewayClient, state: State, exports: Iterable[Export], *,
                       concurrency: int = DEFAULT_CONCURRENCY, on_detainee=None) -> Summary:
    return await Sender(gateway, state, concurrency=concurrency, on_detainee=on_detainee).run(exports)
