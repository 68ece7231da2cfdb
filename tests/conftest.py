"""One fixture per real part: a database per backend (SQLite file, PostgreSQL schema), the loopback
broker, the app and its client, and the demo-like organisations with their keys and a token factory.

PostgreSQL: BRB_TEST_POSTGRES_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test). Kafka:
KAFKA_BOOTSTRAP_SERVERS points the tests at an external cluster; otherwise a Tansu broker is started on
loopback. Neither is ever skipped: when PostgreSQL is down, its tests fail."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import text

from gateway.app import create_app
from gateway.auth.mint import mint, new_key_pair
from gateway.broker import LoopbackBroker
from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade_async
from gateway.demo import DEMO_ORGANISATIONS, DEFAULT_SCOPES
from gateway.registry import OrganisationRequest, add_key, add_organisation
from gateway.services import Services
from gateway.settings import Settings

PG_URL = os.environ.get("BRB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]


@dataclass(frozen=True)
class TestDatabase:
    url: str
    schema: str | None


@pytest.fixture(params=BACKENDS)
async def database(request, tmp_path):
    """A migrated, empty database: an SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'brb.sqlite3'}"
        await upgrade_async(url)
        yield TestDatabase(url, None)
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        await upgrade_async(PG_URL, schema)
        yield TestDatabase(PG_URL, schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def settings_for(db: TestDatabase, **overrides) -> Settings:
    values = dict(
        database_url=db.url, database_schema=db.schema,
        pseudonym_key="test-pseudonym-key-" + "x" * 16,
        encryption_keys="k1:" + base64.b64encode(b"\x01" * 32).decode(),
        audit_chain_key="test-audit-chain-key",
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


async def register_demo_organisations(svc: Services) -> Orgs:
    orgs = Orgs()
    for spec in DEMO_ORGANISATIONS:
        await add_organisation(svc, OrganisationRequest.model_validate(spec))
        private, public = new_key_pair(kid=f"{spec['oin'][-6:]}-t1")
        await add_key(svc, spec["oin"], public)
        orgs.by_name[ALIASES[spec["oin"]]] = Org(spec["oin"], spec["name"], spec["kind"], private, svc.settings.audience,
                                                  spec.get("cbsCode"), DEFAULT_SCOPES[spec["kind"]])
    return orgs


@pytest.fixture
async def orgs(services) -> Orgs:
    return await register_demo_organisations(services)


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
