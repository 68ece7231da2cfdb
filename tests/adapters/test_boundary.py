"""Adapters are outside parties: nothing under adapters/ may import the gateway (they use its HTTP API
and its Kafka events, like any vendor's connector would); the client package imports nothing of the
repository at all, so it installs and runs on its own."""
import ast
import subprocess
import sys
import zipfile
from pathlib import Path

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"
CLIENT = ADAPTERS / "brb-client"


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
    return names


def test_no_adapter_module_imports_the_gateway():
    offenders = []
    for path in ADAPTERS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ADAPTERS)}: {n}" for n in names if n == "gateway" or n.startswith("gateway.")]
    assert len(list(ADAPTERS.rglob("*.py"))) >= 10  # the adapters are there to be checked
    assert offenders == []


def test_the_client_package_imports_nothing_of_the_repository():
    ours = ("gateway", "contracts", "consent", "adapters", "tests")
    modules = list((CLIENT / "brb_client").rglob("*.py"))
    offenders = [f"{p.name}: {n}" for p in modules for n in imported(p) if n.split(".")[0] in ours]
    assert len(modules) >= 4 and offenders == []


def test_the_client_package_builds_into_a_wheel_of_its_own(tmp_path):
    """What a connector vendor installs: a wheel holding brb_client and nothing else of this repository."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(CLIENT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("brb_client-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.startswith("brb_client-")}
    assert packages == {"brb_client"} and "brb_client/auth.py" in names
