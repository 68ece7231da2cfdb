"""Every problem type (RFC 9457) in one table, and the exception the code raises to answer with one.

The documented members are exactly ``type``, ``title``, ``status``, ``detail`` and ``instance`` (NL API
Design Rules). Field-level problems are listed in ``detail`` in one stable format:
``<n> invalid field(s): <json-pointer>: <message>; <json-pointer>: <message>`` (pointers per RFC 6901,
relative to the request body; messages never contain ``;``)."""
from __future__ import annotations

from dataclasses import dataclass

PROBLEM_BASE = "https://berichtenbox-reintegratie.nl/problems/"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


_TYPES = [
    ProblemType("invalid-token", 401, "The access token is missing, malformed or not valid"),
    ProblemType("token-replayed", 401, "This token (jti) was already used"),
    ProblemType("insufficient-scope", 403, "The token lacks the scope this operation needs"),
    ProblemType("forbidden", 403, "Your organisation may not do this"),
    ProblemType("csrf-failed", 403, "The form's anti-forgery token is missing or wrong (reload the page)"),
    ProblemType("login-refused", 403, "The identity provider's answer does not make you an audit officer here"),
    ProblemType("exchange-not-allowed", 403, "The policy catalogue does not allow this exchange"),
    ProblemType("purpose-not-allowed", 403, "The stated purpose is not allowed for this exchange"),
    ProblemType("consent-required", 403, "This exchange needs the detainee's consent and none is in force"),
    ProblemType("recipient-not-competent", 403, "The recipient is not the competent municipality (or its mayor) for this detainee"),
    ProblemType("condition-not-met", 403, "The legal condition this exchange requires is not asserted"),
    ProblemType("not-found", 404, "Not found"),
    ProblemType("method-not-allowed", 405, "Method not allowed"),
    ProblemType("idempotency-conflict", 409, "The Idempotency-Key was used before with another request"),
    ProblemType("conflict", 409, "The resource is not in a state that allows this"),
    ProblemType("gone", 410, "The payload was purged under the retention schedule"),
    ProblemType("payload-too-large", 413, "The request body is too large"),
    ProblemType("unsupported-media-type", 415, "Send application/json"),
    ProblemType("invalid-request", 400, "The request is malformed"),
    ProblemType("invalid-filter", 400, "A filter holds a value outside its vocabulary or format"),
    ProblemType("validation-failed", 422, "The request does not satisfy its contract"),
    ProblemType("unknown-recipient", 422, "A recipient is unknown or inactive"),
    ProblemType("unknown-contract", 422, "Unknown message type or contract version"),
    ProblemType("invalid-proof", 422, "The proof of possession does not verify with the submitted key"),
    ProblemType("invalid-signature", 422, "The message's signature does not verify with the sender's registered key"),
    ProblemType("signature-required", 422, "This gateway accepts signed messages only"),
    ProblemType("rate-limited", 429, "Too many requests"),
    ProblemType("internal-error", 500, "Internal error"),
    ProblemType("integrity-failed", 500, "A stored payload no longer matches its digest or its sender's signature"),
    ProblemType("unavailable", 503, "A dependency is not available"),
]
PROBLEM_TYPES: dict[str, ProblemType] = {t.slug: t for t in _TYPES}


class Problem(Exception):
    """Raise anywhere below the routers; the app turns it into application/problem+json."""

    def __init__(self, slug: str, detail: str, *, headers: dict[str, str] | None = None):
        self.type = PROBLEM_TYPES[slug]
        self.detail = detail
        self.headers = headers or {}
        super().__init__(f"{slug}: {detail}")


def field_detail(problems: list[tuple[str, str]]) -> str:
    """The one documented format for field-level problems."""
    parts = "; ".join(f"{pointer or '/'}: {message.replace(';', ',')}" for pointer, message in problems)
    return f"{len(problems)} invalid field(s): {parts}"


def render(type_: ProblemType, detail: str, instance: str | None) -> dict:
    body = {"type": type_.uri, "title": type_.title, "status": type_.status, "detail": detail}
    if instance:
        body["instance"] = instance
    return body
