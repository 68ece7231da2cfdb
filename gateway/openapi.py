"""The published OpenAPI document (NL API Design Rules): paths under the server URL ``/api/v1``,
an ``API-Version`` header on every 2xx/3xx, problem+json on every 4xx/5xx, contact and semver info."""
from __future__ import annotations

import copy

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway import API_VERSION
from gateway.problems import PROBLEM_JSON, PROBLEM_TYPES

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
    return doc
