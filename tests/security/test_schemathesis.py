"""Schemathesis over the committed openapi.yaml, against the app served by uvicorn on loopback, on both
databases (issue 12). Bounded by case count (MAX_EXAMPLES, derandomized) and repeatable; its time is printed, not asserted.

What it checks, per backend:

A. Schemathesis phases ``examples``, ``coverage`` (boundary and invalid values derived from the
   document, undeclared methods, missing parameters) and ``fuzzing`` (Hypothesis, ``max_examples`` =
   ``MAX_EXAMPLES`` per operation, positive and negative data, ``derandomize`` so CI sees the same cases,
   no deadline, no example database, no shrinking: every failing case is kept and the smallest one per
   finding is reported). Every response goes through all of Schemathesis' built-in response checks:
   ``not_a_server_error`` (no 5xx), ``status_code_conformance`` (status documented),
   ``content_type_conformance``, ``response_schema_conformance`` (body as documented),
   ``response_headers_conformance`` (e.g. API-Version), ``negative_data_rejection`` (what the document
   forbids is refused), ``positive_data_acceptance`` (what the document allows is not refused with
   400/422 — an undeclared limit), ``missing_required_header``, ``unsupported_method`` and
   ``allow_header_conformance`` (an undeclared method is a 405 with ``Allow``), ``ignored_auth``.
B. Hostile values the generators rarely hit, one parameter or body field at a time on an otherwise
   valid request: NUL bytes, over-long strings, non-ASCII digits, naive or impossible date-times, bare
   numbers as date-times, integers past 32/64 bits, forged cursors. Checks: no 5xx, status code,
   content type, headers and body as documented; and a malformed date-time or an identifier in
   non-ASCII digits is never accepted (no 2xx).
C. Protocol probes outside the document's reach: a trailing slash (no redirect, no 5xx, a documented
   status), a chunked body over the size limit (413 problem+json), and signed tokens whose time or id
   claims have the wrong type (401, never a 5xx).

Auth: a hook (``schema.auth``, no caching) mints a FRESH token for every generated case, for an
organisation fit for the operation (``org_for``: PI Vught for messages, consents and subscriptions,
the inspectorate for audit, the operator for admin routes), with all scopes its kind may hold; cases
that test a missing or wrong Authorization keep theirs. Every request gets a fresh Idempotency-Key,
except a case that deliberately makes that header invalid.

Prints ``schemathesis [<backend>]: N operations, M cases, F failures`` and, on failure, one entry per
distinct finding (operation, check, status, problem type, and for a 5xx the server's exception and where
it was raised) with the smallest reproducer as curl. ``BRB_SECURITY_FINDINGS=<file>`` also appends every
failing case to that file as JSON lines."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
import os
import re
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test
from schemathesis.generation.meta import negated_parameters
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.auth.mint import mint
from tests.scenario import BSN, example, with_subject
from tests.security.conftest import all_scopes, backend_of

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = ROOT / "openapi.yaml"
MAX_EXAMPLES = 15  # Hypothesis examples per operation in the fuzzing phase
PREFIX = "/api/v1"
TIMEOUT = 15  # seconds per request
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
               response_schema_conformance]


def org_for(operation, orgs):
    """The organisation whose scopes the operation needs."""
    if operation.path.startswith(("/webhook-dead-letters", "/organisations")):
        return orgs.operator
    tag = (operation.definition.raw.get("tags") or ["?"])[0]
    by_tag = {"messages": orgs.vught, "consents": orgs.vught, "subscriptions": orgs.vught, "audit": orgs.inspectorate,
              "trajectories": orgs.vught, "triage": orgs.vught}
    assert tag in by_tag, f"{operation.label}: tag {tag!r} has no organisation in org_for(); add one"
    return by_tag[tag]


# -- the server's side of a failure ---------------------------------------------------------------

class ServerLog(logging.Handler):
    """Collects the gateway's and uvicorn's error records while the suite runs (instead of letting
    thousands of traceback lines reach the output) and digests the latest one for a finding: the
    exception and the innermost frame in the project's code."""

    LOGGERS = ("brb.gateway", "uvicorn.error", "uvicorn")

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.claimed: set[int] = set()  # exceptions already blamed on a request (uvicorn may log one again, late)
        self._saved: dict[str, bool] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "ServerLog":
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self._saved[name] = logger.propagate
            logger.addHandler(self)
            logger.propagate = False
        return self

    def __exit__(self, *exc) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.propagate = self._saved[name]

    def digest(self, since: int, wait: float = 1.0) -> tuple[str, str]:
        """(a stable key, a readable line) for the server's latest exception since ``since``: its type,
        message and innermost frame in the project's code, and its cause. The server may log after the
        answer has left (an exception re-raised past the handler), so wait a little for it."""
        deadline = time.monotonic() + wait
        while not any(r.exc_info for r in self.records[since:]) and time.monotonic() < deadline:
            time.sleep(0.02)
        candidates = [r for r in self.records[since:] if r.exc_info and r.exc_info[1] is not None]
        fresh = [r for r in candidates if id(r.exc_info[1]) not in self.claimed]
        self.claimed.update(id(r.exc_info[1]) for r in candidates)
        if candidates:
            record = (fresh or candidates)[-1]
            exc = record.exc_info[1]
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            tb = exc.__traceback__ or record.exc_info[2]
            frames = [f for f in traceback.extract_tb(tb) if f.filename.startswith(str(ROOT))]
            where = f"{Path(frames[-1].filename).relative_to(ROOT)}:{frames[-1].lineno} ({frames[-1].name})" if frames else "?"
            cause = exc.__cause__ or exc.__context__
            message = str(exc).splitlines()[0][:200] if str(exc) else ""
            key = f"{type(exc).__name__} at {where}" + (f" <- {type(cause).__name__}" if cause is not None else "")
            text = f"{type(exc).__name__}: {message} at {where}"
            if cause is not None and type(cause) is not type(exc):
                text += f" <- {type(cause).__name__}: {str(cause).splitlines()[0][:160] if str(cause) else ''}"
            return key, text
        line = next((r.getMessage()[:300] for r in reversed(self.records[since:])), "")
        return line[:80], line


