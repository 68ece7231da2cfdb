"""``brb-municipal``: the municipal connector's command line (run, status, report)."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from brb_client import GatewayClient, GatewayProblem, Identity
from adapters.municipal.consumer import Config, Connector
from adapters.municipal.forwarder import CaseSystem
from adapters.municipal.reports import ReportError, send_report
from adapters.municipal.store import Store

app = typer.Typer(help="The municipal connector of the Berichtenbox Re-integratie: Kafka in, local store and case system out.",
                  no_args_is_help=True)
console = Console(stderr=True)
SCOPE = "messages:read messages:send"

GatewayOpt = typer.Option("http://127.0.0.1:8000", "--gateway", envvar="BRB_GATEWAY_URL", help="the gateway's base URL")
OinOpt = typer.Option(..., "--oin", envvar="BRB_OIN", help="this municipality's (or mayor's) OIN")
KeyOpt = typer.Option(..., "--key", envvar="BRB_KEY_FILE", help="the private JWK (JSON file, with kid)")
StoreOpt = typer.Option(Path("municipal.sqlite3"), "--store", envvar="BRB_MUNICIPAL_STORE", help="the local SQLite file")
AudienceOpt = typer.Option("urn:nl:brb:gateway", "--audience", envvar="BRB_AUDIENCE")


def _purposes(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        kind, sep, purpose = value.partition("=")
        if not sep or not kind or not purpose:
            raise typer.BadParameter(f"--purpose takes TYPE=PURPOSE, not {value!r}")
        out[kind] = purpose
    return out


@app.command()
def run(
    gateway: str = GatewayOpt, oin: str = OinOpt, key: Path = KeyOpt, store: Path = StoreOpt, audience: str = AudienceOpt,
    bootstrap: str = typer.Option("127.0.0.1:9092", "--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS"),
    topic_prefix: str = typer.Option("brb", "--topic-prefix", envvar="BRB_KAFKA_TOPIC_PREFIX"),
    topic: Optional[str] = typer.Option(None, "--topic", envvar="BRB_MUNICIPAL_TOPIC",
                                        help="topic to consume (default <prefix>.org.<oin>: this organisation's own)"),
    group: Optional[str] = typer.Option(None, "--group", help="consumer group (default <oin>.municipal: the ACL grants <oin>.*)"),
    security_protocol: str = typer.Option("PLAINTEXT", "--kafka-security-protocol", envvar="BRB_KAFKA_SECURITY_PROTOCOL",
                                          help="PLAINTEXT (demo) or SASL_SSL (production)"),
    sasl_mechanism: Optional[str] = typer.Option(None, "--kafka-sasl-mechanism", envvar="BRB_KAFKA_SASL_MECHANISM"),
    sasl_username: Optional[str] = typer.Option(None, "--kafka-sasl-username", envvar="BRB_KAFKA_SASL_USERNAME"),
    sasl_password_file: Optional[Path] = typer.Option(None, "--kafka-sasl-password-file", envvar="BRB_KAFKA_SASL_PASSWORD_FILE"),
    ssl_cafile: Optional[Path] = typer.Option(None, "--kafka-ssl-cafile", envvar="BRB_KAFKA_SSL_CAFILE"),
    case_system: Optional[str] = typer.Option(None, "--case-system", envvar="BRB_CASE_SYSTEM_URL",
                                              help="POST each message here; its answer decides accepted/rejected"),
    drop: Optional[Path] = typer.Option(None, "--drop", help="drop folder of aftercare-report JSON files"),
    report_to: list[str] = typer.Option([], "--report-to", help="recipient of reports that name none (repeatable)"),
    default_purpose: str = typer.Option("aftercare", "--default-purpose", help="read purpose (a mayor: public-order)"),
    purpose: list[str] = typer.Option([], "--purpose", help="TYPE=PURPOSE, the read purpose of one message type"),
    sweep_seconds: float = typer.Option(5.0, "--sweep-seconds", help="how often to retry pending work and scan --drop"),
    session_timeout_ms: int = typer.Option(10_000, "--session-timeout-ms", help="Kafka group session timeout"),
) -> None:
    """Consume <prefix>.org.<oin> until stopped (SIGINT/SIGTERM): read, store, forward and acknowledge each delivery."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = Config(oin=oin, bootstrap=bootstrap, topic_prefix=topic_prefix, group_id=group, default_purpose=default_purpose,
                    purposes=_purposes(purpose), drop=drop, report_to=list(report_to), sweep_seconds=sweep_seconds,
                    session_timeout_ms=session_timeout_ms, topic_override=topic, security_protocol=security_protocol,
                    sasl_mechanism=sasl_mechanism, sasl_username=sasl_username, ssl_cafile=ssl_cafile,
                    sasl_password=sasl_password_file.read_text().strip() if sasl_password_file else None)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        local = Store(store)
        cases = CaseSystem(case_system) if case_system else None
        try:
            async with GatewayClient(gateway, Identity.from_file(oin, key, SCOPE, audience)) as gw:
                console.print(f"[bold]brb-municipal[/] {oin}: group {config.group}, topic {config.topic}, store {store}")
                await Connector(config, gw, local, cases).run(stop)
        finally:
            if cases is not None:
                await cases.aclose()
            local.close()

    asyncio.run(main())


