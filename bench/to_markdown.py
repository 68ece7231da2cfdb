"""A benchmark result file (.var/bench/<timestamp>.json) as the Markdown table of docs/performance.md.

    python bench/to_markdown.py [.var/bench/<timestamp>.json]    # default: the newest"""
from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / ".var" / "bench"


def number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [
        f"Run {data['started']} ({data['config']['duration']} s per load run, {data['config']['bulk']:,} bulk rows, "
        f"{data['seconds'] / 60:.1f} min), commit `{m['git_commit'][:12]}` with {len(m['git_dirty_files'])} changed "
        f"or new file(s) (tree `{m.get('tree_sha256', '?')[:12]}`"
        f"{', which CHANGED during the run' if data.get('tree_changed_during_run') else ''}). Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_mib']:,} MiB, Linux {m['kernel']}, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if k in ("fastapi", "starlette", "uvicorn", "sqlalchemy"))
        + f"; {', '.join(m['databases'])}; {m['wrk'].split(' [')[0]}.",
        "",
        "| backend | phase | gateway | baseline | ratio | p50 ms (gw / base) | p99 ms (gw / base) | target | met? |",
        "|---|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for r in data["rows"]:
        met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
        if r["errors"]:
            met = f"**no** ({r['errors']} errors)"
        gateway = f"{number(r['gateway'])} {r['unit']}" if r["gateway"] is not None else ""
        ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else ""
        lines.append(f"| {r['backend']} | {r['phase']} | {gateway} | {number(r['baseline'])} | {ratio} | {r['p50']} | "
                     f"{r['p99']} | {r['target']} | {met} |")
    notes = [f"- {r['backend']} {r['phase']}: {r['note']}" for r in data["rows"] if r.get("note")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else max(OUT.glob("*.json"))
    sys.stdout.write(markdown(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
