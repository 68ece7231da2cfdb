"""JWT attack matrix (README, "Authentication"): each case asserts status and problem type.

Verifying a token reads the registry and the replay guard from the database; only the replay guard
behaves per backend (a unique insert into ``used_tokens``), so the replay cases run on SQLite and
PostgreSQL and the rest of the matrix on SQLite only."""
import base64
import json
import time
import uuid

import httpx
import jwt
import pytest

from gateway.app import create_app
from gateway.auth.mint import mint, new_key_pair
from gateway.problems import PROBLEM_BASE
from gateway.services import Services
from tests.scenario import EMPTY_INBOX

INBOX = "/api/v1/inbox"
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def claims(org, **overrides):
    now = int(time.time())
    values = {"iss": org.oin, "sub": org.oin, "aud": org.audience, "iat": now, "exp": now + 300,
              "jti": uuid.uuid4().hex, "scope": org.scopes}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def signed(org, **overrides) -> str:
    key = jwt.PyJWK(org.private_jwk, algorithm="ES256").key
    return jwt.encode(claims(org, **overrides), key, algorithm="ES256", headers={"kid": org.private_jwk["kid"]})


async def call(client, token):
    return await client.get(INBOX, headers={"Authorization": f"Bearer {token}"})


def assert_problem(r, status, slug):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == PROBLEM_BASE + slug and body["status"] == status and body["detail"]


@sqlite_only
async def test_a_valid_token_is_accepted(client, orgs):
    r = await call(client, signed(orgs.amsterdam))
    assert r.status_code == 200 and r.json() == EMPTY_INBOX


@sqlite_only
async def test_alg_none_is_rejected(client, orgs):
    token = f"{b64({'alg': 'none', 'kid': orgs.amsterdam.private_jwk['kid']})}.{b64(claims(orgs.amsterdam))}."
    assert_problem(await call(client, token), 401, "invalid-token")


@sqlite_only
async def test_hs256_signed_with_the_public_key_is_rejected(client, orgs):
    public_pem = jwt.PyJWK({k: v for k, v in orgs.amsterdam.private_jwk.items() if k != "d"}, algorithm="ES256").key
    from cryptography.hazmat.primitives import serialization

    pem = public_pem.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64({"alg": "HS256", "typ": "JWT", "kid": orgs.amsterdam.private_jwk["kid"]})
    body = b64(claims(orgs.amsterdam))
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()).decode().rstrip("=")
    r = await call(client, f"{header}.{body}.{sig}")
    assert_problem(r, 401, "invalid-token")
    assert "HS256" in r.json()["detail"]


@sqlite_only
async def test_expired_token_is_rejected_naming_the_leeway(client, orgs):
    now = int(time.time())
    r = await call(client, signed(orgs.amsterdam, iat=now - 900, exp=now - 300))
    assert_problem(r, 401, "invalid-token")
    assert "expired" in r.json()["detail"] and "clock skew of 60 s" in r.json()["detail"]


@sqlite_only
@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_nbf_or_iat_in_the_future_is_rejected_naming_the_leeway(client, orgs, claim):
    now = int(time.time())
    r = await call(client, signed(orgs.amsterdam, **{claim: now + 600, "exp": now + 900}))
    assert_problem(r, 401, "invalid-token")
    assert "not valid yet" in r.json()["detail"] and "clock skew of 60 s" in r.json()["detail"]


@sqlite_only
async def test_clocks_off_by_less_than_the_leeway_are_tolerated(client, orgs):
    """60 s of clock skew (BRB_CLOCK_SKEW_SECONDS, docs/authentication.md): a sender's clock 20 s ahead
    or behind still gets in (20 s: far enough inside the leeway for a slow test machine)."""
    now = int(time.time())
    assert (await call(client, signed(orgs.amsterdam, iat=now + 20, nbf=now + 20, exp=now + 300))).status_code == 200
    assert (await call(client, signed(orgs.amsterdam, iat=now - 300, exp=now - 20))).status_code == 200


