"""One fixture per real part: a database per backend (SQLite file, PostgreSQL schema), the loopback
broker, the app and its client, and the demo-like organisations with their keys and a token factory.

PostgreSQL: BRB_TEST_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test). Kafka:
KAFKA_BOOTSTRAP_SERVERS points the tests at an external cluster; otherwise a Tansu broker is started on
loopback. Neither is ever skipped: when PostgreSQL is down, its tests fail.

The migrations run once per backend per session, not per test:

- SQLite: two template files are migrated (and checkpointed into one self-contained file each) per
  session: an empty one and one with the demo organisations and their public keys. Every test gets its
  own copy of one of them (``shutil.copy``).
- PostgreSQL: one working schema is migrated per session, next to two reference schemas (empty, and with
  the demo organisations). Before every test the working schema is reset in one transaction to the
  content of a reference schema: every table emptied, the reference rows copied back (``alembic_version``,
  the ``audit_head`` row at seq 0 with the genesis hash, the organisations and their keys), every sequence
  set to the reference's state. Before that, a fingerprint of the schema's structure (tables, columns,
  defaults, indexes, constraints, triggers) is compared with the one taken right after the migration: a
  test that altered the schema (or a reset that fails, e.g. on a lock a leftover connection holds) gets a
  freshly migrated working schema instead.

The demo organisations' key pairs are generated once per session; each test gets its own ``Org``
objects (copies of the private JWKs), and its own copy of the registry rows, so a test that adds or
revokes keys changes nothing for the next one. A test gets the seeded database when it uses the ``orgs``
fixture; one that registers organisations itself gets an empty one.

The PostgreSQL working schema is the same for every test of a session: a process or connection a test
starts must end with the test (as a per-test schema would also require, to be dropped). And every
``Services`` built in this process gets its own copy of one parse of the policy catalogue
(``_ConsentParsedOnce``) instead of parsing the YAML again."""
from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import logging
import os
import shutil
import sqlite3
import threading
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

import consent
import gateway.services
from consent.catalogue import DEFAULT_PATH as CATALOGUE_PATH
from contracts.parties import KINDS
from gateway.app import create_app
from gateway.auth.mint import mint, new_key_pair
from gateway.broker import LoopbackBroker
from gateway.db.migrate import upgrade
from gateway.demo import DEMO_ORGANISATIONS
from gateway.registry import OrganisationRequest, add_key, add_organisation
from gateway.services import Services
from gateway.settings import Settings

