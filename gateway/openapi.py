"""The published OpenAPI document (NL API Design Rules): paths under the server URL ``/api/v1``,
an ``API-Version`` header on every 2xx/3xx, problem+json on every 4xx/5xx, contact and semver info."""
from __future__ import annotations

import copy

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway import API_VERSION
from gateway.problems import PROBLEM_JSON, PROBLEM_TYPES
from gateway.schemas import CONTROL_CHARACTER_RANGES

PREFIX = "/api/v1"
VERSION_HEADER = {
    "description": "The full semantic version of the API",
    "schema": {"type": "string", "example": API_VERSION},
}
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details. `type` is stable per error kind (see docs/problems.md). "
    "Field-level problems are listed in `detail` as `<n> invalid field(s): <pointer>: <message>; ...`.",
    "properties": {
        "type": {"type": "string", "format": "uri", "description": "stable problem type URI"},
        "title": {"type": "string"},
        "status": {"type": "integer", "format": "int32"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request path"},
    },
    "required": ["status", "title", "detail"],
}
TAGS = [
    {"name": "messages", "description": "Send, receive, read and acknowledge messages"},
    {"name": "consents", "description": "The detainee's consent: record, list, withdraw"},
    {"name": "audit", "description": "The processing log for audit officers and the inspectorate"},
    {"name": "subscriptions", "description": "Webhooks and their dead letters"},
    {"name": "organisations", "description": "The organisation registry (operator only)"},
]
COMMON_ERRORS = {"400", "401", "403", "404", "413", "422", "429", "500"}
WRITE_ERRORS = {"409", "415"}


def _problem_response(status: str) -> dict:
    titles = sorted({t.title for t in PROBLEM_TYPES.values() if str(t.status) == status})
    return {
        "description": "; ".join(titles) or "Problem",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def build(app: FastAPI) -> dict:
    doc = get_openapi(
        title="Berichtenbox Re-integratie API",
        version=API_VERSION,
        summary="Exchange of D&R-plans and risk information between DJI, 3RO, municipalities and mayors (art. 18a/18b Pbw)",
        description=(
            "Authenticate with a JWT signed by your organisation's registered key (private_key_jwt style): "
            "`iss` = `sub` = your OIN, `aud` = the gateway id, `exp` at most one hour ahead, a fresh `jti` per request, "
            "and the scopes you need. A BSN never appears in a URL: subjects are addressed by pseudonym (`subjectId`)."
        ),
        routes=app.routes,
        tags=TAGS,
    )
    doc["info"]["contact"] = {
        "name": "Berichtenbox Re-integratie service desk",
        "email": "servicedesk@berichtenbox-reintegratie.nl",
        "url": "https://berichtenbox-reintegratie.nl/developers",
    }
    doc["info"]["license"] = {"name": "EUPL-1.2", "identifier": "EUPL-1.2"}
    doc["servers"] = [{"url": PREFIX, "description": "this gateway (relative to its host)"}]
    doc["security"] = [{"privateKeyJwt": []}]
    components = doc.setdefault("components", {})
    components["securitySchemes"] = {"privateKeyJwt": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A JWT signed with your organisation's registered private key (ES256, RS256 or EdDSA).",
    }}
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA

    paths = {}
    for path, item in doc["paths"].items():
        if not path.startswith(PREFIX):
            continue
        for method, op in item.items():
            if method == "parameters":
                continue
            responses = op.setdefault("responses", {})
            for status, response in list(responses.items()):
                if status.startswith(("2", "3")):
                    response.setdefault("headers", {})["API-Version"] = copy.deepcopy(VERSION_HEADER)
                    if status == "204":
                        response.pop("content", None)
            wanted = COMMON_ERRORS | (WRITE_ERRORS if method in ("post", "put", "patch", "delete") else set())
            if "/messages/" in path or path.endswith("/messages"):
                wanted |= {"410"}
            for status in sorted(wanted):
                responses[status] = _problem_response(status)
            if op.get("security") is None:
                op["security"] = [{"privateKeyJwt": []}]
        paths[path[len(PREFIX):] or "/"] = item
    doc["paths"] = paths
    declare_what_the_server_enforces(schemas)
    return doc


# --- what the server enforces beyond the wire models' types --------------------------------------------
# The models stay plain; these rules come from their one source (the catalogue, the contract registry,
# the organisation kinds, the event table) so a generated client and a fuzzer see what the server checks.

CONTROL_FREE = f"^[^{CONTROL_CHARACTER_RANGES}]*$"  # the class the server refuses (gateway/schemas.py)
REQUEST_BODIES = ("SendMessageRequest", "AcknowledgementRequest", "ConsentRequest", "WithdrawalRequest", "SubjectIdentifiers",
                  "SubscriptionRequest", "OrganisationRequest", "KeyRequest")


def _value(schema: dict, name: str) -> dict:
    """The non-null member of property ``name`` (an optional field is anyOf [T, null])."""
    prop = schema["properties"][name]
    return next((m for m in prop.get("anyOf", []) if m.get("type") != "null"), prop)


