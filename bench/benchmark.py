"""The HTTP benchmark (issue 17): the gateway as users run it (`brb serve`, uvicorn, in its own process)
under a real load generator (Debian's `wrk`, in another process, fresh single-use tokens minted beforehand),
against baselines measured in the same run on the same database settings, served the same way
(bench/baseline_app.py: a bare FastAPI GET /ping and POST /insert, one INSERT + COMMIT). Ratios travel
between machines; absolute figures on a shared 2-core machine mean little. docs/performance.md explains
every phase.

    make bench                           # SQLite
    make bench ARGS="--postgres"         # SQLite, then PostgreSQL (BRB_TEST_POSTGRES_URL or 127.0.0.1:5432/test)
    make bench ARGS="--quick"            # 3 s phases, 20,000 bulk rows: does it still work?

Phases (each gateway/baseline pair run twice, interleaved; the figure is the median):
  send c16/c64  POST /api/v1/messages (dr-plan to municipality:0363) vs POST /insert, and vs GET /ping
  read          GET /api/v1/messages/{id}?purpose=aftercare by Amsterdam vs POST /insert
  inbox         GET /api/v1/inbox?pageSize=50 by Amsterdam, then again with 1,000,000 stored messages
  kafka         submit -> event on Amsterdam's topic (aiokafka consumer), open loop at 200 sends/s
  audit         verify_chain over 1,000,000 bulk-loaded records (records/s)
  rss           peak resident set (VmHWM) of the gateway, baseline and load generator processes
  workers       PostgreSQL only: `brb serve --workers 2` vs `--workers 1` (send c16)

Output: one table, and .var/bench/<timestamp>.json with every run and the machine description."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import httpx
import jwt
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.audit.queries import verify_chain  # noqa: E402
from gateway.audit.record import FIELDS  # noqa: E402
from gateway.broker import LoopbackBroker, free_port  # noqa: E402
from gateway.db.engine import create_engine  # noqa: E402
from gateway.db.migrate import upgrade_async  # noqa: E402
from gateway.db.models import Delivery, Message  # noqa: E402
from gateway.outbox.relay import org_topic  # noqa: E402
from gateway.services import Services  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from tests.conftest import PG_URL, Org, TestDatabase, register_demo_organisations, settings_env, settings_for  # noqa: E402
from tests.scenario import example  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 180)
cli = typer.Typer(add_completion=False)
OUT = ROOT / ".var" / "bench"
LUA = ROOT / "bench" / "load.lua"
TOKEN_LIFETIME = 300  # as a connector mints them; minted right before each load run
KAFKA_RATE = 200
KAFKA_SUSTAINED_RATE = 25  # a rate one gateway process answers: the latency is then the relay's, not a queue's


@dataclass
class Config:
    duration: int
    bulk: int
    quick: bool
    threads: int = 2
    reps: int = 2  # each gateway/baseline pair, interleaved; the figure is the median
    kafka_rate: int = KAFKA_RATE
    kafka_sustained_rate: int = KAFKA_SUSTAINED_RATE
    out: Path = OUT


@dataclass
class Load:
    """One wrk run's figures (or the open-loop sender's)."""

    target: str
    connections: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    tokens_exhausted: int = 0
    peak_rss_kib: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Row:
    backend: str
    phase: str
    gateway: float | None
    baseline: float | None
    unit: str
    p50: str = ""
    p99: str = ""
    target: str = ""
    met: bool | None = None
    errors: int = 0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.gateway / self.baseline if self.gateway is not None and self.baseline else None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)


# --- processes ---------------------------------------------------------------------------------------

def peak_rss_kib(pid: int) -> int:
    """VmHWM of a live process (KiB), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Server:
    """A server process on 127.0.0.1 (the gateway or the baseline), its log in a file, stopped in ``stop``."""

    def __init__(self, name: str, argv: list[str], env: dict, ready_path: str, log: Path):
        self.name, self.argv, self.env, self.ready_path, self.log = name, argv, env, ready_path, log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Server":
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*self.argv, "--port", str(self.port)], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.base + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout} s; see {self.log}")

    def peak_rss_kib(self) -> int:
        """The largest VmHWM among the server process and its workers (uvicorn --workers N)."""
        if not self.proc:
            return 0
        return max([peak_rss_kib(self.proc.pid)] + [peak_rss_kib(c) for c in children_of(self.proc.pid)])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_with_rusage(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for ``proc`` (killed after ``timeout``); returns its peak RSS in KiB (getrusage of the child)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.05)


