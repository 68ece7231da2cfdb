"""``brb-iris``: send IRIS exports through the gateway, and show what was sent.

    brb-iris send adapters/iris/examples/            # every *.json in the folder
    brb-iris status

Defaults suit ``make run``: the gateway on http://127.0.0.1:8000, Reclassering Nederland's OIN, its demo
key in .var/demo-keys/<oin>.jwk.json, the state in .var/iris-state.sqlite3."""
from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from contracts.registry import section_pointers  # every send is signed (docs/signatures.md)
from brb_client import GatewayClient, Identity
from adapters.iris.sender import SCOPE, Summary, send_exports
from adapters.iris.state import State

RECLASSERING_NEDERLAND = "00000001002345678000"
DEFAULT_STATE = Path(".var/iris-state.sqlite3")

app = typer.Typer(help="IRIS (3RO) adapter for the Berichtenbox Re-integratie.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)

GatewayOpt = typer.Option("http://127.0.0.1:8000", "--gateway", envvar="BRB_GATEWAY_URL", help="The gateway's base URL")
OinOpt = typer.Option(RECLASSERING_NEDERLAND, "--oin", envvar="BRB_IRIS_OIN", help="The probation organisation's OIN")
KeyOpt = typer.Option(None, "--key", envvar="BRB_IRIS_KEY", help="Private JWK file [default: .var/demo-keys/<oin>.jwk.json]")
StateOpt = typer.Option(DEFAULT_STATE, "--state", envvar="BRB_IRIS_STATE", help="The adapter's SQLite state file")


@app.command()
def send(path: Path = typer.Argument(..., exists=True, help="An export file, or a folder of *.json exports"),
         gateway: str = GatewayOpt, oin: str = OinOpt, key: Path | None = KeyOpt, state: Path = StateOpt,
         concurrency: int = typer.Option(8, min=1, max=64, help="Sends in flight at once")) -> None:
    """Send what the exports hold and was not sent before; print sent / skipped / refused per problem type."""
    key = key or Path(".var/demo-keys") / f"{oin}.jwk.json"
    if not key.exists():
        console.print(f"[red]no key file {key}[/red] (run `make run` for the demo keys, or pass --key)")
        raise typer.Exit(2)
    identity = Identity.from_file(oin, key, SCOPE)
    summary = asyncio.run(_send(path, gateway, identity, state, concurrency))
    _print_summary(summary)
    raise typer.Exit(0 if summary.ok else 1)


async def _send(path: Path, gateway: str, identity: Identity, state_file: Path, concurrency: int) -> Summary:
    with State(state_file) as state, Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                                               console=console, transient=True) as bar:
        task = bar.add_task("send", total=0)

        def progress(total: int):
            bar.update(task, total=total)
            return lambda: bar.advance(task)

        async with GatewayClient(gateway, identity, sections=section_pointers) as gw:
            return await send_exports(path, gw, state, concurrency=concurrency, progress=progress)


def _print_summary(summary: Summary) -> None:
    out = Console()
    out.print(f"sent: {summary.sent}  skipped (sent before): {summary.skipped}  "
              f"refused: {sum(summary.refused.values())}  failed: {sum(summary.failed.values())}  "
              f"invalid exports: {len(summary.invalid)}")
    for kind, counter in (("refused", summary.refused), ("failed", summary.failed)):
        for problem_type, n in sorted(counter.items()):
            out.print(f"  {kind} {problem_type}: {n}")
    for where, why in summary.invalid.items():
        out.print(f"  invalid {where}: {why}")


@app.command()
def status(state: Path = StateOpt,
           verbose: bool = typer.Option(False, "--verbose", "-v", help="One line per send")) -> None:
    """What the state file says was sent, refused or failed, per message type."""
    if not state.exists():
        Console().print(f"no state yet ({state})")
        return
    with State(state) as s:
        table = Table("message type", "sent", "refused", "failed")
        counts = s.counts()
        for message_type in sorted({t for t, _ in counts}):
            table.add_row(message_type, *(str(counts.get((message_type, o), 0)) for o in ("sent", "refused", "failed")))
        Console().print(table)
        rows = s.rows()
        problems = Table("skn", "type", "source", "recipient", "problem", "attempts")
        for r in rows:
            if verbose or r.outcome != "sent":
                problems.add_row(r.skn, r.message_type, r.source_id, r.recipient,
                                 r.problem_type or f"sent {r.message_id}", str(r.attempts))
        if problems.row_count:
            Console().print(problems)


if __name__ == "__main__":
    app()
