"""Self-service keys (issue 15): an organisation lists, registers (with proof of possession) and revokes
its own keys, authenticated by a token signed with a current key; scope ``keys:write`` for changes.
The rotation test sends concurrently while the key changes hands. Both databases."""
from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import pytest

from gateway.auth.mint import mint, new_key_pair
from tests.scenario import example, problem

KEYS = "/api/v1/organisations/me/keys"


def proof_for(private_jwk: dict, oin: str, audience: str, *, kid: str | None = None, lifetime: int = 120, **overrides) -> str:
    """A proof of possession as a connector makes one: a short JWT signed with the NEW private key."""
    now = int(time.time())
    claims = {"iss": oin, "sub": oin, "aud": audience, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    key = jwt.PyJWK(private_jwk, algorithm="ES256").key
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="ES256",
                      headers={"kid": kid or private_jwk["kid"]})


def bearer(private_jwk: dict, org, scope: str) -> dict:
    return {"Authorization": f"Bearer {mint(private_jwk, org.oin, org.audience, scope)}"}


async def register(client, org, signer: dict, private: dict, public: dict):
    body = {"jwk": public, "proof": proof_for(private, org.oin, org.audience)}
    return await client.post(KEYS, json=body, headers=bearer(signer, org, "keys:write"))


async def test_an_organisation_lists_only_its_own_keys_public_parts_only(client, orgs):
    r = await client.get(KEYS, headers=orgs.amsterdam.headers("messages:read"))  # any valid token may look
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(k["kid"], k["alg"], k["revokedAt"]) for k in items] == [(orgs.amsterdam.private_jwk["kid"], "ES256", None)]
    assert set(items[0]) == {"kid", "alg", "createdAt", "revokedAt"}
    assert orgs.rotterdam.private_jwk["kid"] not in r.text


async def test_a_municipality_registers_a_key_that_proves_possession_and_signs_with_it(client, orgs):
    private, public = new_key_pair("amsterdam-2027")
    r = await register(client, orgs.amsterdam, orgs.amsterdam.private_jwk, private, public)
    assert r.status_code == 201, r.text
    assert r.json()["kid"] == "amsterdam-2027" and r.json()["alg"] == "ES256" and r.json()["revokedAt"] is None
    assert (await client.get("/api/v1/inbox", headers=bearer(private, orgs.amsterdam, "messages:read"))).status_code == 200
    kids = [k["kid"] for k in (await client.get(KEYS, headers=orgs.amsterdam.headers())).json()["items"]]
    assert kids == [orgs.amsterdam.private_jwk["kid"], "amsterdam-2027"]
    again = await register(client, orgs.amsterdam, orgs.amsterdam.private_jwk, private, public)
    assert "already registered" in problem(again, 409, "conflict")["detail"]


async def test_a_proof_that_does_not_verify_with_the_submitted_key_is_refused(client, orgs):
    org = orgs.amsterdam
    private, public = new_key_pair("amsterdam-new")
    other, _ = new_key_pair("amsterdam-new")  # same kid, another private key: no possession of the submitted one
    now = int(time.time())
    cases = {
        "signed by another key": (proof_for(other, org.oin, org.audience), "does not verify with the submitted JWK"),
        "kid of another key": (proof_for(private, org.oin, org.audience, kid="amsterdam-old"), "header kid"),
        "another audience": (proof_for(private, org.oin, org.audience, aud="urn:other"), "aud"),
        "another issuer": (proof_for(private, org.oin, org.audience, iss=orgs.rotterdam.oin, sub=orgs.rotterdam.oin), "iss"),
        "sub other than iss": (proof_for(private, org.oin, org.audience, sub=orgs.rotterdam.oin), "sub"),
        "expired": (proof_for(private, org.oin, org.audience, iat=now - 900, exp=now - 600), "expired"),
        "long-lived": (proof_for(private, org.oin, org.audience, lifetime=3600), "longer than 300 s"),
        "no jti": (proof_for(private, org.oin, org.audience, jti=None), "jti"),
        "not a JWT": ("not-a-jwt", "not a compact JWT"),
    }
    for name, (proof, words) in cases.items():
        r = await client.post(KEYS, json={"jwk": public, "proof": proof}, headers=org.headers("keys:write"))
        detail = problem(r, 422, "invalid-proof")["detail"]
        assert words in detail, f"{name}: {detail}"
    r = await client.post(KEYS, json={"jwk": private, "proof": proof_for(private, org.oin, org.audience)},
                          headers=org.headers("keys:write"))
    assert "never private key material" in problem(r, 422, "validation-failed")["detail"]
    r = await client.post(KEYS, json={"jwk": public}, headers=org.headers("keys:write"))
    assert "/proof" in problem(r, 422, "validation-failed")["detail"]
    kids = [k["kid"] for k in (await client.get(KEYS, headers=org.headers())).json()["items"]]
    assert kids == [org.private_jwk["kid"]]  # nothing was stored


