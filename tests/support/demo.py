"""`brb demo` started as a user starts it (what `make run` runs), in a folder of the test's own, on free
loopback ports; and tokens for its demo organisations minted from the keys it wrote."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from contracts.parties import KINDS
from gateway.auth.mint import mint
from gateway.broker import free_port
from gateway.demo import DEMO_ORGANISATIONS

ROOT = Path(__file__).resolve().parents[2]
BRB = [sys.executable, "-m", "gateway.cli"]


@dataclass
class Demo:
    base: str
    cwd: Path

    def token(self, oin: str) -> str:
        private = json.loads((self.cwd / ".var" / "demo-keys" / f"{oin}.jwk.json").read_text())
        kind = next(o["kind"] for o in DEMO_ORGANISATIONS if o["oin"] == oin)
        return mint(private, oin, "urn:nl:brb:gateway", KINDS[kind].default_scope)

    def headers(self, oin: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(oin)}", **extra}


@contextlib.contextmanager
def running_demo(folder: Path, ready_within: float = 60) -> Iterator[Demo]:
    port, kafka_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = str(ROOT)
    log_path = folder / "demo.log"
    with open(log_path, "w") as log:
        demo = subprocess.Popen(BRB + ["demo", "--port", str(port), "--kafka-port", str(kafka_port)], cwd=folder, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while time.monotonic() - started < ready_within:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            assert demo.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.25)
        else:
            raise AssertionError(f"demo not ready within {ready_within} s: {log_path.read_text()[-3000:]}")
        yield Demo(base, folder)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(5)
