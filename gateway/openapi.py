"""The published OpenAPI document (NL API Design Rules): paths under the server URL ``/api/v1``,
an ``API-Version`` header on every 2xx/3xx, problem+json on every 4xx/5xx, contact and semver info."""
from __future__ import annotations

import copy
import inspect

import yaml

from fastapi import FastAPI, routing
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic.alias_generators import to_camel

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
    {"name": "trajectories", "description": "The chain's process norms per stay: deadlines, who leads, the share met in time"},
    {"name": "triage", "description": "The SOM triage: which detainees probation works with in prison, first pass and joint decision"},
    {"name": "audit", "description": "The processing log for audit officers and the inspectorate"},
    {"name": "subscriptions", "description": "Webhooks and their dead letters"},
    {"name": "organisations", "description": "The organisation registry (operator only)"},
]
# --- the problems each operation can answer -------------------------------------------------------------
# Every operation answers the token and capacity problems; the rest follow from what the route takes (an id
# in the path, a body, query parameters) or are declared on the route with ``responses=problems(...)``.

PROBLEM_KEY = "x-problem-types"  # carried from the route's ``responses`` to build(), then removed
WHEN = {
    "invalid-token": "the Authorization header holds no valid bearer token (signature, iss/sub, aud, exp, scope claim)",
    "token-replayed": "the token's jti was used before: sign a fresh token per request",
    "insufficient-scope": "the token asks for a scope its organisation's kind may not hold",
    "forbidden": "your organisation's kind or role may not do this",
    "exchange-not-allowed": "no rule of the policy catalogue lets your organisation send this type to the recipient",
    "purpose-not-allowed": "the purpose is unknown or the rule does not allow it (the detail lists the valid ones)",
    "consent-required": "the exchange needs the detainee's consent and none is in force",
    "recipient-not-competent": "the recipient municipality (or its mayor) is not competent for this detainee",
    "condition-not-met": "the legal condition the rule requires (e.g. the art. 18b risk) is not asserted",
    "not-found": "no such resource, or you are no party to it (also: a path with a trailing slash)",
    "idempotency-conflict": "the Idempotency-Key was used before with another body",
    "conflict": "the resource's state does not allow this (already done, final, or it exists)",
    "gone": "the payload was purged under the retention schedule",
    "payload-too-large": "the body exceeds the size limit",
    "unsupported-media-type": "the body is not sent as application/json",
    "invalid-request": "the request is malformed (body not JSON, bad cursor or page size)",
    "validation-failed": "a field breaks its schema; `detail` lists each JSON pointer and message",
    "unknown-recipient": "a recipient OIN or CBS code is unknown or inactive",
    "unknown-contract": "no contract for this message type and version",
    "rate-limited": "too many requests from your organisation; wait Retry-After seconds",
    "internal-error": "an unexpected error; the instance and the trace id identify it",
}
# any token may ask for a scope its kind may not hold (403), any path may be misspelt (404)
ALWAYS = ("invalid-token", "token-replayed", "insufficient-scope", "not-found", "rate-limited", "internal-error")


def problems(*slugs: str) -> dict:
    """For a route's ``responses=``: the problem types it answers beyond those derived from its signature."""
    out: dict = {}
    for slug in slugs:
        out.setdefault(PROBLEM_TYPES[slug].status, {"description": "Problem", PROBLEM_KEY: []})[PROBLEM_KEY].append(slug)
    return out


def _dependants(dependant):
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _params(route: APIRoute, kind: str) -> list:
    return [p for d in _dependants(route.dependant) for p in getattr(d, kind)]


def _scopes(route) -> tuple[str, ...]:
    """The scopes the route's ``require(...)`` dependency asks for (any one suffices)."""
    for dep in _dependants(route.dependant):
        if getattr(dep.call, "__qualname__", "").startswith("require.<locals>"):
            return tuple(inspect.getclosurevars(dep.call).nonlocals.get("scopes", ()))
    return ()