# --- tokens, bodies, load ----------------------------------------------------------------------------

class Minter:
    """Single-use tokens like ``gateway.auth.mint.mint``, with the signing key parsed once."""

    def __init__(self, org: Org):
        self.org = org
        self.key = jwt.PyJWK(org.private_jwk, algorithm="ES256").key

    def tokens(self, n: int) -> list[str]:
        now = int(time.time())
        return [jwt.encode({"iss": self.org.oin, "sub": self.org.oin, "aud": self.org.audience, "iat": now,
                            "exp": now + TOKEN_LIFETIME, "jti": uuid.uuid4().hex, "scope": self.org.scopes},
                           self.key, algorithm="ES256", headers={"kid": self.org.private_jwk["kid"]}) for _ in range(n)]


class Loader:
    """Runs wrk against a server; mints as many tokens as the run can use (and again, more, if it ran out)."""

    def __init__(self, cfg: Config, work: Path, report: Report):
        self.cfg, self.work, self.report = cfg, work, report
        self.expected_rps: dict[str, float] = {}
        work.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.work / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def run(self, label: str, server: Server, mode: str, path: str, connections: int, *, minter: Minter | None = None,
            ids: list[str] | None = None, body: bytes | None = None, seconds: int | None = None,
            record: bool = True) -> Load:
        seconds = seconds or self.cfg.duration
        threads = min(self.cfg.threads, connections)  # wrk wants a connection per thread at least
        for attempt in range(3):
            tokens = "-"
            if minter:
                guess = self.expected_rps.get(label, 400 if mode == "post-token" else 1500) * (2 ** attempt)
                tokens = str(self.write("tokens.txt", "\n".join(minter.tokens(int(guess * seconds * 1.5) + 200)) + "\n"))
            ids_file = str(self.write("ids.txt", "\n".join(ids) + "\n")) if ids else "-"
            body_file = str(self.write("body.json", body)) if body is not None else "-"
            argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
                    "--latency", "-s", str(LUA), server.base + "/",
                    "--", mode, path, str(threads), uuid.uuid4().hex[:12], tokens, ids_file, body_file]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            rss = wait_with_rusage(proc, seconds + 60)
            out = proc.stdout.read()
            line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
            if proc.returncode != 0 or line is None:
                raise RuntimeError(f"wrk failed ({proc.returncode}) on {label}:\n{out}")
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            errors = raw["status_errors"] + raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
            load = Load(label, connections, raw["requests"], raw["duration_us"] / 1e6, errors, raw["p50_us"] / 1e3,
                        raw["p99_us"] / 1e3, raw["tokens_exhausted"], rss)
            if not load.tokens_exhausted:
                break
            self.expected_rps[label] = load.rps  # too few tokens minted: again, with more
        self.expected_rps[label] = max(self.expected_rps.get(label, 0), load.rps)
        self.report.rss["load generator (wrk)"] = max(self.report.rss.get("load generator (wrk)", 0), rss)
        if record:
            self.report.runs.append({**asdict(load), "rps": load.rps})
            console.log(f"{label:<34} c{connections:<3} {load.rps:8.1f}/s  p50 {load.p50_ms:7.1f} ms  "
                        f"p99 {load.p99_ms:7.1f} ms  errors {load.errors}")
        return load


def median(loads: list[Load]) -> Load:
    """The median run by requests/s (of two: their mean), errors summed."""
    return Load(loads[0].target, loads[0].connections, statistics.median(x.rps for x in loads), 1.0,  # requests: the rate
                sum(x.errors for x in loads), statistics.median(x.p50_ms for x in loads),
                statistics.median(x.p99_ms for x in loads))


# --- databases -----------------------------------------------------------------------------------------