async def test_changing_keys_needs_the_keys_write_scope(client, orgs):
    private, public = new_key_pair("amsterdam-x")
    r = await client.post(KEYS, json={"jwk": public, "proof": proof_for(private, orgs.amsterdam.oin, orgs.amsterdam.audience)},
                          headers=orgs.amsterdam.headers("messages:send messages:read"))
    assert "keys:write" in problem(r, 403, "insufficient-scope")["detail"]
    kid = orgs.amsterdam.private_jwk["kid"]
    r = await client.post(f"{KEYS}/{kid}/revocation", headers=orgs.amsterdam.headers("messages:send"))
    assert "keys:write" in problem(r, 403, "insufficient-scope")["detail"]


async def test_the_last_active_key_cannot_be_revoked_and_another_organisations_key_is_not_found(client, orgs):
    kid = orgs.amsterdam.private_jwk["kid"]
    r = await client.post(f"{KEYS}/{kid}/revocation", headers=orgs.amsterdam.headers("keys:write"))
    assert "last active key" in problem(r, 409, "conflict")["detail"]
    r = await client.post(f"{KEYS}/{orgs.rotterdam.private_jwk['kid']}/revocation", headers=orgs.amsterdam.headers("keys:write"))
    problem(r, 404, "not-found")
    r = await client.post(f"{KEYS}/no-such-kid/revocation", headers=orgs.amsterdam.headers("keys:write"))
    problem(r, 404, "not-found")
    assert (await client.get("/api/v1/inbox", headers=orgs.rotterdam.headers())).status_code == 200  # untouched


SENDS = 40
PARALLEL = 8
ROTATE_AFTER = 15  # sends done with the old key before the new one is registered
AFTER_REVOCATION = 10  # the last sends start only once the old key is revoked


async def test_a_municipality_rotates_its_own_key_while_sending_continues(client, orgs):
    org = orgs.amsterdam
    old, (new, new_public) = org.private_jwk, new_key_pair(f"{org.oin[-6:]}-t2")
    current = {"jwk": old}
    in_flight = {old["kid"]: 0, new["kid"]: 0}
    changed = asyncio.Condition()
    done_count = 0
    rotate_now, revoked = asyncio.Event(), asyncio.Event()
    gate = asyncio.Semaphore(PARALLEL)
    results: list[tuple[int, str, int, str]] = []  # (index, kid signed with, status, body)

    async def send(i: int) -> None:
        nonlocal done_count
        if i >= SENDS - AFTER_REVOCATION:
            await revoked.wait()
        async with gate:
            signer = current["jwk"]
            in_flight[signer["kid"]] += 1
            try:
                body = {"type": "aftercare-report", "version": 1, "purpose": "aftercare", "recipients": [orgs.vught.oin],
                        "payload": example("aftercare-report", "valid-minimal")}
                r = await client.post("/api/v1/messages", json=body, headers={
                    **bearer(signer, org, "messages:send"), "Idempotency-Key": uuid.uuid4().hex})
                results.append((i, signer["kid"], r.status_code, r.text))
            finally:
                async with changed:
                    in_flight[signer["kid"]] -= 1
                    done_count += 1
                    if done_count >= ROTATE_AFTER:
                        rotate_now.set()
                    changed.notify_all()

    async def rotate() -> list:
        await rotate_now.wait()
        try:
            added = await register(client, org, old, new, new_public)
            current["jwk"] = new  # from here on every send signs with the new key
            async with changed:  # the sends already signed with the old key finish first
                await changed.wait_for(lambda: in_flight[old["kid"]] == 0)
            revocation = await client.post(f"{KEYS}/{old['kid']}/revocation", headers=bearer(new, org, "keys:write"))
        finally:
            revoked.set()  # never leave the last sends waiting
        return [added, revocation]

    _, (added, revocation), *_ = await asyncio.gather(asyncio.gather(*(send(i) for i in range(SENDS))), rotate())
    assert added.status_code == 201, added.text
    assert revocation.status_code == 201 and revocation.json()["revokedAt"], revocation.text
    failed = [(i, kid, status, text[:200]) for i, kid, status, text in results if status != 201]
    assert not failed and len(results) == SENDS, failed
    signed_with = {kid: sum(1 for _, k, _, _ in results if k == kid) for kid in in_flight}
    assert signed_with[old["kid"]] >= ROTATE_AFTER and signed_with[new["kid"]] >= AFTER_REVOCATION, signed_with

    r = await client.get("/api/v1/inbox", headers=bearer(old, org, "messages:read"))
    assert f"key {old['kid']!r} was revoked" in problem(r, 401, "invalid-token")["detail"]
    keys = {k["kid"]: k["revokedAt"] for k in (await client.get(KEYS, headers=bearer(new, org, "messages:read"))).json()["items"]}
    assert keys[old["kid"]] is not None and keys[new["kid"]] is None


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_operator_may_still_revoke_an_organisations_last_key(client, orgs):
    """Self-service keeps one key; the operator may lock an organisation out (e.g. after a compromise)."""
    kid = orgs.amsterdam.private_jwk["kid"]
    r = await client.post(f"/api/v1/organisations/{orgs.amsterdam.oin}/keys/{kid}/revocation", headers=orgs.operator.headers())
    assert r.status_code == 201, r.text
    problem(await client.get("/api/v1/inbox", headers=orgs.amsterdam.headers()), 401, "invalid-token")
