"""The committed Bruno collection (docs/collection/bruno, ``make collection``) is the committed openapi.yaml:
every operation is in it with its example body, and regenerating it changes nothing."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "docs" / "collection" / "bruno"
DOC = yaml.safe_load((ROOT / "openapi.yaml").read_text())
METHODS = ("get", "post", "put", "patch", "delete")


def _blocks(text: str) -> dict[str, str]:
    """The top-level ``name { ... }`` blocks of a .bru file (the first of each name), by name."""
    out: dict[str, str] = {}
    for m in re.finditer(r"^([a-z:-]+) \{\n(.*?)^\}$", text, re.M | re.S):
        out.setdefault(m.group(1), m.group(2))
    return out


def _requests() -> dict[tuple[str, str], dict]:
    """(METHOD, OpenAPI path) -> the request's name, and its JSON body when it has one."""
    found = {}
    for file in COLLECTION.rglob("*.bru"):
        if file.name in ("folder.bru", "collection.bru") or file.parent.name == "environments":
            continue
        blocks = _blocks(file.read_text())
        method = next(m for m in METHODS if m in blocks)
        url = re.search(r"^\s*url: \{\{baseUrl\}\}(\S*)$", blocks[method], re.M).group(1)
        path = re.sub(r":([A-Za-z_]+)", r"{\1}", url.split("?", 1)[0])
        body = blocks.get("body:json")
        found[(method.upper(), path)] = {
            "name": re.search(r"^\s*name: (.*)$", blocks["meta"], re.M).group(1),
            "body": json.loads(body) if body is not None else None,
        }
    return found


def test_every_operation_of_openapi_yaml_is_in_the_collection_with_its_example():
    requests = _requests()
    operations = {(m.upper(), p): op for p, item in DOC["paths"].items() for m, op in item.items() if m in METHODS}
    missing = [f"{op['operationId']} ({m} {p})" for (m, p), op in operations.items() if (m, p) not in requests]
    assert not missing, f"not in {COLLECTION.relative_to(ROOT)}: {missing}; run `make collection`"
    assert set(requests) == set(operations), "the collection holds requests openapi.yaml no longer has: run `make collection`"
    for key, op in operations.items():
        assert requests[key]["name"] == op["summary"], key
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        assert requests[key]["body"] == body.get("example"), f"{op['operationId']}: the collection's body is not the example"


def test_the_local_environment_points_at_make_run():
    text = (COLLECTION / "environments" / "local.bru").read_text()
    assert "baseUrl: http://127.0.0.1:8000/api/v1" in text


def _diff_all(a: Path, b: Path) -> list[str]:
    left = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    right = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    return sorted(str(p) for p in left ^ right) + sorted(
        str(p) for p in left & right if (a / p).read_bytes() != (b / p).read_bytes())


def test_the_committed_collection_is_what_make_collection_generates(tmp_path):
    # `make test` installs node_modules first (its lint-api step); run alone, this says what is missing
    assert (ROOT / "node_modules" / ".bin" / "bru").exists(), "run `make node_modules/.installed` (@usebruno/cli)"
    assert shutil.which("make"), "make is needed"
    out = tmp_path / "bruno"
    # -o: use the node_modules as installed (no npm install from a test)
    run = subprocess.run(["make", "-s", "-o", "node_modules/.installed", "collection", f"COLLECTION={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    differences = _diff_all(COLLECTION, out)
    assert not differences, f"docs/collection/bruno differs from openapi.yaml in {differences}: run `make collection`"
