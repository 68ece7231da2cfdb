"""NL API Design Rules on the running service: API-Version on every endpoint, problem+json errors,
the published OpenAPI document equals the committed one. (The Spectral lint itself runs in `make test`.)"""
import re
from pathlib import Path

import jsonschema
import yaml

from gateway import API_VERSION
from gateway.openapi import PROBLEM_SCHEMA
from tests.scenario import BSN, Chain, problem

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = yaml.safe_load((ROOT / "openapi.yaml").read_text())


async def test_published_openapi_document_equals_the_committed_one(client):
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["api-version"] == API_VERSION
    assert r.json() == COMMITTED, "openapi.yaml drifted from the app: run `make openapi`"


def test_committed_document_follows_the_design_rules_we_rely_on():
    assert COMMITTED["openapi"].startswith("3.1") and COMMITTED["servers"][0]["url"] == "/api/v1"
    assert re.fullmatch(r"\d+\.\d+\.\d+", COMMITTED["info"]["version"])
    assert {"name", "email", "url"} <= set(COMMITTED["info"]["contact"])
    for path, item in COMMITTED["paths"].items():
        assert not path.endswith("/") and all(re.fullmatch(r"[a-z0-9-]+|\{[^}]+\}", seg) for seg in path.strip("/").split("/"))
        for method, op in item.items():
            for status, response in op["responses"].items():
                if status[0] in "23":
                    assert "API-Version" in response["headers"], (method, path, status)
                else:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
    for name in COMMITTED["components"]["schemas"]:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), name


async def test_every_endpoint_answers_with_the_api_version_header(client, orgs, stay):
    chain = Chain(client, orgs)
    seen: dict[tuple[str, str], int] = {}

    async def call(method, template, org, path=None, **kwargs):
        r = await client.request(method, "/api/v1" + (path or template), headers=org.headers(**kwargs.pop("headers", {})), **kwargs)
        assert r.headers.get("api-version") == API_VERSION, (method, template, r.status_code)
        seen[(method.lower(), template)] = r.status_code
        return r

    mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    await call("POST", "/messages", orgs.vught, json={"type": "release-notice", "version": 1, "purpose": "aftercare",
               "recipients": ["municipality:0363"], "payload": yaml.safe_load((ROOT / "contracts/examples/release-notice/valid-minimal.json").read_text())},
               headers={"Idempotency-Key": "api-version-1"})
    await call("GET", "/messages", orgs.vught)
    await call("GET", "/inbox", orgs.amsterdam)
    await call("GET", "/messages/{message_id}", orgs.amsterdam, f"/messages/{mid}", params={"purpose": "aftercare"})
    await call("POST", "/messages/{message_id}/acknowledgements", orgs.amsterdam, f"/messages/{mid}/acknowledgements", json={"status": "received"})
    await call("GET", "/messages/{message_id}/deliveries", orgs.vught, f"/messages/{mid}/deliveries")
    consent = (await call("POST", "/consents", orgs.vught, json={"subject": {"bsn": BSN}, "categories": ["children-family"],
               "recipientKinds": ["municipality"], "purposes": ["aftercare"], "evidenceReference": "f-1"})).json()
    await call("GET", "/consents", orgs.amsterdam, params={"subjectId": consent["subjectId"]})
    await call("POST", "/consents/{consent_id}/withdrawal", orgs.vught, f"/consents/{consent['id']}/withdrawal", json={})
    admitted = (await chain.send(orgs.vught, "detention-notice", ["municipality:0363"])).json()
    await call("GET", "/trajectories/{subject_id}", orgs.amsterdam, f"/trajectories/{admitted['subjectId']}")
    await call("GET", "/deadlines", orgs.vught, params={"status": "open"})
    await call("GET", "/deadlines/stats", orgs.inspectorate)
    await call("GET", "/triage", orgs.vught)
    await call("GET", "/triage/{subject_id}", orgs.vught, f"/triage/{admitted['subjectId']}")
    await call("GET", "/audit/records", orgs.inspectorate)
    await call("GET", "/audit/export", orgs.inspectorate)
    await call("GET", "/audit/aggregates", orgs.inspectorate)
    await call("POST", "/audit/subject-report", orgs.inspectorate, json={"bsn": BSN})
    await call("GET", "/audit/verify", orgs.inspectorate)
    sub = (await call("POST", "/subscriptions", orgs.amsterdam, json={"callbackUrl": "https://connector.example/brb",
           "eventTypes": ["message.delivered"]})).json()
    await call("GET", "/subscriptions", orgs.amsterdam)
    await call("GET", "/subscriptions/{subscription_id}/deliveries", orgs.amsterdam, f"/subscriptions/{sub['id']}/deliveries")
    await call("POST", "/subscriptions/{subscription_id}/deliveries/{delivery_id}/replay", orgs.amsterdam,
               f"/subscriptions/{sub['id']}/deliveries/1/replay")
    closed = (await call("POST", "/subscriptions", orgs.amsterdam, json={"callbackUrl": "http://127.0.0.1:9/brb",
              "eventTypes": ["message.delivered"]})).json()
    await call("POST", "/subscriptions/{subscription_id}/ping", orgs.amsterdam, f"/subscriptions/{closed['id']}/ping")
    await call("POST", "/subscriptions/{subscription_id}/secret-rotation", orgs.amsterdam,
               f"/subscriptions/{closed['id']}/secret-rotation", json={"overlapHours": 1})
    await call("DELETE", "/subscriptions/{subscription_id}", orgs.amsterdam, f"/subscriptions/{sub['id']}")
    await call("GET", "/webhook-dead-letters", orgs.operator)
    await call("POST", "/webhook-dead-letters/{dead_letter_id}/replay", orgs.operator, "/webhook-dead-letters/1/replay")
    await call("POST", "/organisations", orgs.operator, json={"oin": "00000001009990344000", "name": "Gemeente Utrecht",
               "kind": "municipality", "cbsCode": "0344"})
    await call("GET", "/organisations", orgs.operator)
    from gateway.auth.mint import new_key_pair

    await call("POST", "/organisations/{oin}/keys", orgs.operator, "/organisations/00000001009990344000/keys",
               json={"jwk": new_key_pair("utrecht-1")[1]})
    await call("POST", "/organisations/{oin}/keys/{kid}/revocation", orgs.operator, "/organisations/00000001009990344000/keys/utrecht-1/revocation")
    await call("GET", "/organisations/{oin}/jwks", orgs.amsterdam, f"/organisations/{orgs.vught.oin}/jwks")
    from brb_client import Identity, public_part

    rotated = new_key_pair("amsterdam-rotated")[0]
    proof = Identity(orgs.amsterdam.oin, rotated, "keys:write", orgs.amsterdam.audience).proof_of_possession()
    await call("GET", "/organisations/me/keys", orgs.amsterdam)
    await call("POST", "/organisations/me/keys", orgs.amsterdam, json={"jwk": public_part(rotated), "proof": proof})
    await call("POST", "/organisations/me/keys/{kid}/revocation", orgs.amsterdam, "/organisations/me/keys/amsterdam-rotated/revocation")

    documented = {(method, path) for path, item in COMMITTED["paths"].items() for method in item}
    assert set(seen) == documented
    assert {k: v for k, v in seen.items() if not 200 <= v < 300} == {("post", "/webhook-dead-letters/{dead_letter_id}/replay"): 404,
                                                                   ("post", "/subscriptions/{subscription_id}/deliveries/{delivery_id}/replay"): 404}
    for path in ("/health/live", "/health/ready", "/metrics", "/api/v1/nowhere"):
        assert (await client.get(path)).headers["api-version"] == API_VERSION