def _control_free(node: dict) -> None:
    if node.get("type") == "string" and not ({"pattern", "format", "enum", "const"} & set(node)):
        node["pattern"] = CONTROL_FREE
    for key in ("properties",):
        for child in node.get(key, {}).values():
            _control_free(child)
    for key in ("anyOf", "oneOf", "allOf"):
        for child in node.get(key, []):
            _control_free(child)
    if isinstance(node.get("items"), dict):
        _control_free(node["items"])


def declare_what_the_server_enforces(schemas: dict) -> None:
    import consent
    from contracts.registry import MODELS
    from contracts.parties import CBS_KINDS, KINDS
    from gateway.outbox.events import EVENT_TYPES
    from gateway.webhooks.subscriptions import CALLBACK_URL_PATTERN

    catalogue = consent.load()
    for name in REQUEST_BODIES:
        _control_free(schemas[name])

    schemas["SubjectIdentifiers"]["anyOf"] = [
        {"required": [f], "properties": {f: {"type": "string"}}} for f in ("bsn", "skn")]

    request = schemas["ConsentRequest"]
    request["anyOf"] = [{"required": [f], "properties": {f: {"type": "array", "items": {"type": "string"}, "minItems": 1}}}
                        for f in ("recipientOins", "recipientKinds")]
    request["properties"]["categories"]["items"]["enum"] = sorted(catalogue.consentable)
    request["properties"]["purposes"]["items"]["enum"] = sorted(catalogue.purposes)
    request["properties"]["recipientKinds"]["items"]["enum"] = sorted(catalogue.party_kinds)

    ack = schemas["AcknowledgementRequest"]
    ack["if"] = {"properties": {"status": {"const": "rejected"}}, "required": ["status"]}
    ack["then"] = {"required": ["reason"], "properties": {"reason": {"type": "string"}}}

    org = schemas["OrganisationRequest"]
    org["properties"]["kind"]["enum"] = list(KINDS)
    org["allOf"] = [
        {"if": {"properties": {"kind": {"enum": list(CBS_KINDS)}}, "required": ["kind"]},
         "then": {"required": ["cbsCode"], "properties": {"cbsCode": {"type": "string"}}},
         "else": {"properties": {"cbsCode": {"type": "null"}}}},
        {"if": {"properties": {"kind": {"enum": [n for n, k in KINDS.items() if k.audits_parent]}}, "required": ["kind"]},
         "then": {"required": ["parentOin"], "properties": {"parentOin": {"type": "string"}}}},
    ]
    schemas["KeyRequest"]["properties"]["jwk"].update({
        "propertyNames": {"pattern": CONTROL_FREE},
        "additionalProperties": {"anyOf": [{"type": "string", "pattern": CONTROL_FREE}, {"type": "boolean"},
                                           {"type": "array", "items": {"type": "string", "pattern": CONTROL_FREE}}]},
        "required": ["kid", "kty"],
        "properties": {"kid": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
                       "kty": {"type": "string", "enum": ["EC", "RSA", "OKP"]}},
        "not": {"anyOf": [{"required": [k]} for k in ("d", "p", "q", "dp", "dq", "qi", "k")]},  # public keys only
        "allOf": [
            {"if": {"properties": {"kty": {"const": "EC"}}}, "then": {"required": ["crv", "x", "y"], "properties": {"crv": {"const": "P-256"}}}},
            {"if": {"properties": {"kty": {"const": "OKP"}}}, "then": {"required": ["crv", "x"], "properties": {"crv": {"const": "Ed25519"}}}},
            {"if": {"properties": {"kty": {"const": "RSA"}}}, "then": {"required": ["n", "e"]}},
        ],
    })

    subscription = schemas["SubscriptionRequest"]
    subscription["properties"]["eventTypes"]["items"]["enum"] = sorted(t for t, spec in EVENT_TYPES.items() if spec.stream == "events")
    _value(subscription, "secret")["pattern"] = "^whsec_([A-Za-z0-9+/]{4}){8,}([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    subscription["properties"]["callbackUrl"].pop("format", None)
    subscription["properties"]["callbackUrl"]["pattern"] = CALLBACK_URL_PATTERN

    # the payload: one contract per (type, version), referenced from the contract registry
    from pydantic.json_schema import models_json_schema

    refs, defs = models_json_schema([(m, "validation") for m in MODELS], by_alias=True,
                                    ref_template="#/components/schemas/{model}")
    for name, schema in defs["$defs"].items():
        schemas.setdefault(name, schema)
    send = schemas["SendMessageRequest"]
    send["properties"]["type"]["enum"] = sorted({m.MESSAGE_TYPE for m in MODELS})
    send["properties"]["purpose"]["enum"] = sorted(catalogue.purposes)
    send["properties"]["recipients"]["items"]["pattern"] = "^([0-9]{20}|(municipality|mayor):[0-9]{4})$"
    send["properties"]["recipients"]["uniqueItems"] = True
    send["oneOf"] = [
        {"title": f"{m.MESSAGE_TYPE} v{m.VERSION}",
         "required": ["type", "payload"] + (["version"] if m.VERSION > 1 else []),
         "properties": {"type": {"const": m.MESSAGE_TYPE}, "version": {"const": m.VERSION},
                        "payload": refs[(m, "validation")]}}
        for m in MODELS
    ]