PG_URL = os.environ.get("BRB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]
SEEDING_FIXTURES = frozenset({"orgs"})  # a test that uses one of these gets the demo organisations pre-registered


@dataclass(frozen=True)
class TestDatabase:
    url: str
    schema: str | None
    seeded: bool = False  # the demo organisations and their session keys are registered


def _in_thread(fn, *args):
    """Run ``fn`` in a thread of its own: Alembic's env and ``asyncio.run`` need a thread without a running
    event loop, and must not touch the event loop of pytest's main thread."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="brb-test-template")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


# --- the policy catalogue, parsed once ------------------------------------------------------------------

@functools.cache
def _parsed_catalogue(path: str, mtime_ns: int, size: int):
    return consent.load(path)


class _ConsentParsedOnce(types.ModuleType):
    """``consent`` as ``gateway.services`` sees it in this test process: ``load()`` parses an unchanged
    catalogue file once (its YAML takes ~90 ms to parse, and every ``Services.from_settings`` loads it) and
    hands every caller its own deep copy. A changed file (path, mtime, size) is parsed again, and errors
    are raised as before: nothing is cached but a successful parse."""

    def __getattr__(self, name: str):
        return getattr(consent, name)

    @staticmethod
    def load(path=CATALOGUE_PATH):
        try:
            stat = Path(path).stat()
        except OSError:
            return consent.load(path)  # the catalogue's own error
        return copy.deepcopy(_parsed_catalogue(str(path), stat.st_mtime_ns, stat.st_size))


@pytest.fixture(scope="session", autouse=True)
def _catalogue_parsed_once():
    patch = pytest.MonkeyPatch()
    patch.setattr(gateway.services, "consent", _ConsentParsedOnce("consent"))
    yield
    patch.undo()


# --- the demo organisations --------------------------------------------------------------------------

@dataclass
class Org:
    oin: str
    name: str
    kind: str
    private_jwk: dict
    audience: str
    cbs_code: str | None = None
    scopes: str = ""

    def token(self, scopes: str | None = None, **claims) -> str:
        return mint(self.private_jwk, self.oin, self.audience, scopes if scopes is not None else self.scopes, **claims)

    def headers(self, scopes: str | None = None, **extra) -> dict:
        return {"Authorization": f"Bearer {self.token(scopes)}", **extra}


@dataclass
class Orgs:
    by_name: dict[str, Org] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Org:
        try:
            return self.__dict__["by_name"][name]
        except KeyError:
            raise AttributeError(name) from None


ALIASES = {
    "00000001001234567000": "vught", "00000001001234568000": "zwolle", "00000001002345678000": "reclassering",
    "00000001009990363000": "amsterdam", "00000001009990599000": "rotterdam", "00000001009990363100": "mayor_amsterdam",
    "00000001009990599100": "mayor_rotterdam", "00000001009990363900": "fg_amsterdam",
    "00000001009999999000": "inspectorate", "00000001000000001000": "operator",
}


@functools.cache
def session_keys() -> dict[str, tuple[dict, dict]]:
    """One key pair per demo organisation for the whole session: OIN -> (private JWK, public JWK)."""
    return {spec["oin"]: new_key_pair(kid=f"{spec['oin'][-6:]}-t1") for spec in DEMO_ORGANISATIONS}


def demo_orgs(audience: str, keys: dict[str, tuple[dict, dict]]) -> Orgs:
    """Fresh ``Org`` objects (their own copies of the private JWKs) for keys registered in the database."""
    orgs = Orgs()
    for spec in DEMO_ORGANISATIONS:
        private = copy.deepcopy(keys[spec["oin"]][0])
        orgs.by_name[ALIASES[spec["oin"]]] = Org(spec["oin"], spec["name"], spec["kind"], private, audience,
                                                  spec.get("cbsCode"), KINDS[spec["kind"]].default_scope)
    return orgs


async def register_demo_organisations(svc: Services, keys: dict[str, tuple[dict, dict]] | None = None) -> Orgs:
    """Register the demo organisations through the registry, with new key pairs unless ``keys`` are given."""
    keys = keys or {spec["oin"]: new_key_pair(kid=f"{spec['oin'][-6:]}-t1") for spec in DEMO_ORGANISATIONS}
    for spec in DEMO_ORGANISATIONS:
        await add_organisation(svc, OrganisationRequest.model_validate(spec))
        await add_key(svc, spec["oin"], keys[spec["oin"]][1])
    return demo_orgs(svc.settings.audience, keys)


def _seed(db: TestDatabase) -> None:
    """Register the demo organisations with the session keys (in a thread without an event loop)."""
    async def run():
        svc = Services.from_settings(settings_for(db))
        try:
            await register_demo_organisations(svc, session_keys())
        finally:
            await svc.db.dispose()

    asyncio.run(run())


# --- SQLite: a migrated template file per session, copied per test ------------------------------------

def _self_contained(path: Path) -> None:
    """Fold the WAL into the main file and leave rollback-journal mode: one file that copies completely."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert con.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    finally:
        con.close()
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-")]
    assert not leftovers, f"the SQLite template is not self-contained: {leftovers}"


class SqliteTemplates:
    def __init__(self, folder: Path):
        self.empty, self.seeded = folder / "empty" / "brb.sqlite3", folder / "seeded" / "brb.sqlite3"

    def build(self) -> "SqliteTemplates":
        for path in (self.empty, self.seeded):
            path.parent.mkdir(parents=True)
            upgrade(f"sqlite+aiosqlite:///{path}")
        _seed(TestDatabase(f"sqlite+aiosqlite:///{self.seeded}", None, seeded=True))
        for path in (self.empty, self.seeded):
            _self_contained(path)
        return self

    def copy_to(self, folder: Path, seeded: bool) -> TestDatabase:
        target = folder / "brb.sqlite3"
        shutil.copy(self.seeded if seeded else self.empty, target)
        return TestDatabase(f"sqlite+aiosqlite:///{target}", None, seeded)


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory) -> SqliteTemplates:
    return _in_thread(SqliteTemplates(tmp_path_factory.mktemp("sqlite-templates")).build)