class Backend:
    """A fresh database per use: a SQLite file, or a PostgreSQL schema dropped at the end."""

    def __init__(self, name: str, work: Path):
        self.name, self.work = name, work
        self.schemas: list[str] = []

    async def fresh(self, label: str) -> TestDatabase:
        if self.name == "sqlite":
            url = f"sqlite+aiosqlite:///{self.work / label}.sqlite3"
            await upgrade_async(url)
            return TestDatabase(url, None)
        schema = f"bench_{uuid.uuid4().hex[:8]}_{label}"
        engine = create_engine(PG_URL)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        finally:
            await engine.dispose()
        self.schemas.append(schema)
        await upgrade_async(PG_URL, schema)
        return TestDatabase(PG_URL, schema)

    async def drop(self) -> None:
        if not self.schemas:
            return
        engine = create_engine(PG_URL)
        try:
            async with engine.begin() as conn:
                for schema in self.schemas:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await engine.dispose()

    async def version(self) -> str:
        if self.name == "sqlite":
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        engine = create_engine(PG_URL)
        try:
            async with engine.connect() as conn:
                return "PostgreSQL " + (await conn.execute(text("SHOW server_version"))).scalar_one()
        finally:
            await engine.dispose()


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    return env | settings_env(settings) | {"PYTHONPATH": str(ROOT)} | extra


def brb() -> list[str]:
    exe = Path(sys.executable).parent / "brb"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gateway.cli"]


def bench_settings(db: TestDatabase, **overrides) -> Settings:
    """The test settings with what a user would run: default relay timing, a rate limit out of the way."""
    defaults = Settings.model_fields
    return settings_for(db, rate_limit_per_minute=100_000_000, relay_idle_seconds=defaults["relay_idle_seconds"].default,
                        log_level="INFO", **overrides)


async def competence(base: str, orgs) -> None:
    """The detention-notice that makes Amsterdam competent for the subject of the dr-plan example."""
    notice = {"type": "detention-notice", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
              "payload": example("detention-notice")}
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{base}/api/v1/messages", json=notice,
                            headers=orgs.vught.headers(**{"Idempotency-Key": uuid.uuid4().hex}))
    if r.status_code != 201:
        raise RuntimeError(f"the detention-notice was refused: {r.status_code} {r.text[:300]}")


def send_body() -> bytes:
    return json.dumps({"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
                       "payload": example("dr-plan")}).encode()


# --- bulk loads (straight SQL, not through the API) ------------------------------------------------------

BULK_CHUNK = 100_000


async def bulk_messages(svc: Services, recipient: str, count: int) -> None:
    """``count`` more messages with a delivery to ``recipient``: copies of its newest delivered message (the
    same sealed payload and decision), new ids, the next inbox positions; INSERT ... SELECT in chunks."""
    sqlite = svc.db.is_sqlite
    m_cols = [c.name for c in Message.__table__.columns]
    d_cols = [c.name for c in Delivery.__table__.columns if c.name != "id"]
    new_id = ("printf('00000000-0000-4000-8000-%012d', n.i)" if sqlite
              else "'00000000-0000-4000-8000-' || lpad(n.i::text, 12, '0')")
    m_sel = ", ".join(new_id if c == "id" else f"m.{c}" for c in m_cols)
    d_sel = ", ".join(new_id if c == "message_id" else "t.base + n.i" if c == "inbox_position" else f"d.{c}" for c in d_cols)
    series = ("(WITH RECURSIVE s(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM s WHERE i < :hi) SELECT i FROM s) AS n"
              if sqlite else "generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n(i)")
    template = (await sql(svc, "SELECT id, message_id, inbox_position FROM deliveries WHERE recipient_oin = :r "
                          "ORDER BY inbox_position DESC LIMIT 1", {"r": recipient})).one()
    base = template.inbox_position
    for lo in range(1, count + 1, BULK_CHUNK):
        hi = min(count, lo + BULK_CHUNK - 1)
        async with svc.db.write() as s:
            conn = await s.connection()
            await conn.execute(text(
                f"INSERT INTO messages ({', '.join(m_cols)}) SELECT {m_sel} FROM {series}, messages m WHERE m.id = :mid"),
                {"lo": lo, "hi": hi, "mid": template.message_id})
            await conn.execute(text(
                f"INSERT INTO deliveries ({', '.join(d_cols)}) SELECT {d_sel} FROM {series}, deliveries d, "
                f"(SELECT CAST(:base AS bigint) AS base) t WHERE d.id = :did"),
                {"lo": lo, "hi": hi, "did": template.id, "base": base})
    await sql(svc, "UPDATE organisations SET inbox_position = :p WHERE oin = :r", {"p": base + count, "r": recipient}, write=True)
    if not sqlite:  # autovacuum would have analysed a table that grew like this; SQLite has no such thing
        async with svc.db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE messages"))
            await conn.execute(text("ANALYZE deliveries"))


