"""Aftercare-reports (contracts/aftercare_report.py): from a drop folder or one file.

A report file is JSON, either an envelope ``{"recipients": [...], "payload": {...}}`` (optional
``"version"``, default 1, and ``"purpose"``, default ``aftercare``) or a bare aftercare-report payload, sent to
the connector's default recipients (``--report-to``). The ``Idempotency-Key`` is derived from the file's
content (SHA-256 of its canonical JSON), so the same report sent twice — a re-run, a crash between send and
move, the same file dropped again — is one message at the gateway. After sending a file moves to ``done/``;
a file that cannot be sent (bad JSON, contract violation, a 4xx refusal) moves to ``failed/`` with a
``<name>.error.txt`` next to it. A 5xx or an unreachable gateway leaves it in place for the next sweep."""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from brb_client import GatewayClient, GatewayProblem
from adapters.municipal.store import Store
from contracts.registry import ContractError, UnknownContract, validate_payload

MESSAGE_TYPE = "aftercare-report"


class ReportError(ValueError):
    """The file itself is wrong: it will not get better by retrying."""


@dataclass(frozen=True)
class Report:
    recipients: list[str]
    payload: dict
    version: int
    purpose: str
    idempotency_key: str


def load_report(path: Path, default_recipients: list[str] | None = None) -> Report:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"not a JSON file: {exc}") from exc
    if not isinstance(document, dict):
        raise ReportError("a report is a JSON object")
    if "payload" in document:
        payload, recipients = document["payload"], document.get("recipients") or default_recipients
        version, purpose = int(document.get("version", 1)), document.get("purpose", "aftercare")
    else:
        payload, recipients, version, purpose = document, default_recipients, 1, "aftercare"
    if not recipients:
        raise ReportError("no recipients: put \"recipients\" in the file or start the connector with --report-to")
    try:
        validate_payload(MESSAGE_TYPE, version, payload)
    except (ContractError, UnknownContract) as exc:
        raise ReportError(f"not a valid {MESSAGE_TYPE} v{version}: {exc}") from exc
    canonical = json.dumps({"type": MESSAGE_TYPE, "version": version, "purpose": purpose, "recipients": sorted(recipients),
                            "payload": payload}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = "aftercare-" + hashlib.sha256(canonical.encode()).hexdigest()[:48]
    return Report(list(recipients), payload, version, purpose, key)


async def send_report(gateway: GatewayClient, store: Store, path: Path, default_recipients: list[str] | None = None) -> dict:
    """Send one report file; returns the gateway's receipt. Raises ReportError or GatewayProblem."""
    report = load_report(path, default_recipients)
    try:
        receipt = await gateway.send(MESSAGE_TYPE, report.version, report.purpose, report.recipients, report.payload,
                                     report.idempotency_key)
    except GatewayProblem as exc:
        if exc.status < 500:
            store.record_report(report.idempotency_key, path.name, None, "failed", str(exc))
        raise
    store.record_report(report.idempotency_key, path.name, receipt["id"], "sent", None)
    return receipt


async def sweep_drop_folder(gateway: GatewayClient, store: Store, folder: Path,
                            default_recipients: list[str] | None = None) -> dict[str, int]:
    """Send every ``*.json`` in ``folder`` (oldest first), moving each to done/ or failed/."""
    done, failed = folder / "done", folder / "failed"
    counts = {"sent": 0, "failed": 0, "left": 0}
    for path in sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name)):
        try:
            await send_report(gateway, store, path, default_recipients)
        except ReportError as exc:
            store.record_report("file-" + hashlib.sha256(path.read_bytes()).hexdigest()[:48], path.name, None, "failed", str(exc))
            _move(path, failed, str(exc))
            counts["failed"] += 1
        except GatewayProblem as exc:
            if exc.status >= 500:
                counts["left"] += 1
                continue
            _move(path, failed, f"{exc}\n{json.dumps(exc.body, indent=2)}")
            counts["failed"] += 1
        except httpx.TransportError:
            counts["left"] += 1  # the gateway is away: the next sweep tries again
        else:
            _move(path, done)
            counts["sent"] += 1
    return counts


def _move(path: Path, to: Path, error: str | None = None) -> None:
    to.mkdir(parents=True, exist_ok=True)
    target = to / path.name
    if target.exists():  # the same name dropped again: keep both
        target = to / f"{path.stem}.{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}{path.suffix}"
    if error is not None:
        (to / (target.name + ".error.txt")).write_text(error + "\n", encoding="utf-8")
    shutil.move(str(path), target)
