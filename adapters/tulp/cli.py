"""``brb-tulp``: send a TULP export to the Berichtenbox Re-integratie.

    brb-tulp send adapters/tulp/examples/            # as PI Vught, with the demo key of `make run`
    brb-tulp bulk exports/ --concurrency 8           # the first migration, with a progress bar
    brb-tulp generate --count 5000 exports/          # fictitious detainees
    brb-tulp status                                  # what the state file says was sent
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from contracts.registry import section_pointers  # every send is signed (docs/signatures.md)
from brb_client import GatewayClient, Identity
from adapters.tulp.bulk import bulk as run_bulk, summary_table
from adapters.tulp.export import load
from adapters.tulp.generate import generate as write_generated
from adapters.tulp.sender import DEFAULT_CONCURRENCY, send_exports
from adapters.tulp.state import State

app = typer.Typer(help="TULP adapter: sends D&R messages from a TULP export to the gateway.", no_args_is_help=True)
console = Console(stderr=True)
SCOPE = "messages:send messages:read"
DEFAULT_OIN = "00000001001234567000"  # PI Vught in the demo

Gateway = Annotated[str, typer.Option("--gateway", envvar="BRB_GATEWAY_URL", help="the gateway's base URL")]
Oin = Annotated[str, typer.Option("--oin", envvar="BRB_TULP_OIN", help="the sending prison's OIN")]
Key = Annotated[Path | None, typer.Option("--key", envvar="BRB_TULP_KEY",
                                          help="private JWK file (default .var/demo-keys/<oin>.jwk.json)")]
StateFile = Annotated[Path, typer.Option("--state", envvar="BRB_TULP_STATE", help="the adapter's SQLite state file")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, max=64, help="detainees in flight at once")]
AsJson = Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")]


def _exit_code(summary) -> int:
    return 2 if summary.failed else (1 if summary.refused else 0)


def _run(path: Path, gateway: str, oin: str, key: Path | None, state_file: Path, concurrency: int, progress: bool,
         as_json: bool) -> None:
    exports = load(path)
    wrong = {e.source.prison_oin for e in exports} - {oin}
    if wrong:
        console.print(f"[red]export of another prison ({', '.join(sorted(wrong))}); sending as {oin}[/red]")
        raise typer.Exit(2)
    identity = Identity.from_file(oin, key or Path(".var/demo-keys") / f"{oin}.jwk.json", SCOPE)

    async def main():
        async with GatewayClient(gateway, identity, sections=section_pointers) as gw:
            with State(state_file) as state:
                if progress:
                    return await run_bulk(gw, state, exports, concurrency=concurrency, console=console)
                return await send_exports(gw, state, exports, concurrency=concurrency)

    started = time.monotonic()
    summary = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(summary.as_dict() | {"seconds": round(time.monotonic() - started, 1)}))
    else:
        console.print(summary_table(summary, time.monotonic() - started))
    raise typer.Exit(_exit_code(summary))


@app.command()
def send(path: Annotated[Path, typer.Argument(exists=True, help="an export file or a directory of them")],
         gateway: Gateway = "http://127.0.0.1:8000", oin: Oin = DEFAULT_OIN, key: Key = None,
         state: StateFile = Path(".var/tulp-state.sqlite3"), concurrency: Concurrency = DEFAULT_CONCURRENCY,
         as_json: AsJson = False) -> None:
    """Send what the export calls for that was not sent before."""
    _run(path, gateway, oin, key, state, concurrency, False, as_json)


@app.command()
def bulk(path: Annotated[Path, typer.Argument(exists=True, help="an export file or a directory of them")],
         gateway: Gateway = "http://127.0.0.1:8000", oin: Oin = DEFAULT_OIN, key: Key = None,
         state: StateFile = Path(".var/tulp-state.sqlite3"), concurrency: Concurrency = DEFAULT_CONCURRENCY,
         as_json: AsJson = False) -> None:
    """Like send, with a progress bar: for the first migration. Interrupt and run again to resume."""
    _run(path, gateway, oin, key, state, concurrency, True, as_json)


@app.command()
def generate(folder: Annotated[Path, typer.Argument(help="where to write the export files")],
             count: Annotated[int, typer.Option("--count", min=1, help="number of detainees")] = 100,
             seed: Annotated[int, typer.Option("--seed")] = 18, oin: Oin = DEFAULT_OIN) -> None:
    """Write fictitious detainees (valid BSNs, Amsterdam/Rotterdam) as TULP export files."""
    files = write_generated(count, folder, seed=seed, prison_oin=oin)
    console.print(f"{count} detainees in {len(files)} file(s) under {folder}")


@app.command()
def status(state: StateFile = Path(".var/tulp-state.sqlite3"), as_json: AsJson = False) -> None:
    """What the state file records: per export source, messages sent per kind and refusals per problem type."""
    if not state.exists():
        console.print(f"no state file at {state}")
        raise typer.Exit(0)
    with State(state) as s:
        data = s.status()
    if as_json:
        typer.echo(json.dumps(data))
        return
    for source, d in data.items():
        console.print(f"[bold]{source}[/bold]: {d['detainees']} detainee(s), "
                      f"{sum(d['sent'].values())} message(s) sent")
        for kind, n in sorted(d["sent"].items()):
            console.print(f"  {kind}: {n}")
        for ptype, n in sorted(d["refused"].items()):
            console.print(f"  refused {ptype}: {n}")


if __name__ == "__main__":
    app()