async def bulk_audit(svc: Services, actor: str, counterparty: str, count: int) -> None:
    """``count`` more valid audit records after the chain's head, hashed with ``AuditChain.digest``, written
    with the driver's own bulk path (sqlite3 executemany; asyncpg COPY), then the head moved to the last."""
    head = (await sql(svc, "SELECT seq, hash FROM audit_head WHERE id = 1")).one()
    seq, prev = head.seq, head.hash
    now = datetime.now(timezone.utc)
    stored_at = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if svc.db.is_sqlite else now  # as SQLAlchemy stores it
    async with svc.db.engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        for lo in range(0, count, BULK_CHUNK):
            rows = []
            for i in range(lo, min(count, lo + BULK_CHUNK)):
                seq += 1
                row = dict.fromkeys(FIELDS)
                row.update(seq=seq, id=str(uuid.uuid4()), trace_id=uuid.uuid4().hex, activity="read", actor_oin=actor,
                           counterparty_oin=counterparty, subject_id="s" * 64, message_id=str(uuid.UUID(int=i)),
                           purpose="aftercare", legal_basis="art-18a-pbw", rule="competent-municipality", outcome="allow",
                           recorded_at=now, prev_hash=prev)
                row["hash"] = prev = svc.audit.digest(prev, row)
                row["recorded_at"] = stored_at
                rows.append(tuple(row[f] for f in FIELDS))
            if svc.db.is_sqlite:
                await raw.executemany(f"INSERT INTO audit_records ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})", rows)
            else:
                await raw.copy_records_to_table("audit_records", records=rows, columns=list(FIELDS),
                                                schema_name=svc.settings.database_schema)
        await conn.execute(text("UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"), {"seq": seq, "hash": prev})


async def sql(svc: Services, statement: str, params: dict | None = None, write: bool = False):
    """One raw SQL statement in its own read session or write unit."""
    async with (svc.db.write() if write else svc.db.read()) as session:
        return await (await session.connection()).execute(text(statement), params or {})


async def ids_for(svc: Services, recipient: str, limit: int = 2000) -> list[str]:
    return list((await sql(svc, "SELECT message_id FROM deliveries WHERE recipient_oin = :r ORDER BY id LIMIT :n",
                           {"r": recipient, "n": limit})).scalars())


# --- phases -----------------------------------------------------------------------------------------------

def ms(load: Load) -> tuple[str, str]:
    return f"{load.p50_ms:.1f}", f"{load.p99_ms:.1f}"


def pair_row(backend: str, phase: str, gw: Load, base: Load, target_ratio: float | None = None,
             target_p99: float | None = None) -> Row:
    row = Row(backend, phase, gw.requests, base.requests, "req/s", f"{gw.p50_ms:.1f} / {base.p50_ms:.1f}",
              f"{gw.p99_ms:.1f} / {base.p99_ms:.1f}", errors=gw.errors + base.errors)
    targets, met = [], []
    if target_ratio is not None:
        targets.append(f"≥ {target_ratio}×")
        met.append(row.ratio is not None and row.ratio >= target_ratio)
    if target_p99 is not None:
        targets.append(f"p99 ≤ {target_p99:g} ms")
        met.append(gw.p99_ms <= target_p99)
    row.target = ", ".join(targets)
    row.met = all(met) if met else None
    return row


def latency_row(backend: str, phase: str, load: Load, target_p99: float) -> Row:
    """A figure of one connection (closed loop, no queue in front of the server): the request's own latency."""
    return Row(backend, phase, load.requests, None, "req/s", f"{load.p50_ms:.1f}", f"{load.p99_ms:.1f}",
               f"p99 ≤ {target_p99:g} ms", load.p99_ms <= target_p99, load.errors)


