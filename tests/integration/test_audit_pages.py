"""The audit pages' login and session, over real HTTP on both backends: the OpenID Connect code flow with
PKCE against the demo issuer; no session, a forged, an expired or an over-age cookie all lead to the login;
the session lives on the server (officer_sessions): logout, the idle and absolute timeouts and `brb sessions
end` end it for every copy of the cookie; a form without its CSRF token is refused; the cookie's attributes;
the demo issuer only in demo mode."""
from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from itsdangerous import TimestampSigner
from sqlalchemy import update
from sqlmodel import select
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.broker import free_port
from gateway.cli import app as brb
from gateway.db.models import AuditRecord, OfficerSession
from gateway.pages.app import COOKIE, oidc_client
from gateway.pages.officer import Officer, officer_from_claims, session_key, start_session
from gateway.problems import Problem
from gateway.services import Services
from gateway.workers import retention_round
from tests.conftest import settings_env, settings_for

SECRET = "test-session-secret-" + "s" * 20
FG_AMSTERDAM, AMSTERDAM, INSPECTORATE = "00000001009990363900", "00000001009990363000", "00000001009999999000"
PAGES = ("/audit/", "/audit/records", "/audit/records/1", "/audit/subject", "/audit/verify", "/audit/export")


def officer(**changes) -> dict:
    return {"sub": "fg-1", "name": "A. de Vries", "role": "privacy-officer", "oin": FG_AMSTERDAM,
            "organisation": "FG Gemeente Amsterdam", "kind": "auditor", "parent_oin": AMSTERDAM, **changes}


def cookie(session: dict, secret: str = SECRET, age: float = 0) -> str:
    """A session cookie as Starlette's SessionMiddleware signs it (itsdangerous), optionally made ``age`` s ago."""
    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    return Signer(secret).sign(base64.b64encode(json.dumps(session).encode())).decode()


def jar(session: dict, **signing) -> dict[str, str]:
    """The Cookie header carrying that session."""
    return {"Cookie": f"{COOKIE}={cookie(session, **signing)}"}


def read_cookie(value: str) -> dict:
    """What a cookie the pages set holds."""
    return json.loads(base64.b64decode(TimestampSigner(SECRET).unsign(value)))


async def login(services: Services, who: dict | None = None, **row) -> dict:
    """A session as a login starts it (``start_session`` in a unit of work), its row then changed by ``row`` (e.g.
    ``expires_at`` in the past): the cookie's content, with a known anti-forgery token."""
    request, officer_ = SimpleNamespace(session={}), Officer(**(who or officer()))
    async with services.unit_of_work(officer_.caller().actor) as uow:
        await start_session(request, uow, officer_)
    if row:
        async with services.db.write() as s:
            await s.exec(update(OfficerSession).where(OfficerSession.id == session_key(request.session["sid"])).values(**row))
    return {**request.session, "csrf": "t" * 43}


async def row_of(services: Services, session: dict) -> OfficerSession:
    async with services.db.read() as s:
        return (await s.exec(select(OfficerSession).where(OfficerSession.id == session_key(session["sid"])))).one()


@pytest.fixture
async def svc(database, orgs):
    services = Services.from_settings(settings_for(database, session_secret=SECRET, session_cookie_secure=False))
    yield services
    await services.db.dispose()


@pytest.fixture
async def pages(svc):
    app = create_app(services=svc)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        yield c