# -- findings -------------------------------------------------------------------------------------

@dataclass
class Finding:
    operation: str
    check: str
    status: int | None
    problem: str | None
    detail: str
    reproducer: str
    cause: str = ""  # for a 5xx or a dropped connection: the server's exception and where it was raised

    @property
    def signature(self) -> tuple:
        return self.operation, self.check, self.status, self.problem, self.cause


@dataclass
class Run:
    backend: str
    base_url: str
    orgs: Any
    findings: list[Finding] = field(default_factory=list)
    cases: Counter = field(default_factory=Counter)
    unsendable: int = 0
    session: requests.Session = field(default_factory=requests.Session)
    log: ServerLog = field(default_factory=ServerLog)
    _mark: int = 0
    _last: tuple | None = None  # (operation, reproducer, response, mark) of the latest answered request

    def mark(self) -> None:
        """Call before each request: what the server logs from now on belongs to it."""
        self.settle()
        self._mark = len(self.log.records)

    def answered(self, operation: str, reproducer: str, response) -> None:
        self._last = (operation, reproducer, response, self._mark)

    def settle(self, wait: float = 0.0) -> None:
        """An exception the server logged behind an answer that is no 5xx (a stream that broke after its
        200 went out, say) is a finding too: checked before the next request starts, and at the end. A
        streamed answer's server logs its failure only after the last chunk: a request to /health/live
        first (the event loop has then finished the stream's task) keeps it from being blamed on the next."""
        if self._last is None:
            return
        operation, reproducer, response, since = self._last
        self._last = None
        if response.headers.get("transfer-encoding") == "chunked":
            with contextlib.suppress(requests.RequestException):
                self.session.get(self.base_url.removesuffix(PREFIX) + "/health/live", timeout=TIMEOUT)
        if wait:
            time.sleep(wait)
        unclaimed = [r for r in self.log.records[since:] if r.exc_info and id(r.exc_info[1]) not in self.log.claimed]
        if response.status_code < 500 and unclaimed:
            self.record(operation, f"server exception behind a {response.status_code}", response,
                        f"{response.status_code}, {len(response.content)} bytes", reproducer, since=since, force_cause=True)

    def record(self, operation: str, check: str, response, detail: str, reproducer: str, since: int | None = None,
               force_cause: bool = False) -> None:
        status = getattr(response, "status_code", None)
        problem = None
        try:
            body = response.json()
            problem = body.get("type", "").rsplit("/", 1)[-1] or None
            if body.get("detail"):
                detail = f"{detail}\n    answer: {status} {problem}: {str(body['detail'])[:300]}"
        except Exception:  # noqa: BLE001 - not JSON, or no response
            pass
        cause = ""
        if status is None or status >= 500 or force_cause:
            cause, server_side = self.log.digest(self._mark if since is None else since, wait=0.0 if force_cause else 1.0)
            if server_side:
                detail = f"{detail}\n    server: {server_side}"
        self.findings.append(Finding(operation, check, status, problem, detail, reproducer, cause))

    def report(self) -> list[str]:
        groups: dict[tuple, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault(f.signature, []).append(f)
        lines = []
        for (operation, check, status, problem, _cause), items in sorted(groups.items(), key=lambda kv: str(kv[0])):
            smallest = min(items, key=lambda f: len(f.reproducer))
            lines.append(f"[{self.backend}] {operation} — {check} — {status} {problem or ''} — {len(items)} case(s)\n"
                         f"    {smallest.detail[:400]}\n    {smallest.reproducer[:600]}")
        return lines


def _curl(case, base_url: str, org) -> str:
    try:
        return case.as_curl_command(base_url=base_url) + f"   # Authorization: a fresh token of {org.name}"
    except Exception:  # noqa: BLE001
        return repr(case)


# Refusals of schema-valid data that no JSON Schema can declare, so `positive_data_acceptance` may not
# count them: a cursor this API never gave out (cursors are opaque), an order between two fields, and a BSN
# whose 11-test check digit is wrong. Each field named in the problem's detail must be one of these; anything
# else still counts.
UNDECLARABLE = {
    400: [re.compile(p) for p in (
        r"(query:|/)cursor: not a cursor this API gave out.*",
        r"query:dueTo: lies before dueFrom",  # an order between two query parameters
        r"query:until: lies at or before since .*",  # the audit filters' time range, likewise
    )],
    422: [re.compile(p) for p in (
        r"\S*/bsn: BSN fails the 11-test.*",  # a check digit
        r"/validUntil: validUntil must lie after validFrom",  # an order between two fields
        r"/jwk: not a usable .*", r"/jwk/n: RSA keys need at least 2048 bits",  # key material
        r"/recipients/\d+: no active organisation .*",  # the registry's state
        r"/payload/inReplyTo: no information-request with this id was delivered to you",  # the exchange's state
        r"/payload\S*: .* lies before the .*",  # date order inside a contract
        r"/payload\S*: a D&R-plan needs at least one section", r"/payload\S*: a SOM triage message carries at least one part",
        r"/payload\S*: the receiving prison must differ from the sending prison",
    )],
}
FIELDS = re.compile(r"^\d+ invalid field\(s\): (.*)$")


# A proof of possession is signed with the private half of the key it registers, a message's signature with the
# sender's private key: no fuzzer holds either.
UNDECLARABLE_TYPES = {(422, "invalid-proof"), (422, "invalid-signature")}


def _undeclarable(failure, response) -> bool:
    if type(failure).__name__ != "RejectedPositiveData":
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if (response.status_code, str(body.get("type", "")).rsplit("/", 1)[-1]) in UNDECLARABLE_TYPES:
        return True
    if response.status_code not in UNDECLARABLE:
        return False
    match = FIELDS.match(str(body.get("detail", "")))
    fields = match.group(1).split("; ") if match else []
    return bool(fields) and all(any(p.fullmatch(f) for p in UNDECLARABLE[response.status_code]) for f in fields)


def _validate(run: Run, case, response, base_url: str, org, checks=None) -> None:
    try:
        case.validate_response(response, checks=checks, transport_kwargs={"base_url": base_url, "session": run.session})
    except FailureGroup as group:
        for failure in group.exceptions:
            if _undeclarable(failure, response):
                continue
            run.record(case.operation.label, type(failure).__name__, response, f"{failure.title}: {failure.message}",
                       _curl(case, base_url, org))


def _send(run: Run, case, org, checks=None) -> requests.Response | None:
    run.cases[case.operation.label] += 1
    run.mark()
    try:
        response = case.call(base_url=run.base_url, session=run.session, timeout=TIMEOUT)
    except CLIENT_SIDE:  # the client cannot even send it
        run.unsendable += 1
        return None
    except requests.RequestException as exc:  # the server dropped, hung or broke off its answer: a finding
        run.record(case.operation.label, "connection", None, repr(exc)[:300], _curl(case, run.base_url, org))
        run.session = requests.Session()  # never reuse a connection the server dropped
        return None
    except ValueError:
        run.unsendable += 1
        return None
    run.answered(case.operation.label, _curl(case, run.base_url, org), response)
    _validate(run, case, response, run.base_url, org, checks)
    return response


CLIENT_SIDE = (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, requests.exceptions.InvalidJSONError,
               UnicodeError)


# -- A. Schemathesis' own phases ----------------------------------------------------------------------

def _load_schema(run: Run):
    schema = schemathesis.openapi.from_path(OPENAPI)
    current = {"org": None}

    @schema.auth(refresh_interval=None)  # no caching: every case gets a token of its own (jti is single use)
    class FreshToken:
        def get(self, case, ctx):
            return current["org"].token(all_scopes(current["org"]))

        def set(self, case, data, ctx):
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"

    return schema, current


def phase_a(run: Run, schema, current) -> dict[str, Any]:
    """Returns, per operation, one request Schemathesis generated in positive mode (a baseline for B)."""
    settings = hypothesis.settings(
        max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
        print_blob=False, verbosity=hypothesis.Verbosity.quiet)
    modes = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING]
    baselines: dict[str, Any] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        org = current["org"] = org_for(operation, run.orgs)
        has_key = any(p.name == "Idempotency-Key" for p in operation.headers)

        test = create_test(operation=operation, test_func=_one_case(run, operation, org, has_key, baselines),
                           config=HypothesisTestConfig(project=schema.config, modes=modes, settings=settings))
        test()
    return baselines