# --- PostgreSQL: one working schema per session, reset to a reference schema before each test ----------

# The structure of a schema: tables, columns with types and defaults, indexes, constraints, triggers.
# Also returns the tables grown past BIG_TABLE_BYTES (truncated rather than deleted from).
FINGERPRINT = """
WITH rels AS MATERIALIZED (SELECT oid, relname, relkind FROM pg_class WHERE relnamespace = $1::oid)
SELECT (SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
  SELECT 'rel ' || c.relname || ' ' || c.relkind::text AS item FROM rels c
  UNION ALL
  SELECT 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
         || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM rels c JOIN pg_index i ON i.indrelid = c.oid
  UNION ALL
  SELECT 'con ' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
    FROM rels c JOIN pg_constraint k ON k.conrelid = c.oid
  UNION ALL
  SELECT 'trg ' || c.relname || ' ' || t.tgname FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid WHERE NOT t.tgisinternal
) structure) AS fingerprint,
ARRAY(SELECT relname::text FROM rels WHERE relkind = 'r' AND pg_relation_size(oid) > $2) AS big
"""
BIG_TABLE_BYTES = 1 << 20  # tables this large are truncated (a DELETE would leave their dead rows to the next tests)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _q(*names: str) -> str:
    return ".".join('"' + n.replace('"', '""') + '"' for n in names)