async def http_phases(backend: Backend, cfg: Config, loader: Loader, report: Report, logs: Path) -> None:
    """Phases 1-3, 5, 6 and (PostgreSQL) 7 on one database."""
    name = backend.name
    db = await backend.fresh("main")
    svc = Services.from_settings(bench_settings(db))
    gateways: list[Server] = []
    try:
        orgs = await register_demo_organisations(svc)
        vught, amsterdam = Minter(orgs.vught), Minter(orgs.amsterdam)
        settings = bench_settings(db)
        gw_env = child_env(settings, BRB_RUN_WORKERS="false")
        base_db = await backend.fresh("baseline")
        base_env = child_env(bench_settings(base_db))

        def gateway(workers: int = 1) -> Server:
            server = Server(f"gateway w{workers}", [*brb(), "serve", "--workers", str(workers)], gw_env, "/health/live",
                            logs / f"{name}-gateway.log")
            gateways.append(server)
            return server.start()

        gw = gateway()
        base = Server("baseline", [sys.executable, str(ROOT / "bench" / "baseline_app.py")], base_env, "/ping",
                      logs / f"{name}-baseline.log").start()
        gateways.append(base)
        body = send_body()
        await competence(gw.base, orgs)

        # warm-up: connection pools, imports, caches (not recorded)
        warm = max(1, cfg.duration // 5)
        loader.run("warm send", gw, "post-token", "/api/v1/messages", 16, minter=vught, body=body, seconds=warm, record=False)
        loader.run("warm insert", base, "post", "/insert", 16, body=body, seconds=warm, record=False)

        for c in (16, 64):  # phase 1
            gws, ins, pings = [], [], []
            for _rep in range(cfg.reps):
                gws.append(loader.run(f"{name} send c{c}", gw, "post-token", "/api/v1/messages", c, minter=vught, body=body))
                ins.append(loader.run(f"{name} baseline insert c{c}", base, "post", "/insert", c, body=body))
                pings.append(loader.run(f"{name} baseline ping c{c}", base, "get", "/ping", c))
            g, i, p = median(gws), median(ins), median(pings)
            report.rows.append(pair_row(name, f"send c{c} vs insert", g, i, 0.33, 50 if c == 16 else None))
            report.rows.append(pair_row(name, f"send c{c} vs ping", g, p))

        ids = await ids_for(svc, orgs.amsterdam.oin)  # phase 2
        reads, ins = [], []
        for _rep in range(cfg.reps):
            reads.append(loader.run(f"{name} read c16", gw, "get-token", "/api/v1/messages/{id}?purpose=aftercare", 16,
                                    minter=amsterdam, ids=ids))
            ins.append(loader.run(f"{name} baseline insert c16", base, "post", "/insert", 16, body=body))
        report.rows.append(pair_row(name, "read c16 vs insert", median(reads), median(ins), 0.3))

        inbox, single, ins = [], [], []  # phase 3, as the sends left it
        stored = (await sql(svc, "SELECT count(*) FROM deliveries WHERE recipient_oin = :r", {"r": orgs.amsterdam.oin})).scalar_one()
        for _rep in range(cfg.reps):
            inbox.append(loader.run(f"{name} inbox c16", gw, "get-token", "/api/v1/inbox?pageSize=50", 16, minter=amsterdam))
            single.append(loader.run(f"{name} inbox c1", gw, "get-token", "/api/v1/inbox?pageSize=50", 1, minter=amsterdam))
            ins.append(loader.run(f"{name} baseline insert c16", base, "post", "/insert", 16, body=body))
        report.rows.append(pair_row(name, f"inbox page c16, {stored:,} stored, vs insert", median(inbox), median(ins)))
        report.rows.append(latency_row(name, f"inbox page c1 (no queue), {stored:,} stored", median(single), 20))
        report.rss[f"{name} gateway (send, read, inbox)"] = gw.peak_rss_kib()
        gw.stop()

        if name == "postgresql":  # phase 7
            runs: dict[int, list[Load]] = {1: [], 2: []}
            for _rep in range(cfg.reps):
                for workers in (1, 2):
                    server = gateway(workers)
                    loader.run(f"warm w{workers}", server, "post-token", "/api/v1/messages", 16, minter=vught, body=body,
                               seconds=warm, record=False)
                    runs[workers].append(loader.run(f"{name} send c16 workers={workers}", server, "post-token",
                                                    "/api/v1/messages", 16, minter=vught, body=body))
                    report.rss[f"{name} gateway worker (--workers {workers})"] = server.peak_rss_kib()
                    server.stop()
            report.rows.append(pair_row(name, "send c16 workers 2 vs 1", median(runs[2]), median(runs[1]), 1.6))

        console.log(f"{name}: bulk-loading {cfg.bulk:,} messages for Amsterdam")
        started = time.perf_counter()
        await bulk_messages(svc, orgs.amsterdam.oin, cfg.bulk)
        console.log(f"{name}: loaded in {time.perf_counter() - started:.1f} s")
        gw = gateway()  # a fresh process: its peak RSS is this phase's
        loader.run("warm inbox", gw, "get-token", "/api/v1/inbox?pageSize=50", 16, minter=amsterdam, seconds=warm, record=False)
        big, single = [], []
        for _rep in range(cfg.reps):
            big.append(loader.run(f"{name} inbox c16 ({cfg.bulk + stored:,} stored)", gw, "get-token",
                                  "/api/v1/inbox?pageSize=50", 16, minter=amsterdam))
            single.append(loader.run(f"{name} inbox c1 ({cfg.bulk + stored:,} stored)", gw, "get-token",
                                     "/api/v1/inbox?pageSize=50", 1, minter=amsterdam))
        report.rows.append(pair_row(name, f"inbox page c16, {cfg.bulk + stored:,} stored, vs insert", median(big), median(ins),
                                    target_p99=20))
        report.rows.append(latency_row(name, f"inbox page c1 (no queue), {cfg.bulk + stored:,} stored", median(single), 20))
        rss = gw.peak_rss_kib()
        report.rss[f"{name} gateway (inbox, {cfg.bulk + stored:,} stored)"] = rss
        report.rows.append(Row(name, f"gateway peak RSS, {cfg.bulk + stored:,} stored", rss / 1024, None, "MiB",
                               target="< 300 MiB", met=rss / 1024 < 300))
        report.rss[f"{name} baseline"] = base.peak_rss_kib()
        gw.stop()
        base.stop()

        console.log(f"{name}: bulk-loading {cfg.bulk:,} audit records")  # phase 5
        await bulk_audit(svc, orgs.amsterdam.oin, orgs.vught.oin, cfg.bulk)
        started = time.perf_counter()
        result = await verify_chain(svc)
        seconds = time.perf_counter() - started
        rate = result.checked / seconds
        report.rows.append(Row(name, f"audit verify, {result.checked:,} records", rate, None, "records/s",
                               target="≥ 200,000/s", met=result.intact and rate >= 200_000,
                               note="" if result.intact else f"NOT INTACT: {result.reason}"))
        report.runs.append({"target": f"{name} audit verify", "records": result.checked, "seconds": seconds,
                            "intact": result.intact})
        console.log(f"{name}: verified {result.checked:,} records in {seconds:.1f} s ({rate:,.0f}/s), intact={result.intact}")
    finally:
        for server in gateways:
            server.stop()
        await svc.db.dispose()


async def kafka_phase(backend: Backend, cfg: Config, loader: Loader, report: Report, logs: Path, broker: LoopbackBroker,
                      rate: int) -> None:
    """Phase 4: submit -> event on the recipient's organisation topic, open loop at ``rate`` sends/s, the relay
    inside the gateway (BRB_RUN_WORKERS=true, default relay settings). Run at the target's 200/s and at a rate
    the gateway answers (KAFKA_SUSTAINED_RATE): above what it answers the figure is the queue in front of it."""
    from aiokafka import AIOKafkaConsumer

    name = backend.name
    db = await backend.fresh(f"kafka{rate}")
    settings = bench_settings(db, kafka_bootstrap_servers=broker.bootstrap)
    svc = Services.from_settings(settings)
    gw = consumer = None
    arrivals: dict[str, float] = {}
    try:
        orgs = await register_demo_organisations(svc)
        gw = Server("gateway (relay)", [*brb(), "serve"], child_env(settings, BRB_RUN_WORKERS="true"), "/health/ready",
                    logs / f"{name}-gateway-kafka.log").start()
        topic = org_topic(settings.kafka_topic_prefix, orgs.amsterdam.oin)
        await competence(gw.base, orgs)  # its event creates Amsterdam's topic and shows the consumer is ready
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    fetch_max_wait_ms=10)  # visible when it arrives, not when a long poll ends
        await consumer.start()

        async def consume() -> None:
            async for record in consumer:
                data = json.loads(record.value).get("data", {})
                if data.get("messageId"):
                    arrivals.setdefault(data["messageId"], time.time())

        task = asyncio.create_task(consume())
        deadline = time.monotonic() + 60
        while not arrivals and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not arrivals:
            raise RuntimeError("the consumer saw no event of the detention-notice within 60 s")
        seconds = cfg.duration
        tokens = loader.write("kafka-tokens.txt", "\n".join(Minter(orgs.vught).tokens(rate * seconds)) + "\n")
        body = loader.write("kafka-body.json", send_body())
        out = loader.work / "kafka-sends.jsonl"
        sender = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "open_loop.py"), f"{gw.base}/api/v1/messages", str(tokens), str(body),
            str(rate), str(seconds), str(out), cwd=ROOT)
        sender_pid, rss = sender.pid, 0
        while sender.returncode is None:
            rss = max(rss, peak_rss_kib(sender_pid))
            try:
                await asyncio.wait_for(sender.wait(), 0.2)
            except TimeoutError:
                pass
        report.rss["load generator (open-loop sender)"] = rss
        sends = [json.loads(line) for line in out.read_text().splitlines()]
        wanted = {s["id"] for s in sends if s["id"]}
        deadline = time.monotonic() + 10
        while not wanted <= arrivals.keys() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        task.cancel()
        latencies = sorted((arrivals[s["id"]] - s["start"]) * 1e3 for s in sends if s["id"] in arrivals)
        failed = sum(1 for s in sends if s["status"] != 201)
        missing = len(wanted - arrivals.keys())
        p50 = statistics.quantiles(latencies, n=100)[49] if len(latencies) > 1 else float("nan")
        p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else float("nan")
        http = sorted(s["http_ms"] for s in sends if s["http_ms"] is not None) or [float("nan")] * 2
        ok = [s for s in sends if s["status"] == 201]  # the rate the gateway answered at (below the offered rate when it falls behind)
        span = (max(s["start"] + s["http_ms"] / 1e3 for s in ok) - min(s["start"] for s in ok)) if ok else 0
        achieved = len(ok) / span if span else 0.0
        report.rows.append(Row(name, f"submit → Kafka consumer, {rate}/s open loop", achieved, None, "sends/s",
                               f"{p50:.1f}", f"{p99:.1f}", "p99 ≤ 100 ms" if rate >= KAFKA_RATE else "—", p99 <= 100 and not failed and not missing,
                               failed + missing, note=f"HTTP p50 {statistics.median(http):.1f} ms, "
                               f"p99 {statistics.quantiles(http, n=100)[98]:.1f} ms; {missing} event(s) missing"))
        report.runs.append({"target": f"{name} kafka {rate}/s", "rate": rate, "sends": len(sends), "failed": failed, "missing": missing,
                            "p50_ms": p50, "p99_ms": p99, "relay_idle_seconds": settings.relay_idle_seconds})
        report.rss[f"{name} gateway (relay running)"] = gw.peak_rss_kib()
        console.log(f"{name} kafka: {len(sends)} sends, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {failed} failed, {missing} missing")
    finally:
        if consumer is not None:
            await consumer.stop()
        if gw is not None:
            gw.stop()
        await svc.db.dispose()