@sqlite_only
async def test_exp_more_than_an_hour_ahead_is_rejected(client, orgs):
    r = await call(client, signed(orgs.amsterdam, exp=int(time.time()) + 2 * 3600))
    assert_problem(r, 401, "invalid-token")
    assert "3600 s ahead" in r.json()["detail"]


@sqlite_only
async def test_wrong_audience_is_rejected(client, orgs):
    assert_problem(await call(client, signed(orgs.amsterdam, aud="urn:other:gateway")), 401, "invalid-token")


@sqlite_only
async def test_unknown_kid_is_rejected(client, orgs):
    private, _public = new_key_pair("never-registered")
    r = await call(client, mint(private, orgs.amsterdam.oin, orgs.amsterdam.audience, orgs.amsterdam.scopes))
    assert_problem(r, 401, "invalid-token")
    assert "unknown kid" in r.json()["detail"]


@sqlite_only
async def test_token_signed_by_another_key_under_a_registered_kid_is_rejected(client, orgs):
    private, _ = new_key_pair(orgs.amsterdam.private_jwk["kid"])
    r = await call(client, mint(private, orgs.amsterdam.oin, orgs.amsterdam.audience, orgs.amsterdam.scopes))
    assert_problem(r, 401, "invalid-token")


@sqlite_only
async def test_revoked_key_is_rejected(client, orgs):
    kid = orgs.amsterdam.private_jwk["kid"]
    r = await client.post(f"/api/v1/organisations/{orgs.amsterdam.oin}/keys/{kid}/revocation", headers=orgs.operator.headers())
    assert r.status_code == 201 and r.json()["revokedAt"]
    r = await call(client, signed(orgs.amsterdam))
    assert_problem(r, 401, "invalid-token")
    assert "revoked" in r.json()["detail"]


@sqlite_only
async def test_unregistered_issuer_is_rejected(client, orgs):
    private, _ = new_key_pair("k1")
    r = await call(client, mint(private, "00000001099999999000", orgs.amsterdam.audience, "messages:read"))
    assert_problem(r, 401, "invalid-token")


@sqlite_only
async def test_iss_other_than_sub_is_rejected(client, orgs):
    assert_problem(await call(client, signed(orgs.amsterdam, sub=orgs.rotterdam.oin)), 401, "invalid-token")


async def test_replayed_jti_is_rejected(client, orgs):
    token = signed(orgs.amsterdam)
    assert (await call(client, token)).status_code == 200
    assert_problem(await call(client, token), 401, "token-replayed")


async def test_replayed_jti_is_rejected_after_a_gateway_restart(services, orgs):
    token = signed(orgs.amsterdam)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=services)), base_url="http://a") as first:
        assert (await call(first, token)).status_code == 200
    restarted = Services.from_settings(services.settings)  # a new process: nothing shared but the database
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=restarted)), base_url="http://b") as second:
            assert_problem(await call(second, token), 401, "token-replayed")
    finally:
        await restarted.db.dispose()


@sqlite_only
async def test_missing_scope_is_forbidden_naming_the_scope_needed(client, orgs):
    r = await call(client, signed(orgs.amsterdam, scope="consents:read"))
    assert_problem(r, 403, "insufficient-scope")
    assert "needs scope messages:read" in r.json()["detail"] and "holds consents:read" in r.json()["detail"]


@sqlite_only
async def test_a_scope_the_organisation_kind_may_not_hold_is_refused_naming_it(client, orgs):
    """Not silently dropped: refused on any route, even one whose own scope the token holds."""
    r = await call(client, signed(orgs.amsterdam, scope="messages:read audit:read-all admin"))
    assert_problem(r, 403, "insufficient-scope")
    detail = r.json()["detail"]
    assert "a municipality organisation may not hold scope(s) admin audit:read-all" in detail
    assert "A municipality may hold: consents:read keys:write messages:read messages:send subscriptions:write" in detail


@sqlite_only
async def test_an_unknown_scope_is_refused_naming_it(client, orgs):
    r = await call(client, signed(orgs.vught, scope="messages:read messages:delete"))
    assert_problem(r, 403, "insufficient-scope")
    assert "unknown scope(s) messages:delete" in r.json()["detail"]


