"""Adapters are outside parties: nothing under adapters/ may import the gateway (they use its HTTP API
and its Kafka events, like any vendor's connector would)."""
import ast
from pathlib import Path

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"


def test_no_adapter_module_imports_the_gateway():
    offenders = []
    for path in ADAPTERS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ADAPTERS)}: {n}" for n in names if n == "gateway" or n.startswith("gateway.")]
    assert len(list(ADAPTERS.rglob("*.py"))) >= 10  # the adapters are there to be checked
    assert offenders == []