async def test_errors_are_problem_json_with_exactly_the_documented_members(client, orgs):
    responses = [
        await client.get("/api/v1/inbox"),
        await client.get("/api/v1/nowhere", headers=orgs.vught.headers()),
        await client.put("/api/v1/inbox", headers=orgs.vught.headers()),
        await client.post("/api/v1/messages", content=b"{not json", headers=orgs.vught.headers(**{"Idempotency-Key": "x", "Content-Type": "application/json"})),
        await client.post("/api/v1/messages", json={"type": "dr-plan"}, headers=orgs.vught.headers(**{"Idempotency-Key": "y"})),
        await client.get("/api/v1/inbox", params={"pageSize": 0}, headers=orgs.vught.headers()),
    ]
    expected = [(401, "invalid-token"), (404, "not-found"), (405, "method-not-allowed"), (400, "invalid-request"),
                (422, "validation-failed"), (422, "validation-failed")]
    assert [r.status_code for r in responses] == [status for status, _slug in expected]
    for r, (status, slug) in zip(responses, expected):
        assert r.headers["content-type"] == "application/problem+json"
        body = problem(r, status, slug)
        jsonschema.validate(body, {**PROBLEM_SCHEMA, "additionalProperties": False})
        assert body["instance"].startswith("/")
    assert responses[4].json()["detail"].startswith("3 invalid field(s): /purpose: Field required; /recipients: Field required; /payload:")


async def test_metrics_use_route_templates_never_identifiers(client, orgs, stay):
    mid = (await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    await client.get(f"/api/v1/messages/{mid}", params={"purpose": "aftercare"}, headers=orgs.amsterdam.headers())
    text = (await client.get("/metrics")).text
    assert 'route="/api/v1/messages/{message_id}"' in text and mid not in text and BSN not in text


async def test_readiness_reports_the_database_and_the_broker(client):
    r = await client.get("/health/ready")  # the test settings point Kafka at a closed port
    assert r.status_code == 503 and r.json()["checks"] == {"database": "up", "broker": "down"}
    assert (await client.get("/health/live")).status_code == 200


def test_every_request_body_is_checked_for_control_characters():
    """A body model is an ``Inbound``: its text is screened for NUL and other control characters on the way
    in (PostgreSQL refuses NUL in text; answers skip the check). A new route with a plain Wire body fails here."""
    import inspect
    import typing

    from fastapi.routing import APIRoute
    from pydantic import BaseModel

    from gateway.app import create_app
    from gateway.schemas import Inbound

    try:  # FastAPI >= 0.16x keeps an included router's routes behind it
        from fastapi.routing import iter_route_contexts
        routes = [c.original_route for c in iter_route_contexts(create_app().routes)]
    except ImportError:
        routes = create_app().routes
    bodies = {}
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        hints = typing.get_type_hints(route.endpoint, include_extras=True)
        for name in inspect.signature(route.endpoint).parameters:
            hint = hints.get(name)
            if inspect.isclass(hint) and issubclass(hint, BaseModel):
                bodies[f"{sorted(route.methods)[0]} {route.path} {name}"] = hint
    assert len(bodies) >= 10, bodies
    assert {where: model.__name__ for where, model in bodies.items() if not issubclass(model, Inbound)} == {}
