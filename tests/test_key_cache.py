"""The key cache (gateway/auth/keycache.py) and the jti recorded in the request's own transaction (issue 17).

A warm token check reads nothing from the database, yet a revocation holds: at once in the process that
made it, within BRB_KEY_CACHE_POLL_SECONDS in another one (a second ``Services`` on the same SQLite file or
PostgreSQL schema stands in for it here; tests/integration/test_key_cache_processes.py uses real
processes), and after BRB_KEY_CACHE_TTL_SECONDS for a row edited by hand."""
from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from gateway.app import create_app
from gateway.auth import keycache
from gateway.auth.dependencies import RateLimiter, require
from gateway.auth.mint import new_key_pair
from gateway.auth.tokens import Caller, consume_jti
from gateway.db.models import RegistryVersion
from gateway.keyrotation import KeyKeeper
from gateway.problems import PROBLEM_BASE, Problem, render
from gateway.registry import add_key, revoke_key
from gateway.services import Services
from tests.conftest import settings_for

INBOX = "/api/v1/inbox"
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@contextlib.asynccontextmanager
async def gateway(database, **settings):
    """Services, an app on them, and the KeyKeeper (with the cache's watcher) running as in a gateway process."""
    svc = Services.from_settings(settings_for(database, **{"key_cache_poll_seconds": 0.2, **settings}))
    stop = asyncio.Event()
    keeper = await KeyKeeper(svc, "gateway").start(stop)
    app = create_app(services=svc)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://gateway") as client:
            yield svc, client
    finally:
        stop.set()
        await keeper
        await svc.db.dispose()


def problem_type(r: httpx.Response) -> str:
    return r.json()["type"].removeprefix(PROBLEM_BASE)


async def refused_within(client, org, seconds: float) -> float:
    """How long until ``org``'s tokens are refused (401), asking every 50 ms; fails after ``seconds``."""
    start = time.monotonic()
    while True:
        r = await client.get(INBOX, headers=org.headers())
        if r.status_code == 401:
            assert problem_type(r) == "invalid-token" and "revoked" in r.json()["detail"], r.text
            return time.monotonic() - start
        assert r.status_code == 200, r.text
        assert time.monotonic() - start < seconds, f"still accepted after {seconds} s"
        await asyncio.sleep(0.05)


def entry_of(svc, org):
    return (org.oin, org.private_jwk["kid"])