# --- the machine, the table, the file ---------------------------------------------------------------

def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def tree_state() -> str:
    """The commit and the uncommitted changes to tracked and new files: a server restarted mid-run (the
    phases start fresh ones) would otherwise run other code than the one the JSON names."""
    untracked = git("ls-files", "--others", "--exclude-standard").splitlines()
    digest = hashlib.sha256(git("rev-parse", "HEAD").encode() + git("diff", "HEAD").encode())
    for name in sorted(untracked):
        try:
            digest.update(name.encode() + (ROOT / name).read_bytes())
        except OSError:
            pass
    return digest.hexdigest()


def machine(db_versions: list[str]) -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next((int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), 0)

    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem // 1024, "kernel": platform.release(),
        "os": platform.platform(), "python": platform.python_version(),
        "packages": {p: metadata.version(p) for p in ("fastapi", "starlette", "uvicorn", "sqlalchemy", "sqlmodel",
                                                      "aiosqlite", "asyncpg", "pydantic", "pyjwt", "aiokafka", "httpx")},
        "databases": db_versions, "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "",
        "git_commit": git("rev-parse", "HEAD"), "git_dirty_files": git("status", "--porcelain").splitlines(),
        "tree_sha256": tree_state(),  # the commit plus the uncommitted and new files
    }


