"""Bulk mode for the first migration: every detainee of an export file or directory, a rich progress bar,
bounded concurrency, resumable (the state is committed after each 201), a summary at the end."""
from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from brb_client import GatewayClient
from adapters.tulp.export import Export
from adapters.tulp.sender import DEFAULT_CONCURRENCY, Summary, send_exports
from adapters.tulp.state import State


async def bulk(gateway: GatewayClient, state: State, exports: Iterable[Export], *, concurrency: int = DEFAULT_CONCURRENCY,
               console: Console | None = None) -> Summary:
    exports = list(exports)
    total = sum(len(e.detainees) for e in exports)
    with Progress(TextColumn("[bold]TULP → gateway"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("detainees", total=total)
        return await send_exports(gateway, state, exports, concurrency=concurrency,
                                  on_detainee=lambda _d: progress.advance(task))


def summary_table(summary: Summary, seconds: float | None = None) -> Table:
    table = Table(title="TULP run summary", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("detainees", str(summary.detainees))
    table.add_row("sent", str(summary.sent))
    for kind, n in sorted(summary.sent_by_kind.items()):
        table.add_row(f"  {kind}", str(n))
    if summary.urgent_sent:
        table.add_row("  of which unexpected releases (sent first)", str(summary.urgent_sent))
    table.add_row("skipped (already sent)", str(summary.skipped))
    table.add_row("refused", str(sum(summary.refused.values())))
    for ptype, n in sorted(summary.refused.items()):
        table.add_row(f"  {ptype}", str(n))
    if summary.blocked:
        table.add_row("not attempted (detention-notice refused)", str(summary.blocked))
    for cause, n in sorted(summary.failed.items()):
        table.add_row(f"failed ({cause})", str(n))
    if seconds is not None:
        table.add_row("seconds", f"{seconds:.1f}")
    return table
