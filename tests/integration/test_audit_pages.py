"""The audit pages' login and session, over real HTTP on both backends: the OpenID Connect code flow with
PKCE against the demo issuer; no session, a forged, an expired or an over-age cookie all lead to the login;
a form without its CSRF token is refused; the cookie's attributes; the demo issuer only in demo mode."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from itsdangerous import TimestampSigner

from gateway.app import create_app
from gateway.broker import free_port
from gateway.pages.app import COOKIE, oidc_client
from gateway.pages.officer import officer_from_claims
from gateway.problems import Problem
from gateway.services import Services
from tests.conftest import settings_for

SECRET = "test-session-secret-" + "s" * 20
FG_AMSTERDAM, AMSTERDAM, INSPECTORATE = "00000001009990363900", "00000001009990363000", "00000001009999999000"
PAGES = ("/audit/", "/audit/records", "/audit/records/1", "/audit/subject", "/audit/verify", "/audit/export")


def officer(**changes) -> dict:
    return {"sub": "fg-1", "name": "A. de Vries", "role": "privacy-officer", "oin": FG_AMSTERDAM,
            "organisation": "FG Gemeente Amsterdam", "kind": "auditor", "parent_oin": AMSTERDAM,
            "login_at": time.time(), **changes}


def cookie(session: dict, secret: str = SECRET, age: float = 0) -> str:
    """A session cookie as Starlette's SessionMiddleware signs it (itsdangerous), optionally made ``age`` s ago."""
    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    return Signer(secret).sign(base64.b64encode(json.dumps(session).encode())).decode()


def jar(session: dict, **signing) -> dict[str, str]:
    """The Cookie header carrying that session."""
    return {"Cookie": f"{COOKIE}={cookie(session, **signing)}"}


@pytest.fixture
async def pages(database, orgs):
    services = Services.from_settings(settings_for(database, session_secret=SECRET, session_cookie_secure=False))
    app = create_app(services=services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        yield c
    await services.db.dispose()


async def test_without_a_session_every_page_redirects_to_the_login(pages):
    for path in PAGES:
        answer = await pages.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/audit/login?next=%2Faudit%2F"), path
    htmx = await pages.get("/audit/records", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"].startswith("/audit/login")


async def test_a_valid_cookie_opens_the_pages_and_forged_expired_or_over_age_ones_do_not(pages):
    good = await pages.get("/audit/records", headers=jar({"officer": officer(), "csrf": "t" * 43}))
    assert good.status_code == 200 and "FG Gemeente Amsterdam" in good.text
    assert good.headers["content-security-policy"].startswith("default-src 'self'")
    for name, value in {
        "forged (another key)": cookie({"officer": officer(kind="inspectorate", oin=INSPECTORATE)}, secret="x" * 40),
        "edited after signing": cookie({"officer": officer()}).replace(".", "x.", 1),
        "expired (older than the session's maximum age)": cookie({"officer": officer()}, age=9 * 3600),
        "logged in too long ago": cookie({"officer": officer(login_at=time.time() - 9 * 3600)}),
        "not an officer": cookie({"officer": {"oin": INSPECTORATE}}),
    }.items():
        answer = await pages.get("/audit/records", headers={"Cookie": f"{COOKIE}={value}"})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/audit/login"), name


async def test_a_refused_filter_is_shown_on_the_page_marking_its_field_without_echoing_it(pages):
    session = jar({"officer": officer(), "csrf": "t" * 43})
    answer = await pages.get("/audit/records?activity=lezen&subjectId=999990019", headers=session)
    assert answer.status_code == 400
    assert "invalid-filter" in answer.text and "query:activity" in answer.text and "query:subjectId" in answer.text
    assert "999990019" not in answer.text and 'value="lezen"' not in answer.text
    assert answer.text.count('aria-invalid="true"') == 2  # the two fields, marked for a screen reader


async def test_a_form_without_its_csrf_token_is_refused(pages):
    session = f"{COOKIE}={cookie({'officer': officer(), 'csrf': 't' * 43})}"
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
            # the code is used once: the same callback again is refused (its state is gone, too)
            again = await c.get(f"{back.path}?{back.query}")
            assert again.status_code == 403 and again.json()["type"].endswith("/login-refused")
            # a state the pages did not hand out
            forged = await c.get(f"{back.path}?code=x&state=forged")
            assert forged.status_code == 403
    finally:
        server.should_exit = True
        await task
        await services.db.dispose()