def table(report: Report, title: str) -> Table:
    t = Table(title=title)
    for col in ("backend", "phase", "gateway", "baseline", "ratio", "p50 ms", "p99 ms", "target", "met?"):
        t.add_column(col, justify="left" if col in ("backend", "phase", "target") else "right")
    for r in report.rows:
        fmt = (lambda v: f"{v:,.0f}" if v >= 100 else f"{v:,.1f}")
        met = "—" if r.met is None else ("yes" if r.met else "NO")
        if r.errors:
            met = f"NO ({r.errors} errors)"
        t.add_row(r.backend, r.phase, "" if r.gateway is None else f"{fmt(r.gateway)} {r.unit}",
                  "" if r.baseline is None else fmt(r.baseline), "" if r.ratio is None else f"{r.ratio:.2f}×",
                  r.p50, r.p99, r.target, met)
    return t


async def run(cfg: Config, postgres: bool) -> Path:
    if shutil.which("wrk") is None:
        console.print("[red]wrk is not installed[/red]: `make wrk` (Debian: apt-get install wrk) and run again")
        raise typer.Exit(2)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = cfg.out / f"run-{stamp}"
    logs = work / "logs"
    logs.mkdir(parents=True)
    report = Report()
    loader = Loader(cfg, work / "load", report)
    started = time.perf_counter()
    versions = []
    tree_at_start = tree_state()
    broker = LoopbackBroker(log_file=logs / "broker.log").start()
    try:
        for name in ["sqlite"] + (["postgresql"] if postgres else []):
            backend = Backend(name, work)
            try:
                versions.append(await backend.version())
                await http_phases(backend, cfg, loader, report, logs)
                for rate in dict.fromkeys((cfg.kafka_rate, cfg.kafka_sustained_rate)):
                    await kafka_phase(backend, cfg, loader, report, logs, broker, rate)
            finally:
                await backend.drop()
    finally:
        broker.stop()
    for label, kib in report.rss.items():
        report.rows.append(Row("", f"peak RSS: {label}", kib / 1024, None, "MiB"))
    title = f"Berichtenbox Re-integratie HTTP benchmark ({cfg.duration} s per run, {'quick' if cfg.quick else 'full'})"
    console.print(table(report, title))
    tree_changed = tree_state() != tree_at_start
    if tree_changed:
        console.print("[red]the working tree changed during the run[/red]: its figures mix versions of the code; run again")
    result = {"started": stamp, "seconds": time.perf_counter() - started, "config": asdict(cfg), "machine": machine(versions),
              "tree_changed_during_run": tree_changed,
              "rows": [{**asdict(r), "ratio": r.ratio} for r in report.rows], "runs": report.runs,
              "peak_rss_kib": report.rss}
    path = cfg.out / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    for db_file in work.glob("*.sqlite3*"):  # the bulk-loaded databases are large; the logs stay
        db_file.unlink()
    console.print(f"results: {path} (logs: {logs}); {time.perf_counter() - started:.0f} s")
    return path


@cli.command()
def main(postgres: bool = typer.Option(False, help="also PostgreSQL (BRB_TEST_POSTGRES_URL or 127.0.0.1:5432/test)"),
         quick: bool = typer.Option(False, help="3 s runs and 20,000 bulk rows: checks the benchmark, not the gateway"),
         duration: int = typer.Option(0, help="seconds per load run (default 8, --quick 3)"),
         bulk: int = typer.Option(0, help="messages and audit records bulk-loaded (default 1,000,000, --quick 20,000)"),
         smoke: bool = typer.Option(False, help="1 s runs, one of each, 500 bulk rows, 10 sends/s: the test suite's check"),
         out: Path = typer.Option(OUT, help="where the JSON file and the run's logs go")) -> None:
    if smoke:
        cfg = Config(duration=duration or 1, bulk=bulk or 500, quick=True, reps=1, kafka_rate=10, kafka_sustained_rate=10, out=out)
    else:
        cfg = Config(duration=duration or (3 if quick else 8), bulk=bulk or (20_000 if quick else 1_000_000), quick=quick, out=out)
    asyncio.run(run(cfg, postgres))


if __name__ == "__main__":
    cli()
