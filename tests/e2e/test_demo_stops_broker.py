"""`brb demo` takes its loopback broker with it: a SIGTERM to the demo process alone (as a process
manager or `kill` sends it) leaves no broker process behind."""
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from gateway.broker import free_port, port_open
from tests.e2e.test_run_command import BRB, ROOT


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_sigterm_to_the_demo_stops_its_broker(tmp_path):
    port, kafka_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = str(ROOT)
    log_path = tmp_path / "demo.log"
    log = open(log_path, "w")
    demo = subprocess.Popen(BRB + ["demo", "--port", str(port), "--kafka-port", str(kafka_port)], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    broker_pid = None
    try:
        def ready() -> bool:
            assert demo.poll() is None, log_path.read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(ready, 60), log_path.read_text()[-3000:]
        [broker_pid] = [c for c in children(demo.pid) if "--listener-url" in cmdline(c)]
        assert alive(broker_pid) and port_open("127.0.0.1", kafka_port)

        started = time.monotonic()
        os.kill(demo.pid, signal.SIGTERM)  # the demo process only, not its process group
        demo.wait(20)
        assert wait_until(lambda: not alive(broker_pid), 20 - (time.monotonic() - started)), \
            f"broker {broker_pid} still runs after the demo got SIGTERM\n" + log_path.read_text()[-3000:]
        assert not port_open("127.0.0.1", kafka_port)
        print(f"demo and broker gone {time.monotonic() - started:.1f} s after SIGTERM (demo exit code {demo.returncode})")
    finally:
        for pid in filter(None, [broker_pid]):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        log.close()