def _one_case(run: Run, operation, org, has_key: bool, baselines: dict) -> Callable:
    def one_case(case):
        if has_key and ("Idempotency-Key", ParameterLocation.HEADER) not in negated_parameters(case.meta):
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        response = _send(run, case, org)
        if (response is not None and operation.label not in baselines and case.meta is not None
                and not any(c.mode.is_negative for c in case.meta.components.values())):
            baselines[operation.label] = case

    return one_case


# -- B. hostile values ---------------------------------------------------------------------------------

NAIVE_AND_MALFORMED_TIMES = ["2026-11-01T10:00:00", "0.5", "0", "1700000000", "2026-02-30T10:00:00Z", "yesterday"]
EDGE_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-01T10:00:00.123456789+01:00"]
BIG_INTEGERS = [str(2**31), str(2**63), str(10**20), "-1", "0", "1.5", "١"]
def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


FORGED_CURSORS = ["99999999999999999999", str(2**63), "-1", "MTow", "!!!", _b64({"x": 1}), _b64(["x", 1]),
                  _b64(["2026-11-01", []]), _b64(["2026-11-01T10:00:00+00:00", 10**20]),
                  _b64(["2026-11-01T10:00:00+00:00", {"a": 1}]), _b64(["0001-01-01T00:00:00+14:00", "x"])]