class PostgresTemplates:
    """The session's schemas: ``work`` (the tests'), ``empty`` and ``seeded`` (the references).

    The resets run on one connection, in an event loop of their own on a background thread (each test
    has its own event loop; an asyncpg connection belongs to one)."""

    def __init__(self, url: str):
        self.url, self.tag = url, uuid.uuid4().hex[:12]
        self.empty, self.seeded = f"t_{self.tag}_empty", f"t_{self.tag}_seeded"
        self.work: str | None = None
        self.work_oid: int | None = None
        self.generation = 0
        self.fingerprint: str | None = None
        self.tables: list[str] = []  # parents before children
        self.sequences: list[str] = []
        self.rows: dict[str, list[str]] = {}  # reference schema -> its non-empty tables
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="brb-test-postgres", daemon=True)
        self._conn = None

    def _run(self, coro):
        """Run ``coro`` on the background loop and wait for it (from a thread without a running loop)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _connection(self):
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(_dsn(self.url))
        return self._conn

    def build(self) -> "PostgresTemplates":
        self._thread.start()
        for schema in (self.empty, self.seeded):
            self._migrate(schema)
        _seed(TestDatabase(self.url, self.seeded, seeded=True))
        self._run(self._inspect())
        self.new_work_schema()
        return self

    def _migrate(self, schema: str) -> None:
        self._run(self._execute(f"CREATE SCHEMA {_q(schema)}"))
        upgrade(self.url, schema)  # Alembic, as `brb db upgrade` runs it

    async def _execute(self, sql: str) -> None:
        await (await self._connection()).execute(sql)

    def new_work_schema(self) -> None:
        """A freshly migrated working schema; the ones before it are dropped at the end of the session."""
        self.generation += 1
        self.work = f"t_{self.tag}_w{self.generation}"
        self._migrate(self.work)

        async def fingerprint():
            conn = await self._connection()
            self.work_oid = await conn.fetchval("SELECT $1::text::regnamespace::oid", self.work)
            self.fingerprint = (await conn.fetchrow(FINGERPRINT, self.work_oid, BIG_TABLE_BYTES))["fingerprint"]

        self._run(fingerprint())

    async def _inspect(self) -> None:
        conn = await self._connection()
        tables = [r["relname"] for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = $1::text::regnamespace AND relkind IN ('r', 'p') "
            "ORDER BY relname", self.empty)]
        edges = {(r["child"], r["parent"]) for r in await conn.fetch(
            "SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid "
            "WHERE k.contype = 'f' AND k.connamespace = $1::text::regnamespace AND k.conrelid <> k.confrelid", self.empty)}
        ordered: list[str] = []
        while len(ordered) < len(tables):
            ready = [t for t in tables if t not in ordered and all(p in ordered for c, p in edges if c == t)]
            assert ready, f"foreign keys form a cycle among {set(tables) - set(ordered)}"
            ordered += ready
        self.tables = ordered
        self.sequences = [r["relname"] for r in await conn.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = $1::text::regnamespace AND relkind = 'S' ORDER BY relname",
            self.empty)]
        for schema in (self.empty, self.seeded):
            self.rows[schema] = [t for t in ordered if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_q(schema, t)})")]

    def reset_sql(self, reference: str, big: list[str]) -> str:
        work = self.work
        statements = ["BEGIN", "SET LOCAL lock_timeout = '10s'"]
        if big:
            statements.append("TRUNCATE " + ", ".join(_q(work, t) for t in big) + " CASCADE")
        statements += [f"DELETE FROM {_q(work, t)}" for t in reversed(self.tables) if t not in big]
        statements += [f"INSERT INTO {_q(work, t)} SELECT * FROM {_q(reference, t)}" for t in self.rows[reference]]
        statements += [f"SELECT setval('{_q(work, s)}', last_value, is_called) FROM {_q(reference, s)}" for s in self.sequences]
        statements.append("COMMIT")
        return ";\n".join(statements)

    async def reset(self, seeded: bool) -> TestDatabase:
        """The working schema with exactly the reference's structure and rows (see the module docstring)."""
        reference = self.seeded if seeded else self.empty
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._reset(reference, seeded), self._loop))

    async def _reset(self, reference: str, seeded: bool) -> TestDatabase:
        if not await self._reset_to(reference):
            await asyncio.to_thread(self.new_work_schema)  # altered, or stuck on a lock: start from a new one
            assert await self._reset_to(reference), f"the freshly migrated schema {self.work} cannot be reset"
        return TestDatabase(self.url, self.work, seeded)

    async def _reset_to(self, reference: str) -> bool:
        import asyncpg

        conn = await self._connection()
        try:
            found = await conn.fetchrow(FINGERPRINT, self.work_oid, BIG_TABLE_BYTES)
            if found["fingerprint"] != self.fingerprint:
                return False
            await conn.execute(self.reset_sql(reference, list(found["big"])))
            return True
        except asyncpg.PostgresError:
            await conn.close()  # whatever state it is in: the next reset starts on a new connection
            return False

    def close(self) -> None:
        """Drop the session's schemas, close the connection, stop the background loop."""
        if self._thread.is_alive():
            async def drop():
                conn = await self._connection()
                await conn.execute("SET lock_timeout = '30s'")
                for g in range(1, self.generation + 1):
                    await conn.execute(f"DROP SCHEMA IF EXISTS {_q(f't_{self.tag}_w{g}')} CASCADE")
                for name in (self.empty, self.seeded):
                    await conn.execute(f"DROP SCHEMA IF EXISTS {_q(name)} CASCADE")
                await conn.close()

            try:
                self._run(drop())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)


@pytest.fixture(scope="session")
def postgres_templates():
    templates = PostgresTemplates(PG_URL)
    try:
        yield _in_thread(templates.build)
    finally:
        _in_thread(templates.close)