async def test_a_warm_check_reads_no_registry_row(database, orgs):
    """Served from the cache: a hand edit that does not move the counter is not seen (until the TTL)."""
    async with gateway(database) as (svc, client):
        assert (await client.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200
        assert entry_of(svc, orgs.amsterdam) in keycache.key_cache(svc)
        async with svc.db.write() as session:
            await session.exec(text("UPDATE organisation_keys SET revoked_at = CURRENT_TIMESTAMP WHERE oin = :oin")
                               .bindparams(oin=orgs.amsterdam.oin))
        assert (await client.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200


async def test_a_revocation_through_the_api_is_refused_at_once(database, orgs):
    async with gateway(database, key_cache_poll_seconds=60) as (svc, client):  # the watcher would be too late
        assert (await client.get(INBOX, headers=orgs.vught.headers())).status_code == 200
        assert entry_of(svc, orgs.vught) in keycache.key_cache(svc)
        r = await client.post(f"/api/v1/organisations/{orgs.vught.oin}/keys/{orgs.vught.private_jwk['kid']}/revocation",
                              headers=orgs.operator.headers())
        assert r.status_code == 201, r.text
        r = await client.get(INBOX, headers=orgs.vught.headers())
        assert r.status_code == 401 and "revoked" in r.json()["detail"], r.text
        assert (await client.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200  # others unaffected


async def test_a_revocation_in_another_process_is_refused_within_two_seconds(database, orgs):
    async with gateway(database, key_cache_poll_seconds=1.0) as (svc, client):
        assert (await client.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200
        assert entry_of(svc, orgs.amsterdam) in keycache.key_cache(svc)
        other = Services.from_settings(svc.settings)  # another process: its own cache, the same database
        try:
            await revoke_key(other, orgs.amsterdam.oin, orgs.amsterdam.private_jwk["kid"])
        finally:
            await other.db.dispose()
        assert await refused_within(client, orgs.amsterdam, 2.0) <= 2.0


@sqlite_only
async def test_a_hand_edited_revocation_is_refused_after_the_ttl(database, orgs):
    async with gateway(database, key_cache_ttl_seconds=1.0) as (svc, client):
        assert (await client.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200
        async with svc.db.write() as session:  # no registry version bump: only the TTL notices
            await session.exec(text("UPDATE organisation_keys SET revoked_at = CURRENT_TIMESTAMP WHERE oin = :oin")
                               .bindparams(oin=orgs.amsterdam.oin))
        assert await refused_within(client, orgs.amsterdam, 3.0) >= 0.5


@sqlite_only
async def test_unknown_issuers_and_kids_are_not_cached(database, orgs):
    async with gateway(database) as (svc, client):
        stranger, _ = new_key_pair(kid="nobody-1")
        for private, oin in ((stranger, orgs.amsterdam.oin), (stranger, "00000001009990000000")):
            org = type(orgs.amsterdam)(oin, "x", "municipality", private, orgs.amsterdam.audience)
            r = await client.get(INBOX, headers=org.headers())
            assert r.status_code == 401 and problem_type(r) == "invalid-token", r.text
        assert len(keycache.key_cache(svc)) == 0
        # the kid registered afterwards works at once: nothing negative was remembered
        await add_key(svc, orgs.amsterdam.oin, {k: v for k, v in stranger.items() if k != "d"})
        org = type(orgs.amsterdam)(orgs.amsterdam.oin, "x", "municipality", stranger, orgs.amsterdam.audience,
                                   scopes=orgs.amsterdam.scopes)
        assert (await client.get(INBOX, headers=org.headers())).status_code == 200
        assert len(keycache.key_cache(svc)) == 1


@sqlite_only
async def test_without_a_watcher_nothing_is_cached(client, services, orgs):
    """A process that does not poll the counter (a CLI command, a test app without its lifespan) reads the
    registry on every check, as before the cache."""
    assert (await client.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200
    assert len(keycache.key_cache(services)) == 0


@sqlite_only
async def test_a_watcher_that_cannot_poll_stops_the_cache(database, orgs):
    async with gateway(database) as (svc, client):
        assert (await client.get(INBOX, headers=orgs.amsterdam.headers())).status_code == 200
        cache = keycache.key_cache(svc)
        assert cache.armed and len(cache) == 1
        async with svc.db.write() as session:
            await session.exec(text("ALTER TABLE registry_version RENAME TO registry_version_gone"))
        try:
            assert not await keycache.poll_once(svc)
            assert not cache.armed and len(cache) == 0
        finally:
            async with svc.db.write() as session:
                await session.exec(text("ALTER TABLE registry_version_gone RENAME TO registry_version"))


async def test_every_registry_change_moves_the_counter(services, orgs):
    async def version() -> int:
        async with services.db.read() as session:
            return (await session.get(RegistryVersion, 1)).version

    before = await version()
    _, public = new_key_pair(kid="amsterdam-2")
    await add_key(services, orgs.amsterdam.oin, public)
    assert await version() == before + 1
    await revoke_key(services, orgs.amsterdam.oin, "amsterdam-2")
    assert await version() == before + 2
    await revoke_key(services, orgs.amsterdam.oin, "amsterdam-2")  # again: unchanged, no move
    assert await version() == before + 2
    with pytest.raises(Problem):  # a refused change (the kid is taken) moves nothing
        await add_key(services, orgs.amsterdam.oin, public)
    assert await version() == before + 2


# --- the jti in the request's own transaction --------------------------------------------------------------

def tiny_app(services: Services) -> FastAPI:
    """One route per way a handler can end, each with a jti deferred to its own transaction."""
    app = FastAPI()
    app.state.services = services
    app.state.rate_limiter = RateLimiter(services.settings.rate_limit_per_minute)
    Tx = Depends(require(jti_in_transaction=True), scope="function")

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return JSONResponse(render(exc.type, exc.detail, request.url.path), status_code=exc.type.status,
                            media_type="application/problem+json", headers=exc.headers)

    @app.post("/work")
    async def work(caller: Caller = Tx):
        assert caller.jti_claim is not None and not caller.jti_claim.consumed
        async with services.db.write() as session:
            await consume_jti(session, caller.jti_claim)
        caller.jti_claim.consumed = True
        return {"ok": True}

    @app.post("/fail")
    async def fail(caller: Caller = Tx):
        raise Problem("validation-failed", "refused before any transaction")

    @app.post("/fail-in-transaction")
    async def fail_in_transaction(caller: Caller = Tx):
        async with services.db.write() as session:
            await consume_jti(session, caller.jti_claim)
            raise Problem("conflict", "refused inside the transaction: rolled back, the jti with it")

    @app.get("/look")
    async def look(caller: Caller = Tx):
        return {"oin": caller.oin}

    return app


async def used(services: Services, jti_count_of: str) -> int:
    async with services.db.read() as session:
        return (await session.exec(text("SELECT COUNT(*) FROM used_tokens WHERE iss = :iss")
                                   .bindparams(iss=jti_count_of))).one()[0]


@contextlib.asynccontextmanager
async def tiny_client(services):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=tiny_app(services), raise_app_exceptions=False),
                                 base_url="http://tiny") as client:
        yield client


async def test_a_jti_consumed_in_the_transaction_is_refused_the_second_time(services, orgs):
    async with tiny_client(services) as client:
        headers = orgs.vught.headers()
        assert (await client.post("/work", headers=headers)).status_code == 200
        assert await used(services, orgs.vught.oin) == 1
        r = await client.post("/work", headers=headers)
        assert r.status_code == 401 and problem_type(r) == "token-replayed", r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert await used(services, orgs.vught.oin) == 1


@pytest.mark.parametrize("path", ["/fail", "/fail-in-transaction", "/look"])
async def test_a_handler_that_did_not_consume_the_jti_still_burns_it(services, orgs, path):
    """Failed before its transaction, failed inside it (rolled back), or no transaction at all: the
    dependency records the jti afterwards, before the response, and the handler's own answer stands."""
    async with tiny_client(services) as client:
        headers = orgs.vught.headers()
        r = await (client.get if path == "/look" else client.post)(path, headers=headers)
        expected = {"/fail": (422, "validation-failed"), "/fail-in-transaction": (409, "conflict")}.get(path)
        if expected:
            assert (r.status_code, problem_type(r)) == expected, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        else:
            assert r.status_code == 200, r.text
        assert await used(services, orgs.vught.oin) == 1
        r = await client.post("/work", headers=headers)
        assert r.status_code == 401 and problem_type(r) == "token-replayed", r.text


@sqlite_only
async def test_a_refused_token_burns_nothing_and_a_refused_scope_burns_the_jti(services, orgs):
    """As without deferral: a token that does not verify records nothing; one that verifies but lacks the
    scope (or is rate limited) has its jti recorded, as the plain dependency does before it refuses."""
    app = FastAPI()
    app.state.services = services
    app.state.rate_limiter = RateLimiter(services.settings.rate_limit_per_minute)

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return JSONResponse(render(exc.type, exc.detail, request.url.path), status_code=exc.type.status,
                            media_type="application/problem+json", headers=exc.headers)

    @app.post("/admin")
    async def admin(caller: Caller = Depends(require("admin", jti_in_transaction=True), scope="function")):
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tiny") as client:
        r = await client.post("/admin", headers={"Authorization": "Bearer not.a.token"})
        assert r.status_code == 401
        r = await client.post("/admin", headers=orgs.vught.headers())
        assert r.status_code == 403 and problem_type(r) == "insufficient-scope", r.text
    assert await used(services, orgs.vught.oin) == 1