async def test_without_a_session_every_page_redirects_to_the_login(pages):
    for path in PAGES:
        answer = await pages.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/audit/login?next=%2Faudit%2F"), path
    htmx = await pages.get("/audit/records", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"].startswith("/audit/login")


async def test_a_valid_cookie_opens_the_pages_and_forged_expired_or_over_age_ones_do_not(pages, svc):
    live = await login(svc)
    good = await pages.get("/audit/records", headers=jar(live))
    assert good.status_code == 200 and "FG Gemeente Amsterdam" in good.text
    assert good.headers["content-security-policy"].startswith("default-src 'self'")
    sid = live["sid"]
    for name, value in {
        "forged (another key)": cookie({"officer": officer(kind="inspectorate", oin=INSPECTORATE), "sid": sid}, secret="x" * 40),
        "edited after signing": cookie(live).replace(".", "x.", 1),
        "expired (older than the session's maximum age)": cookie(live, age=9 * 3600),
        "logged in too long ago": cookie(await login(svc, expires_at=svc.clock.now() - timedelta(seconds=1))),
        "not an officer": cookie({"officer": {"oin": INSPECTORATE}, "sid": sid}),
        "no session id (a cookie from before server-side sessions)": cookie({"officer": officer()}),
        "an unknown session id": cookie({"officer": officer(), "sid": "not-a-session-of-ours"}),
        "another officer's session id": cookie({"officer": officer(sub="fg-2"), "sid": sid}),
    }.items():
        answer = await pages.get("/audit/records", headers={"Cookie": f"{COOKIE}={value}"})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/audit/login"), name
    assert (await pages.get("/audit/records", headers=jar(live))).status_code == 200  # none of them ended it


async def test_a_signed_cookie_naming_an_unknown_session_goes_to_the_login_and_loses_its_officer(pages):
    answer = await pages.get("/audit/records", headers=jar({"officer": officer(), "sid": "x" * 43, "lang": "en"}))
    assert answer.status_code == 303 and answer.headers["location"].startswith("/audit/login")
    assert read_cookie(answer.cookies[COOKIE]) == {"lang": "en"}  # the language stays; officer and session id go


async def test_logout_ends_the_session_on_the_server_and_is_recorded(pages, svc):
    session = await login(svc)
    copy = jar(session)  # e.g. stolen, or the back button on a shared PC
    assert (await pages.get("/audit/records", headers=copy)).status_code == 200
    out = await pages.post("/audit/logout", data={"csrf_token": "t" * 43}, headers=copy)
    assert out.status_code == 303 and out.headers["location"] == "/audit/login"
    assert out.headers["set-cookie"].startswith(f"{COOKIE}=null;")  # cleared in this browser
    replayed = await pages.get("/audit/records", headers=copy)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/audit/login")
    again = await pages.post("/audit/logout", data={"csrf_token": "t" * 43}, headers=copy)  # nothing left to end or record
    assert again.status_code == 303 and again.headers["location"] == "/audit/login"
    row = await row_of(svc, session)
    assert row.end_reason == "logout" and row.ended_at is not None
    async with svc.db.read() as s:
        logged_out = (await s.exec(select(AuditRecord).where(AuditRecord.detail == "audit page: logged out; officer fg-1"))).one()
    assert (logged_out.activity, logged_out.actor_oin, logged_out.token_id) == ("audit-query", FG_AMSTERDAM, "oidc:fg-1")


async def test_a_session_ends_when_idle_and_at_its_absolute_age_even_while_used(pages, svc):
    idle_seconds, max_age = svc.settings.session_idle_seconds, svc.settings.session_max_age_seconds
    idle, used = await login(svc), await login(svc, officer(sub="fg-2"))
    step = timedelta(seconds=idle_seconds - 60)
    for _ in range(max_age // step.seconds):  # ``used`` is used just within the idle timeout until its absolute end
        svc.clock.advance(step)
        assert (await pages.get("/audit/login", headers=jar(used))).status_code == 303  # logged in: on to the pages
    assert (await pages.get("/audit/records", headers=jar(idle))).status_code == 303
    assert (await row_of(svc, idle)).end_reason == "idle"
    assert (await row_of(svc, used)).ended_at is None
    svc.clock.advance(step)
    answer = await pages.get("/audit/records", headers=jar(used))
    assert answer.status_code == 303 and answer.headers["location"].startswith("/audit/login")
    assert (await row_of(svc, used)).end_reason == "expired"


async def test_the_last_use_is_written_at_most_once_a_minute(pages, svc):
    session = await login(svc)
    started = (await row_of(svc, session)).last_seen_at
    svc.clock.advance(timedelta(seconds=30))
    assert (await pages.get("/audit/records", headers=jar(session))).status_code == 200
    assert (await row_of(svc, session)).last_seen_at == started  # not a write per page view
    svc.clock.advance(timedelta(seconds=31))
    assert (await pages.get("/audit/records", headers=jar(session))).status_code == 200
    assert (await row_of(svc, session)).last_seen_at - started >= timedelta(seconds=61)


async def test_brb_sessions_end_ends_live_sessions_and_list_shows_them_without_their_ids(pages, svc):
    one, two = await login(svc), await login(svc, officer(sub="fg-2"))
    env = settings_env(svc.settings)

    def run(*args: str):
        return asyncio.to_thread(CliRunner().invoke, brb, list(args), env=env)

    listed = await run("sessions", "list")
    assert listed.exit_code == 0, listed.output
    assert "fg-1" in listed.output and "fg-2" in listed.output and FG_AMSTERDAM in listed.output
    assert not any(secret in listed.output for secret in (one["sid"], session_key(one["sid"])))
    for wrong in ((), ("--all", "--officer", "fg-1")):
        assert (await run("sessions", "end", *wrong)).exit_code == 2
    ended = await run("sessions", "end", "--officer", "fg-1")
    assert ended.exit_code == 0 and "ended 1 session(s)" in ended.output, ended.output
    answer = await pages.get("/audit/records", headers=jar(one))
    assert answer.status_code == 303 and answer.headers["location"].startswith("/audit/login")
    assert (await row_of(svc, one)).end_reason == "ended-by-operator"
    assert (await pages.get("/audit/records", headers=jar(two))).status_code == 200
    assert "ended 1 session(s)" in (await run("sessions", "end", "--organisation", FG_AMSTERDAM)).output
    assert (await pages.get("/audit/records", headers=jar(two))).status_code == 303
    assert "ended 0 session(s)" in (await run("sessions", "end", "--all")).output
    assert "no live sessions" in (await run("sessions", "list")).output


async def test_retention_forgets_sessions_ended_or_expired_thirty_days_ago(svc):
    now = svc.clock.now()
    old = await login(svc, created_at=now - timedelta(days=32), last_seen_at=now - timedelta(days=32),
                      expires_at=now - timedelta(days=31), ended_at=now - timedelta(days=31, hours=1), end_reason="logout")
    recent, live = await login(svc, ended_at=now - timedelta(days=1), end_reason="idle"), await login(svc)
    await retention_round(svc)
    async with svc.db.read() as s:
        kept = set((await s.exec(select(OfficerSession.id))).all())
    assert kept == {session_key(recent["sid"]), session_key(live["sid"])}
    assert session_key(old["sid"]) not in kept


async def test_a_refused_filter_is_shown_on_the_page_marking_its_field_without_echoing_it(pages, svc):
    session = jar(await login(svc))
    answer = await pages.get("/audit/records?activity=lezen&subjectId=999990019", headers=session)
    assert answer.status_code == 400
    assert "invalid-filter" in answer.text and "query:activity" in answer.text and "query:subjectId" in answer.text
    assert "999990019" not in answer.text and 'value="lezen"' not in answer.text
    assert answer.text.count('aria-invalid="true"') == 2  # the two fields, marked for a screen reader


async def test_a_form_without_its_csrf_token_is_refused(pages, svc):
    session = f"{COOKIE}={cookie(await login(svc))}"
    for form in ({}, {"csrf_token": "u" * 43}):
        refused = await pages.post("/audit/verify", data={"fromSeq": "1", **form}, headers={"Cookie": session})
        assert refused.status_code == 403, form
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"].endswith("/csrf-failed")
    html = await pages.post("/audit/subject", data={"bsn": "999990019"}, headers={"Cookie": session, "Accept": "text/html"})
    assert html.status_code == 403 and "csrf-failed" in html.text and "999990019" not in html.text
    accepted = await pages.post("/audit/verify", data={"fromSeq": "1", "csrf_token": "t" * 43}, headers={"Cookie": session})
    assert accepted.status_code == 303 and accepted.headers["location"].startswith("/audit/verify/jobs/")
    header = await pages.post("/audit/verify", data={"fromSeq": "1"}, headers={"Cookie": session, "X-CSRF-Token": "t" * 43, "HX-Request": "true"})
    assert header.status_code == 200


async def test_the_session_cookie_is_signed_http_only_same_site_and_scoped_to_the_pages(pages):
    answer = await pages.get("/audit/language?to=en&next=/audit/records")
    assert answer.status_code == 303 and answer.headers["location"] == "/audit/records"
    set_cookie = answer.headers["set-cookie"].lower()
    assert set_cookie.startswith(COOKIE) and "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert "path=/audit" in set_cookie
    elsewhere = await pages.get("/audit/language?to=en&next=https://elsewhere.example/")
    assert elsewhere.headers["location"] == "/audit/"  # never an open redirect


async def test_the_pages_are_not_served_without_a_session_key_and_the_demo_issuer_only_in_demo_mode(database, orgs):
    services = Services.from_settings(settings_for(database))
    try:
        app = create_app(services=services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
            assert (await c.get("/audit/")).status_code == 404
    finally:
        await services.db.dispose()
    not_demo = settings_for(database, session_secret=SECRET, oidc_issuer="http://127.0.0.1:1/audit/dev-issuer")
    assert oidc_client(not_demo) is None  # refused: the development issuer outside demo mode
    services = Services.from_settings(not_demo)
    try:
        app = create_app(services=services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
            assert (await c.get("/audit/dev-issuer/.well-known/openid-configuration")).status_code == 404
            login = await c.get("/audit/login/start")
            assert login.status_code == 403 and login.json()["type"].endswith("/login-refused")
    finally:
        await services.db.dispose()


async def test_login_maps_the_claims_onto_a_registered_officer_or_refuses(services, orgs):
    fg = await officer_from_claims(services, {"sub": "p1", "brb_organisation": FG_AMSTERDAM, "brb_role": "privacy-officer"})
    assert (fg.kind, fg.parent_oin, fg.caller().jti) == ("auditor", AMSTERDAM, "oidc:p1")
    for claims in ({"sub": "p1", "brb_organisation": FG_AMSTERDAM, "brb_role": "inspector"},  # role of another kind
                   {"sub": "p1", "brb_organisation": AMSTERDAM, "brb_role": "privacy-officer"},  # not an auditor
                   {"sub": "p1", "brb_organisation": "Amsterdam", "brb_role": "privacy-officer"},
                   {"sub": "p1", "brb_organisation": FG_AMSTERDAM},
                   {"brb_organisation": FG_AMSTERDAM, "brb_role": "privacy-officer"}):
        with pytest.raises(Problem) as refused:
            await officer_from_claims(services, claims)
        assert refused.value.type.slug == "login-refused"


async def test_the_openid_code_flow_with_pkce_against_the_demo_issuer(database, orgs):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = Services.from_settings(settings_for(database, session_secret=SECRET, session_cookie_secure=False,
                                                   demo=True, oidc_issuer=f"{base}/audit/dev-issuer"))
    server = uvicorn.Server(uvicorn.Config(create_app(services=services), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=base) as c:
            start = await c.get("/audit/login/start?next=/audit/records")
            assert start.status_code == 302
            asked = parse_qs(urlsplit(start.headers["location"]).query)
            assert asked["code_challenge_method"] == ["S256"] and len(asked["code_challenge"][0]) >= 43
            assert asked["nonce"] and asked["state"] and asked["scope"] == ["openid profile"]
            chooser = await c.get(start.headers["location"])
            assert chooser.status_code == 200 and "alleen demo" in chooser.text
            form = {k: v[0] for k, v in asked.items() if k in ("client_id", "redirect_uri", "state", "nonce",
                                                                 "code_challenge", "code_challenge_method")}
            chosen = await c.post("/audit/dev-issuer/authorize", data={**form, "oin": FG_AMSTERDAM})
            assert chosen.status_code == 303
            back = urlsplit(chosen.headers["location"])
            done = await c.get(f"{back.path}?{back.query}")
            assert done.status_code == 303 and done.headers["location"] == "/audit/records", done.text
            page = await c.get("/audit/records")
            assert page.status_code == 200 and "FG Gemeente Amsterdam" in page.text
            sub = f"demo-officer-{FG_AMSTERDAM}"
            async with services.db.read() as s:  # the session's row and the login's record, written together
                row = (await s.exec(select(OfficerSession))).one()
                assert (await s.exec(select(AuditRecord).where(
                    AuditRecord.detail == f"audit page: logged in to the audit pages; officer {sub}"))).one()
            assert (row.officer_sub, row.officer_oin, row.ended_at) == (sub, FG_AMSTERDAM, None)
            assert row.id == session_key(read_cookie(c.cookies[COOKIE])["sid"])
            assert row.expires_at - row.created_at == timedelta(seconds=services.settings.session_max_age_seconds)
            # the code is used once: the same callback again is refused (its state is gone, too)
            again = await c.get(f"{back.path}?{back.query}")
            assert again.status_code == 403 and again.json()["type"].endswith("/login-refused")
            # a state the pages did not hand out
            forged = await c.get(f"{back.path}?code=x&state=forged")
            assert forged.status_code == 403
            # logout ends the session: a copy of the cookie taken before it opens nothing
            copy = {"Cookie": f"{COOKIE}={c.cookies[COOKIE]}"}
            token = re.search(r'name="csrf_token" value="([^"]+)"', (await c.get("/audit/records")).text).group(1)
            out = await c.post("/audit/logout", data={"csrf_token": token})
            assert out.status_code == 303 and out.headers["location"] == "/audit/login"
        async with httpx.AsyncClient(base_url=base) as other:
            replayed = await other.get("/audit/records", headers=copy)
            assert replayed.status_code == 303 and replayed.headers["location"].startswith("/audit/login")
    finally:
        server.should_exit = True
        await task
        await services.db.dispose()