@pytest.fixture(params=BACKENDS)
async def database(request, tmp_path):
    """A migrated database of its own for the test: a copy of the SQLite template file, or the session's
    PostgreSQL schema reset to its reference. Empty, or with the demo organisations when the test uses
    ``orgs`` (``SEEDING_FIXTURES``)."""
    seeded = not SEEDING_FIXTURES.isdisjoint(request.fixturenames)
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_templates").copy_to(tmp_path, seeded)
    return await request.getfixturevalue("postgres_templates").reset(seeded)


# the gateway's receipt key (gateway/receipts.py): one private JWK for the whole session, made at import
RECEIPT_SIGNING_KEY = json.dumps(new_key_pair(kid="test-receipts-1")[0])


def settings_for(db: TestDatabase, **overrides) -> Settings:
    values = dict(
        database_url=db.url, database_schema=db.schema,
        pseudonym_key="test-pseudonym-key-" + "x" * 16,
        encryption_keys="k1:" + base64.b64encode(b"\x01" * 32).decode(),
        audit_chain_key="test-audit-chain-key",
        receipt_signing_key=RECEIPT_SIGNING_KEY,
        kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1"),
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}", relay_idle_seconds=0.05,
        allow_insecure_loopback_webhooks=True, rate_limit_per_minute=100_000,
    )
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the environment of a gateway process started by a test."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        secret = getattr(settings, name)
        if hasattr(secret, "get_secret_value"):
            value = secret.get_secret_value()
        if value is None:
            continue
        env["BRB_" + name.upper()] = value if isinstance(value, str) else json.dumps(value)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return env


@pytest.fixture
async def services(database):
    svc = Services.from_settings(settings_for(database))
    yield svc
    await svc.db.dispose()


@pytest.fixture
async def client(services):
    app = create_app(services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gateway") as c:
        yield c


@pytest.fixture
async def live_server(services):
    """The app served by uvicorn on a loopback port, in this event loop: a real HTTP connection
    (httpx's ASGI transport buffers whole responses, so streaming needs this)."""
    import uvicorn

    from gateway.broker import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services=services), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def orgs(database) -> Orgs:
    """The demo organisations, registered in this test's database with the session's keys."""
    audience = settings_for(database).audience
    if database.seeded:
        return demo_orgs(audience, session_keys())
    # the database was asked for before this fixture was known (getfixturevalue): register them now
    svc = Services.from_settings(settings_for(database))
    try:
        return await register_demo_organisations(svc, session_keys())
    finally:
        await svc.db.dispose()


@pytest.fixture(scope="session")
def broker():
    """The Kafka bootstrap address: an external cluster, or a loopback Tansu broker for the session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    b = LoopbackBroker().start()
    yield b.bootstrap
    b.stop()


async def eventually(check, timeout: float = 20.0, interval: float = 0.05):
    """Poll an async ``check`` until it returns a truthy value (bounded in time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)


def pytest_terminal_summary(terminalreporter):
    """Show, in CI's output, that the PostgreSQL and SQLite variants really ran (none may skip)."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for backend in ("postgresql", "sqlite"):
                if f"[{backend}" in nodeid or f"-{backend}]" in nodeid:
                    counts.setdefault(backend, {}).setdefault(outcome, 0)
                    counts[backend][outcome] += 1
    if counts:
        terminalreporter.section("storage backends")
        for backend, by_outcome in sorted(counts.items()):
            terminalreporter.write_line(f"{backend}: " + ", ".join(f"{n} {o}" for o, n in sorted(by_outcome.items())))


@pytest.fixture
async def stay(services, orgs) -> str:
    """The default subject's stay as a detention-notice would leave it: Amsterdam (residence) and
    Rotterdam (intended) are the competent municipalities. For tests about something else."""
    from tests.scenario import seed_stay

    return await seed_stay(services)


@pytest.fixture
def log_lines():
    """The gateway's JSON log lines (logger ``brb``) while the test runs (tests/support/logs.py)."""
    from tests.support.logs import JsonLines

    handler, logger = JsonLines(), logging.getLogger("brb")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
