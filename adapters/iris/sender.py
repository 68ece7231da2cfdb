"""Send what IRIS exports through the gateway: read, plan (mapping), skip what the state says was sent,
send the rest with bounded concurrency, record each outcome. Talks to the gateway over HTTP only."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import ValidationError

from brb_client import GatewayClient, GatewayProblem
from adapters.iris.export import IrisExport
from adapters.iris.mapping import PlannedSend, plan
from adapters.iris.state import State

SCOPE = "messages:send messages:read"


@dataclass
class Summary:
    sent: int = 0
    skipped: int = 0  # sent on an earlier run (the state says so): nothing goes out
    refused: Counter = field(default_factory=Counter)  # problem type -> number of sends
    failed: Counter = field(default_factory=Counter)  # gateway unreachable or 5xx after retries: tried again next run
    invalid: dict[str, str] = field(default_factory=dict)  # export file -> why it could not be read
    receipts: list[tuple[PlannedSend, dict]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.refused or self.failed or self.invalid)


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"/{'/'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


def export_files(path: str | Path) -> list[Path]:
    path = Path(path)
    return sorted(path.glob("*.json")) if path.is_dir() else [path]


def load(path: Path) -> IrisExport:
    return IrisExport.model_validate(json.loads(path.read_text(encoding="utf-8")))


def read_exports(path: str | Path, summary: Summary) -> list[IrisExport]:
    exports = []
    for file in export_files(path):
        try:
            exports.append(load(file))
        except ValidationError as exc:
            summary.invalid[str(file)] = _errors(exc)
        except (OSError, ValueError) as exc:  # unreadable, or not JSON
            summary.invalid[str(file)] = str(exc)
    return exports


def planned(exports: list[IrisExport], summary: Summary) -> list[PlannedSend]:
    sends = []
    for export in exports:
        try:
            sends.extend(plan(export))
        except ValidationError as exc:  # the export is readable but maps to no valid contract
            summary.invalid[f"client {export.client.client_number}"] = _errors(exc)
    return sends


async def send_all(gateway: GatewayClient, state: State, sends: list[PlannedSend], summary: Summary, *,
                   concurrency: int = 8, progress: Callable[[], None] | None = None) -> Summary:
    limit = asyncio.Semaphore(concurrency)

    async def one(p: PlannedSend) -> None:
        record = dict(key=p.idempotency_key, skn=p.skn, message_type=p.type, source_id=p.source_id,
                      recipient=p.recipient, purpose=p.purpose)
        try:
            if state.was_sent(p.idempotency_key):
                summary.skipped += 1
                return
            async with limit:
                try:
                    receipt = await gateway.send(p.type, p.version, p.purpose, [p.recipient], p.payload, p.idempotency_key)
                except GatewayProblem as problem:
                    if problem.status >= 500 or problem.status == 429:
                        summary.failed[problem.type] += 1
                        state.record(**record, outcome="failed", problem_type=problem.type, detail=str(problem.body.get("detail", "")))
                    else:
                        summary.refused[problem.type] += 1
                        state.record(**record, outcome="refused", problem_type=problem.type, detail=str(problem.body.get("detail", "")))
                    return
                except httpx.TransportError as exc:
                    summary.failed["unreachable"] += 1
                    state.record(**record, outcome="failed", problem_type="unreachable", detail=type(exc).__name__)
                    return
            state.record(**record, outcome="sent", message_id=receipt["id"])
            summary.sent += 1
            summary.receipts.append((p, receipt))
        finally:
            if progress:
                progress()

    await asyncio.gather(*(one(p) for p in sends))
    return summary


async def send_exports(path: str | Path, gateway: GatewayClient, state: State, *, concurrency: int = 8,
                       progress: Callable[[int], Callable[[], None]] | None = None) -> Summary:
    """Read every export under ``path``, send what was not sent before; ``progress(total)`` may return a
    callback called once per planned send."""
    summary = Summary()
    sends = planned(read_exports(path, summary), summary)
    tick = progress(len(sends)) if progress else None
    return await send_all(gateway, state, sends, summary, concurrency=concurrency, progress=tick)