NON_ASCII_DIGITS = ["٩٩٩٩٩٠٠١٩", "９９９９９００１９"]  # the BSN 999990019 in Arabic-Indic and fullwidth digits
HOSTILE_STRINGS = ["\x00", "a\x00b", "x" * 41, "x" * 201, "x" * 5_000, "٣٤٥", "\u202e\ufeff", "../../etc/passwd"]
HOSTILE_BODY_STRINGS = ["\x00", "a\x00b", "٣٤٥", "x" * 41, "x" * 201, "x" * 2_001, "x" * 100_000]  # lengths just past
# the usual column sizes (40, 200, 2000), whether or not the document declares them
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")


@dataclass(frozen=True)
class Probe:
    where: str  # query:<name>, path:<name> or body:<json pointer>
    value: Any
    must_reject: bool = False  # a 2xx is a finding


def _non_null(schema: dict) -> dict:
    return next((m for m in schema.get("anyOf", [schema]) if m.get("type") != "null"), schema)


def parameter_probes(operation) -> Iterator[Probe]:
    for param in operation.iter_parameters():
        location = param.location
        if location not in (ParameterLocation.QUERY, ParameterLocation.PATH):
            continue
        schema = _non_null(param.definition.get("schema", {}))
        where = f"{location.value}:{param.name}"
        if schema.get("format") == "date-time":
            yield from (Probe(where, v, must_reject=True) for v in NAIVE_AND_MALFORMED_TIMES)
            yield from (Probe(where, v) for v in EDGE_TIMES)
        elif schema.get("type") == "integer":
            yield from (Probe(where, v) for v in BIG_INTEGERS)
        elif param.name == "cursor":
            yield from (Probe(where, v) for v in FORGED_CURSORS)
        elif schema.get("type") == "string":
            yield from (Probe(where, v) for v in HOSTILE_STRINGS)
            if param.name in ("oin", "subjectId", "organisation"):
                yield Probe(where, "０" * 20, must_reject=True)