@sqlite_only
@pytest.mark.parametrize("scope, json_type", [(["messages:read"], "array"), ({"messages:read": True}, "object"), (1, "number")])
async def test_a_scope_claim_that_is_not_one_string_is_an_invalid_token_saying_so(client, orgs, scope, json_type):
    r = await call(client, signed(orgs.amsterdam, scope=scope))
    assert_problem(r, 401, "invalid-token")
    assert "scope must be one space-delimited string" in r.json()["detail"]
    assert f"not a JSON {json_type}" in r.json()["detail"]


@sqlite_only
async def test_the_kind_of_every_demo_organisation_holds_what_its_default_scope_asks_for(client, orgs):
    """What demo tokens, the CLI (`brb token`) and the tests ask for by default is grantable: no 403."""
    for org in orgs.by_name.values():
        r = await client.get("/api/v1/organisations/me/keys", headers=org.headers())
        assert r.status_code == 200, f"{org.name}: {r.text}"


@sqlite_only
@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer not.a.jwt", "Bearer a.b", "Bearer ..."])
async def test_malformed_authorization_header_is_rejected(client, header):
    r = await client.get(INBOX, headers={"Authorization": header} if header else {})
    assert_problem(r, 401, "invalid-token")
    assert r.headers["www-authenticate"].startswith("Bearer")


@sqlite_only
async def test_missing_jti_is_rejected(client, orgs):
    assert_problem(await call(client, signed(orgs.amsterdam, jti=None)), 401, "invalid-token")


@sqlite_only
@pytest.mark.parametrize("jti", ["short", "x" * 201])
async def test_a_jti_outside_8_to_200_characters_is_rejected(client, orgs, jti):
    r = await call(client, signed(orgs.amsterdam, jti=jti))
    assert_problem(r, 401, "invalid-token")
    assert "8 to 200 characters" in r.json()["detail"]


@sqlite_only
@pytest.mark.parametrize("claim", ["exp", "iat", "aud"])
async def test_a_missing_required_claim_is_rejected(client, orgs, claim):
    r = await call(client, signed(orgs.amsterdam, **{claim: None}))
    assert_problem(r, 401, "invalid-token")
    assert claim in r.json()["detail"]


@sqlite_only
async def test_a_token_without_kid_is_rejected(client, orgs):
    key = jwt.PyJWK(orgs.amsterdam.private_jwk, algorithm="ES256").key
    r = await call(client, jwt.encode(claims(orgs.amsterdam), key, algorithm="ES256"))
    assert_problem(r, 401, "invalid-token")
    assert "no kid" in r.json()["detail"]


@sqlite_only
async def test_an_accepted_algorithm_other_than_the_registered_keys_is_rejected(client, orgs):
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(orgs.amsterdam), rsa_key, algorithm="RS256", headers={"kid": orgs.amsterdam.private_jwk["kid"]})
    r = await call(client, token)
    assert_problem(r, 401, "invalid-token")
    assert "registered for ES256, the token says RS256" in r.json()["detail"]


@sqlite_only
async def test_an_inactive_organisation_is_rejected(client, orgs, services):
    from gateway.db.models import Organisation

    async with services.db.write() as session:
        org = await session.get(Organisation, orgs.amsterdam.oin)
        org.active = False
        session.add(org)
    r = await call(client, signed(orgs.amsterdam))
    assert_problem(r, 401, "invalid-token")
    assert "registered, active organisation" in r.json()["detail"]


def test_the_scopes_per_kind_in_docs_authentication_match_the_declaration():
    import re
    from pathlib import Path

    from contracts.parties import KINDS

    text = (Path(__file__).resolve().parents[2] / "docs/authentication.md").read_text()
    documented = {}
    for kinds, scopes in re.findall(r"^\| (`[a-z]+`.*?) \| ((?:`[a-z:-]+` ?)+) \|$", text, re.M):
        for kind in re.findall(r"`([a-z]+)`", kinds):
            documented[kind] = set(re.findall(r"`([a-z:-]+)`", scopes))
    assert documented == {name: {str(s) for s in kind.scopes} for name, kind in KINDS.items()}
