"""The HTTP benchmark (bench/benchmark.py) still runs: its own code in its smallest mode (1 s load runs, one
of each, 500 bulk rows, SQLite only) prints the table of ratios and writes the JSON file with the machine
description. It asserts nothing about speed. Needs Debian's wrk (`make wrk`); bounded to a few minutes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_and_writes_its_table_and_json(tmp_path):
    assert shutil.which("wrk"), "Debian's wrk is missing: `make test` installs it (make wrk)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_")} | {"COLUMNS": "200"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "benchmark.py"), "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "send c16 vs insert" in done.stdout and "ratio" in done.stdout
    [result] = list(tmp_path.glob("*.json"))
    data = json.loads(result.read_text())
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["memory_mib"] > 0 and machine["kernel"] and machine["python"]
    assert {"fastapi", "starlette", "uvicorn", "sqlalchemy"} <= machine["packages"].keys()
    assert any(v.startswith("SQLite") for v in machine["databases"])
    phases = {row["phase"] for row in data["rows"]}
    assert {"send c16 vs insert", "send c64 vs ping", "read c16 vs insert"} <= phases
    assert any(p.startswith("audit verify") for p in phases) and any(p.startswith("submit → Kafka") for p in phases)
    assert all(run["requests"] > 0 for run in data["runs"] if "requests" in run)