def _leaves(value: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{pointer}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{pointer}/{i}")
    else:
        yield pointer, value


def _set(body: Any, pointer: str, value: Any) -> Any:
    body = copy.deepcopy(body)
    *parents, last = pointer.strip("/").split("/")
    target = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


def body_probes(body: Any) -> Iterator[Probe]:
    for pointer, value in _leaves(body):
        where = f"body:{pointer}"
        if pointer.endswith("/bsn"):
            yield from (Probe(where, v, must_reject=True) for v in NON_ASCII_DIGITS)
        if isinstance(value, str) and DATE_TIME.match(value):
            yield from (Probe(where, v, must_reject=True) for v in NAIVE_AND_MALFORMED_TIMES[:1])
            yield from (Probe(where, v) for v in EDGE_TIMES)
        elif isinstance(value, str):
            yield from (Probe(where, v) for v in HOSTILE_BODY_STRINGS)
        elif isinstance(value, int) and not isinstance(value, bool):
            yield from (Probe(where, v) for v in (2**31, 2**63, 10**20, -1))


def valid_bodies(orgs) -> dict[str, list[Callable[[], Any]]]:
    """Known-good bodies (fresh per call), so that the one hostile field is the only thing wrong with the
    request: a send that is stored (two kinds), a consent, a subscription, a registration, a key."""
    from gateway.auth.mint import new_key_pair

    plan = with_subject(example("dr-plan", "valid-minimal"))
    notice = example("detention-notice")
    return {
        "POST /messages": [
            lambda: {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
                     "payload": copy.deepcopy(plan)},
            lambda: {"type": "detention-notice", "version": 1, "purpose": "reintegration",
                     "recipients": [orgs.reclassering.oin], "payload": copy.deepcopy(notice)},
        ],
        "POST /consents": [lambda: {"subject": {"bsn": BSN}, "givenBy": "detainee", "categories": ["children-family"],
                                    "recipientOins": [orgs.amsterdam.oin], "purposes": ["reintegration"],
                                    "validFrom": "2026-11-01T10:00:00+01:00", "evidenceReference": "formulier-0042"}],
        "POST /audit/subject-report": [lambda: {"bsn": BSN}],
        "POST /subscriptions": [lambda: {"callbackUrl": "http://127.0.0.1:9/hook", "eventTypes": ["message.delivered"]}],
        "POST /organisations": [lambda: {"oin": f"{uuid.uuid4().int % 10**20:020d}", "name": "Probe", "kind": "dji"}],
        "POST /organisations/{oin}/keys": [lambda: {"jwk": new_key_pair(kid=f"probe-{uuid.uuid4().hex[:8]}")[1]}],
        "POST /messages/{message_id}/acknowledgements": [lambda: {"status": "accepted"}],
        "POST /consents/{consent_id}/withdrawal": [lambda: {"reason": "ingetrokken"}],
    }


def seed_resources(run: Run, bodies) -> dict[str, Any]:
    """Real ids for the path parameters, so hostile query and body values reach past the 404: a message
    PI Vught sent, a consent it recorded, a subscription it holds. Unknown ones stay random."""
    org = run.orgs.vught
    ids: dict[str, Any] = {"dead_letter_id": 1, "oin": org.oin, "kid": "no-such-kid"}  # never revoke a key in use
    for param, label in (("message_id", "POST /messages"), ("consent_id", "POST /consents"),
                         ("subscription_id", "POST /subscriptions")):
        headers = {"Authorization": f"Bearer {org.token(all_scopes(org))}", "Idempotency-Key": uuid.uuid4().hex}
        path = "/" + label.split(" /", 1)[1]
        r = run.session.post(run.base_url + path, json=bodies[label][0](), headers=headers, timeout=TIMEOUT)
        if r.status_code == 201:
            ids[param] = r.json()["id"]
    return ids


def _baseline_request(operation, baselines, ids: dict, subject_id) -> tuple[dict, dict, list[Callable[[], Any]]]:
    path_params, query = {}, {}
    for param in operation.iter_parameters():
        schema = _non_null(param.definition.get("schema", {}))
        if param.location == ParameterLocation.PATH:
            path_params[param.name] = ids.get(param.name, str(uuid.uuid4()))
        elif param.location == ParameterLocation.QUERY and param.is_required:
            query[param.name] = {"subjectId": subject_id, "purpose": "reintegration"}.get(
                param.name, schema.get("default") or (schema.get("enum") or schema.get("examples") or ["x"])[0])
    bodies: list[Callable[[], Any]] = []
    if operation.body:
        known = valid_bodies_cache.get(operation.label)
        if known:
            bodies = known
        elif operation.label in baselines and isinstance(baselines[operation.label].body, (dict, list)):
            body = baselines[operation.label].body
            bodies = [lambda body=body: copy.deepcopy(body)]
        else:
            bodies = [dict]
    return path_params, query, bodies


valid_bodies_cache: dict[str, list[Callable[[], Any]]] = {}


def phase_b(run: Run, schema, baselines: dict, subject_id: str) -> dict[str, Any]:
    valid_bodies_cache.clear()
    valid_bodies_cache.update(valid_bodies(run.orgs))
    ids = seed_resources(run, valid_bodies_cache)
    for result in schema.get_all_operations():
        operation = result.ok()
        org = org_for(operation, run.orgs)
        path_params, query, bodies = _baseline_request(operation, baselines, ids, subject_id)
        plans = [(probe, None) for probe in parameter_probes(operation)]
        plans += [(probe, make) for make in bodies for probe in body_probes(make())]
        for probe, make in plans:
            kind, _, name = probe.where.partition(":")
            p, q = dict(path_params), dict(query)
            b = (make or bodies[0])() if bodies else None
            if kind == "path":
                p[name] = probe.value
            elif kind == "query":
                q[name] = probe.value
            else:
                b = _set(b, name, probe.value)
            headers = {"Authorization": f"Bearer {org.token(all_scopes(org))}", "Idempotency-Key": uuid.uuid4().hex}
            kwargs = {"path_parameters": p, "query": q, "headers": headers}
            if operation.body:
                kwargs.update(body=b, media_type="application/json")
            case = operation.Case(**kwargs)
            response = _send(run, case, org, checks=CONFORMANCE)
            if response is not None and probe.must_reject and 200 <= response.status_code < 300:
                run.record(operation.label, f"accepted-malformed {probe.where}", response,
                           f"{probe.where}={probe.value!r} was accepted ({response.status_code}): {response.text[:200]}",
                           _curl(case, run.base_url, org))
    return ids


# -- C. protocol probes ---------------------------------------------------------------------------------

TOKEN_PROBES = {  # claim overrides for a token that is otherwise valid
    "exp as a numeric string": lambda now: {"exp": str(now + 300)},
    "iat as a numeric string": lambda now: {"iat": str(now)},
    "nbf as a numeric string": lambda now: {"nbf": str(now)},
    "exp as a float past any date": lambda now: {"exp": 1.5e300},
    "exp as a boolean": lambda now: {"exp": True},
    "exp as a list": lambda now: {"exp": [now + 300]},
    "jti as an integer": lambda now: {"jti": 12345678901},
    "jti as an object": lambda now: {"jti": {"a": 1}},
    "scope as a list": lambda now: {"scope": ["messages:read"]},
}


def phase_c(run: Run, schema, baselines: dict, ids: dict, subject_id: str, max_body_bytes: int) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        org = org_for(operation, run.orgs)
        path_params, query, bodies = _baseline_request(operation, baselines, ids, subject_id)
        body = bodies[0]() if bodies else None
        documented = {int(s) for s in operation.definition.raw.get("responses", {}) if s.isdigit()}
        url = run.base_url + operation.path.format(**path_params)
        headers = {"Authorization": f"Bearer {org.token(all_scopes(org))}", "Idempotency-Key": uuid.uuid4().hex}
        reproducer = f"curl -X {operation.method.upper()} '{url}/'   # Authorization: a fresh token of {org.name}"
        # a trailing slash: no redirect (a client would resend to the other URL), no 5xx, a documented status
        r = _raw(run, operation.label, "trailing-slash", reproducer, operation.method.upper(), url + "/", params=query,
                 headers=headers, json=body if isinstance(body, (dict, list)) else None, allow_redirects=False)
        if r is not None and (300 <= r.status_code < 400 or r.status_code >= 500 or r.status_code not in documented):
            run.record(operation.label, "trailing-slash", r, f"{r.status_code} {r.headers.get('location', '')} {r.text[:200]}",
                       reproducer)
        # a chunked body past the limit: the documented 413, as problem+json (on a connection of its own)
        if operation.method.upper() in ("POST", "PUT", "PATCH") and operation.body:
            headers = {"Authorization": f"Bearer {org.token(all_scopes(org))}", "Idempotency-Key": uuid.uuid4().hex,
                       "Content-Type": "application/json"}
            reproducer = (f"curl -X {operation.method.upper()} -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' "
                          f"--data-binary @<{max_body_bytes + 1} bytes of JSON> '{url}'   # Authorization: a fresh token of {org.name}")
            with requests.Session() as own:
                r = _raw(run, operation.label, "chunked-over-limit", reproducer, operation.method.upper(), url,
                         session=own, params=query, headers=headers, data=_chunks(max_body_bytes + 1))
            if r is not None and (r.status_code != 413 or not r.headers.get("content-type", "").startswith("application/problem+json")):
                run.record(operation.label, "chunked-over-limit", r, f"{r.status_code} {r.text[:200]}", reproducer)
    # tokens whose claims have the wrong type: 401, never a 5xx (one read operation is enough)
    org = run.orgs.vught
    for name, claims in TOKEN_PROBES.items():
        now = int(time.time())
        token = mint(org.private_jwk, org.oin, org.audience, all_scopes(org), **claims(now))
        reproducer = f"curl '{run.base_url}/inbox' -H 'Authorization: Bearer <token of {org.name} with {name}>'"
        r = _raw(run, "GET /inbox", f"token-claim {name}", reproducer, "GET", run.base_url + "/inbox",
                 headers={"Authorization": f"Bearer {token}"})
        if r is not None and r.status_code != 401:
            run.record("GET /inbox", f"token-claim {name}", r, f"{r.status_code} {r.text[:200]}", reproducer)


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON body of ``total`` bytes, sent chunked (no Content-Length)."""
    head, tail = b'{"pad": "', b'"}'
    yield head
    left = total - len(head) - len(tail)
    while left > 0:
        piece = b"x" * min(size, left)
        left -= len(piece)
        yield piece
    yield tail


def _raw(run: Run, label: str, check: str, reproducer: str, method: str, url: str, session=None, **kwargs):
    """A request outside Schemathesis; a dropped connection or a time-out is itself a finding."""
    run.cases[label] += 1
    run.mark()
    try:
        response = (session or run.session).request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        run.record(label, f"{check} (connection)", None, repr(exc)[:300], reproducer)
        run.session = requests.Session()  # never reuse a connection the server dropped
        return None
    run.answered(label, reproducer, response)
    return response


# -- the test --------------------------------------------------------------------------------------------

def run_all(run: Run, subject_id: str, max_body_bytes: int) -> tuple[int, float]:
    started = time.perf_counter()
    schema, current = _load_schema(run)
    with run.log:
        baselines = phase_a(run, schema, current)
        ids = phase_b(run, schema, baselines, subject_id)
        phase_c(run, schema, baselines, ids, subject_id, max_body_bytes)
        run.settle(wait=0.5)
    operations = sum(1 for _ in schema.get_all_operations())
    return operations, time.perf_counter() - started


async def test_the_api_keeps_its_openapi_document_under_fuzzing(live_server, orgs, stay, services, summary_line):
    backend = backend_of(services)
    run = Run(backend, live_server + PREFIX, orgs)
    operations, seconds = await asyncio.to_thread(run_all, run, stay, services.settings.max_body_bytes)
    report = run.report()
    if dump := os.environ.get("BRB_SECURITY_FINDINGS"):  # every failing case, one JSON object a line
        with open(dump, "a", encoding="utf-8") as out:
            for f in run.findings:
                out.write(json.dumps({"backend": backend, **f.__dict__}) + "\n")
    summary_line(f"schemathesis [{backend}]: {operations} operations, {sum(run.cases.values())} cases, "
                 f"{len(run.findings)} failures ({len(report)} distinct), {run.unsendable} unsendable, {seconds:.0f} s")
    assert not report, f"{len(report)} distinct finding(s) on {backend}:\n" + "\n".join(report)
