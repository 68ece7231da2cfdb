"""/health/live, /health/ready and /metrics of a worker process (``brb relay``, ``brb dispatcher``, ``brb
retention``) on ``BRB_HEALTH_PORT`` (default 8081, 0: none), for the orchestrator's probes and Prometheus.

A worker process has no web framework running, and uvicorn would take over its signal handlers; so this is
a small HTTP/1.1 server on asyncio streams, in the worker's own event loop: one request per connection,
GET only. Readiness is ``gateway.readiness.report``: database up, broker up (relay and dispatcher), the
worker not stuck. Any other path or method gets a problem+json answer."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import readiness
from gateway.problems import PROBLEM_JSON, PROBLEM_TYPES, render
from gateway.services import Services

log = logging.getLogger("brb.worker-health")
READ_TIMEOUT_SECONDS = 5.0
MAX_HEAD_BYTES = 8192
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request", 503: "Service Unavailable"}


class HealthServer:
    """Serves the three endpoints for ``services`` (whose ``workers`` hold the process's worker health)."""

    def __init__(self, services: Services, host: str = "0.0.0.0", port: int = 8081, broker: bool = True):
        self.services, self.host, self.port, self.broker = services, host, port, broker
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> "HealthServer":
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # the port taken when asked for 0 (tests)
        log.info("worker.health-serving", extra={"host": self.host, "port": self.port})
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        path = path.split("?", 1)[0]
        if path not in ("/health/live", "/health/ready", "/metrics"):
            return _problem("not-found", f"no {path} here: /health/live, /health/ready and /metrics")
        if method not in ("GET", "HEAD"):
            return _problem("method-not-allowed", f"{method} is not allowed: use GET")
        if path == "/health/live":
            return 200, "application/json", b'{"status": "up"}'
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        status, body = await readiness.report(self.services, broker=self.broker)
        return status, "application/json", json.dumps(body).encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_SECONDS)
                method, path, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
                status, ctype, body = _problem("invalid-request", "not an HTTP/1.1 request")
                method = "GET"
            else:
                status, ctype, body = await self.answer(method, path)
            head_out = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n")
            writer.write(head_out.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except Exception:  # noqa: BLE001 - a probe's failure never reaches the worker
            log.warning("worker.health-request-failed", exc_info=True)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _problem(slug: str, detail: str) -> tuple[int, str, bytes]:
    problem = PROBLEM_TYPES[slug]
    return problem.status, PROBLEM_JSON, json.dumps(render(problem, detail, None)).encode()


@contextlib.asynccontextmanager
async def serving(services: Services, broker: bool = True, host: str = "0.0.0.0") -> AsyncIterator[HealthServer | None]:
    """The health server on ``settings.health_port`` for the block (nothing when it is 0)."""
    port = services.settings.health_port
    if not port:
        yield None
        return
    server = await HealthServer(services, host, port, broker).start()
    try:
        yield server
    finally:
        await server.stop()