@app.command()
def status(store: Path = StoreOpt, last: int = typer.Option(5, "--last"),
           as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
    """What the local store holds: messages per state (pending, forwarded, acknowledged, purged), reports, the last few."""
    if not store.exists():
        raise typer.BadParameter(f"no store at {store}", param_hint="--store")
    local = Store(store)
    try:
        found = local.status(last)
    finally:
        local.close()
    if as_json:
        typer.echo(json.dumps(found, indent=2, default=str))
        return
    out = Console()
    counts = found["messages"]
    groups = {"pending": ("stored", "receiving", "received"), "forwarded": ("forwarded",),
              "acknowledged": ("accepted", "rejected"), "purged": ("purged",), "unreadable": ("unreadable",)}
    summary = Table(title="messages")
    for name in groups:
        summary.add_column(name, justify="right")
    summary.add_row(*(str(sum(counts.get(s, 0) for s in states)) for states in groups.values()))
    out.print(summary)
    recent = Table(title=f"last {last}")
    for column in ("message", "type", "state", "ack", "reason", "deleted"):
        recent.add_column(column)
    for m in found["recent"]:
        recent.add_row(m["message_id"], m["type"], m["state"], m["ack"] or "", m["ack_reason"] or "", m["deleted_why"] or "")
    out.print(recent)
    out.print(f"reports: {found['reports'] or 'none'}; events handled: {found['eventsHandled']}")


@app.command()
def report(file: Path = typer.Argument(..., exists=True, dir_okay=False), gateway: str = GatewayOpt, oin: str = OinOpt,
           key: Path = KeyOpt, store: Path = StoreOpt, audience: str = AudienceOpt,
           report_to: list[str] = typer.Option([], "--report-to", help="recipient when the file names none")) -> None:
    """Send one aftercare-report file (an envelope with recipients, or a bare payload with --report-to)."""
    async def main() -> dict:
        local = Store(store)
        try:
            async with GatewayClient(gateway, Identity.from_file(oin, key, SCOPE, audience)) as gw:
                return await send_report(gw, local, file, list(report_to))
        finally:
            local.close()

    try:
        receipt = asyncio.run(main())
    except ReportError as exc:
        console.print(f"[red]not sent[/]: {exc}")
        raise typer.Exit(2)
    except GatewayProblem as exc:
        console.print(f"[red]refused[/]: {exc}")
        raise typer.Exit(1)
    typer.echo(json.dumps(receipt, indent=2))


if __name__ == "__main__":
    app()