def _derived_problems(route) -> list[str]:
    slugs = list(ALWAYS)
    query = _params(route, "query_params")
    if _params(route, "path_params"):
        slugs += ["not-found", "validation-failed"]
    if query or _params(route, "header_params"):
        slugs.append("validation-failed")
    if any(p.alias in ("cursor", "pageSize") for p in query):
        slugs.append("invalid-request")
    if route.body_field is not None:
        slugs += ["invalid-request", "validation-failed", "payload-too-large", "unsupported-media-type"]
    return slugs


def _problem_responses(op: dict, route) -> dict:
    declared = [s for r in op.get("responses", {}).values() for s in r.get(PROBLEM_KEY, [])]
    slugs = list(dict.fromkeys(_derived_problems(route) + declared))
    scopes = _scopes(route)
    by_status: dict[str, list] = {}
    for slug in slugs:
        by_status.setdefault(str(PROBLEM_TYPES[slug].status), []).append(PROBLEM_TYPES[slug])
    out = {}
    for status, types in sorted(by_status.items()):
        lines, examples = [], {}
        for t in types:
            when = WHEN.get(t.slug, t.title)
            if t.slug == "insufficient-scope" and scopes:
                when = f"the token holds none of {' or '.join(scopes)}, or asks for a scope its organisation's kind may not hold"
            lines.append(f"`{t.slug}` ({t.uri}): {when}")
            detail = f"this operation needs scope {' or '.join(scopes)}" if t.slug == "insufficient-scope" and scopes else when
            examples[t.slug] = {"summary": t.title, "value": {"type": t.uri, "title": t.title, "status": t.status,
                                                             "detail": detail}}
        out[status] = {"description": "; ".join(lines),
                       "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}, "examples": examples}}}
    return out


def operation_id(route) -> str:
    """Stable and meaningful: the route's name (its function's, or ``name=``) in camelCase."""
    return to_camel(route.name)


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

    from gateway.api.examples import EXAMPLES, PARAMETERS

    routes = {(r.path_format, m.lower()): r for r in _api_routes(app) for m in r.methods}
    paths = {}
    for path, item in doc["paths"].items():
        if not path.startswith(PREFIX):
            continue
        for method, op in item.items():
            if method == "parameters":
                continue
            route = routes[(path, method)]
            op["operationId"] = operation_id(route)
            responses = op.setdefault("responses", {})
            problem_responses = _problem_responses(op, route)  # reads the declared problems before they are dropped
            for status, response in list(responses.items()):
                if status.startswith(("2", "3")):
                    response.setdefault("headers", {})["API-Version"] = copy.deepcopy(VERSION_HEADER)
                    if status == "204":
                        response.pop("content", None)
                else:
                    del responses[status]
            responses.update(problem_responses)
            _apply_examples(op, EXAMPLES.get(op["operationId"], {}), PARAMETERS)
            if op.get("security") is None:
                op["security"] = [{"privateKeyJwt": []}]
        paths[path[len(PREFIX):] or "/"] = item
    doc["paths"] = paths
    declare_what_the_server_enforces(schemas)
    _closed_query_parameters(paths)
    return doc


def _closed_query_parameters(paths: dict) -> None:
    """Query parameters holding a catalogue word name their closed set: the purpose a message is read for is
    an enum (an unknown one is a problem listing the valid ones); filters list theirs in the description."""
    import consent
    from contracts.registry import MODELS
    from gateway.audit.record import Activity
    from gateway.statuses import DeliveryState

    values = {"purpose": sorted(consent.load().purposes), "type": sorted({m.MESSAGE_TYPE for m in MODELS}),
              "status": [s.value for s in DeliveryState], "activity": [a.value for a in Activity]}
    for item in paths.values():
        for op in item.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                if param.get("in") == "query" and param["name"] in values:
                    schema = param["schema"]
                    if param["name"] == "purpose" and param.get("required"):  # refused when unknown: a closed set
                        schema["enum"] = values["purpose"]
                    else:  # a filter: an unknown word finds nothing, so the set is named, not enforced
                        param["description"] = f"{param.get('description', '')}; one of {', '.join(values[param['name']])}"


def _api_routes(app: FastAPI) -> list:
    """Every published route with its full path: FastAPI >= 0.160 keeps included routers as contexts."""
    if hasattr(routing, "iter_route_contexts"):
        found = [c for c in routing.iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]
    else:
        found = [r for r in app.routes if isinstance(r, APIRoute)]
    return [r for r in found if r.include_in_schema]


def _apply_examples(op: dict, examples: dict, parameters: dict) -> None:
    """The request body's and the success response's example (gateway/api/examples.py), per media type, and
    one for each path parameter and required query or header parameter (a generated collection fills them in)."""
    examples = copy.deepcopy(examples)  # no shared nodes: the YAML stays free of anchors
    for param in op.get("parameters", []):
        if param.get("required") and param["name"] in parameters:
            param["example"] = parameters[param["name"]]
    if "request" in examples and "requestBody" in op:
        op["requestBody"]["content"]["application/json"]["example"] = examples["request"]
    for status, response in op["responses"].items():
        if status.startswith("2"):
            for media, content in response.get("content", {}).items():
                key = "response" if media == "application/json" else f"response {media}"
                if key in examples:
                    content["example"] = examples[key]


# --- what the server enforces beyond the wire models' types --------------------------------------------
# The models stay plain; these rules come from their one source (the catalogue, the contract registry,
# the organisation kinds, the event table) so a generated client and a fuzzer see what the server checks.

CONTROL_FREE = f"^[^{CONTROL_CHARACTER_RANGES}]*$"  # the class the server refuses (gateway/schemas.py)
REQUEST_BODIES = ("SendMessageRequest", "AcknowledgementRequest", "ConsentRequest", "WithdrawalRequest", "SubjectIdentifiers",
                  "SubscriptionRequest", "OrganisationRequest", "KeyRequest", "OwnKeyRequest", "SecretRotationRequest")


PUBLIC_JWK = {
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
}
COMPACT_JWS = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"


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
    for name in ("KeyRequest", "OwnKeyRequest"):  # the admin's and the organisation's own: one public JWK
        schemas[name]["properties"]["jwk"].update(copy.deepcopy(PUBLIC_JWK))
    schemas["OwnKeyRequest"]["properties"]["proof"]["pattern"] = COMPACT_JWS

    subscription = schemas["SubscriptionRequest"]
    subscription["properties"]["eventTypes"]["items"]["enum"] = sorted(t for t, spec in EVENT_TYPES.items() if spec.stream == "events")
    for name in ("SubscriptionRequest", "SecretRotationRequest"):  # at least 24 bytes, base64
        _value(schemas[name], "secret")["pattern"] = "^whsec_([A-Za-z0-9+/]{4}){8,}([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
    subscription["properties"]["callbackUrl"].pop("format", None)
    subscription["properties"]["callbackUrl"]["pattern"] = CALLBACK_URL_PATTERN

    _closed_sets_in_responses(schemas, catalogue, sorted({m.MESSAGE_TYPE for m in MODELS}), list(KINDS),
                              sorted(t for t, spec in EVENT_TYPES.items() if spec.stream == "events"))

    # the payload: one contract per (type, version), referenced from the contract registry
    from pydantic.json_schema import models_json_schema

    refs, defs = models_json_schema([(m, "validation") for m in MODELS], by_alias=True,
                                    ref_template="#/components/schemas/{model}")
    for name, schema in defs["$defs"].items():
        _control_free(schema)  # the contracts refuse control characters in every string too
        schemas.setdefault(name, schema)
    send = schemas["SendMessageRequest"]
    send["properties"]["type"]["enum"] = sorted({m.MESSAGE_TYPE for m in MODELS})
    send["properties"]["purpose"]["enum"] = sorted(catalogue.purposes)
    send["properties"]["recipients"]["items"]["pattern"] = "^([0-9]{20}|(municipality|mayor):[0-9]{4})$"
    send["properties"]["recipients"]["uniqueItems"] = True
    # each (type, version) a named request a generated client can build: type and version fixed, the payload typed
    members = []
    for m in MODELS:
        name = "Send" + "".join(w.capitalize() for w in m.MESSAGE_TYPE.split("-")) + f"V{m.VERSION}"
        member = copy.deepcopy({k: v for k, v in send.items() if k in ("type", "properties", "additionalProperties")})
        member["title"] = name
        member["description"] = f"Send a {m.MESSAGE_TYPE} message, contract version {m.VERSION}"
        member["properties"]["type"] = {"type": "string", "const": m.MESSAGE_TYPE, "description": "message type"}
        member["properties"]["version"] = {"type": "integer", "minimum": m.VERSION, "maximum": m.VERSION, "description": "contract version",
                                           **({} if m.VERSION > 1 else {"default": 1})}
        member["properties"]["payload"] = refs[(m, "validation")]
        member["required"] = ["type", "purpose", "recipients", "payload"] + (["version"] if m.VERSION > 1 else [])
        schemas[name] = member
        members.append({"$ref": f"#/components/schemas/{name}"})
    schemas["SendMessageRequest"] = {"title": "SendMessageRequest", "description": "A message to send: one shape per "
                                     "message type and contract version (contracts/schemas/v<version>/<type>.json)",
                                     "oneOf": members}


def _enum(schemas: dict, model: str, field: str, values: list, *, items: bool = False) -> None:
    """Declare a closed set on a response field (the non-null member of an optional one)."""
    if model not in schemas or field not in schemas[model].get("properties", {}):
        return
    target = _value(schemas[model], field)
    (target["items"] if items else target)["enum"] = list(values)


def _closed_sets_in_responses(schemas: dict, catalogue, types: list, kinds: list, events: list) -> None:
    """What the server answers is as closed as what it accepts: a client may switch on these values."""
    from contracts.parties import Scope
    from gateway.audit.record import Activity

    purposes, bases, categories = sorted(catalogue.purposes), list(catalogue.legal_bases), list(catalogue.categories)
    for model in ("MessageReceipt", "MessageSummary", "MessageView"):
        _enum(schemas, model, "type", types)
        _enum(schemas, model, "purpose", purposes)
        _enum(schemas, model, "legalBasis", bases)
    _enum(schemas, "MessageView", "readPurpose", purposes)
    for model in ("DeliveryStatus", "AcknowledgementReceipt"):  # the latter: a delivery status with its signed receipt
        _enum(schemas, model, "recipientKind", kinds)
        _enum(schemas, model, "legalBasis", bases)
    _enum(schemas, "Redaction", "category", categories)
    _enum(schemas, "ReleasedSection", "category", categories)
    _enum(schemas, "ReleasedSection", "legalBasis", bases)
    _enum(schemas, "ConsentView", "givenBy", sorted(catalogue.consent_givers))
    _enum(schemas, "ConsentView", "categories", sorted(catalogue.consentable), items=True)
    _enum(schemas, "ConsentView", "purposes", purposes, items=True)
    _enum(schemas, "ConsentView", "recipientKinds", sorted(catalogue.party_kinds), items=True)
    _enum(schemas, "ConsentRequest", "givenBy", sorted(catalogue.consent_givers))
    _enum(schemas, "OrganisationView", "kind", kinds)
    _enum(schemas, "SubscriptionView", "eventTypes", events, items=True)
    _enum(schemas, "DeadLetter", "eventType", events)
    _enum(schemas, "AuditRecordView", "activity", [a.value for a in Activity])
    _enum(schemas, "AuditRecordView", "legalBasis", bases)
    if "AuditRecordView" in schemas and "scope" in schemas["AuditRecordView"]["properties"]:
        _value(schemas["AuditRecordView"], "scope")["description"] = (
            "the token's scopes, space-separated: " + ", ".join(s.value for s in Scope))


class _Dumper(yaml.SafeDumper):
    """YAML 1.2 readers (Spectral, most tools) take an unquoted ``00000001001234567000`` for a number: quote
    every all-digit string (OINs, CBS codes), which PyYAML's YAML 1.1 resolver would leave bare."""


_Dumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="'" if v.isdigit() else None))


def to_yaml(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
