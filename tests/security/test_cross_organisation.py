"""The cross-organisation matrix, generated from the route table (issue 12).

Every route under /api/v1 is taken from ``create_app(services=...).routes`` (flattened through
FastAPI's route contexts), so a new route is covered without anyone remembering it:

* a route with an id in its path: the resource is created as its owner (``FACTORIES`` maps each path
  parameter to a factory that makes one through the API), then the route is called as EVERY demo
  organisation that is no party to it, with every scope its kind may hold. Asserted per call: no 2xx,
  no 5xx, exactly 403 when the caller holds none of the scopes the route requires (read from its
  ``require(...)`` dependency) and 404 otherwise, the same status and problem type as for an id that
  does not exist (no existence oracle), no trace of the resource's payload (a canary) or the BSN in the
  answer, and, for a write, the resource unchanged afterwards as its owner sees it.
* a route without an id that lists things (``LISTINGS``): called as every organisation; the items of
  resources it is no party to (their ids and canaries) never appear, no payload canary appears in any
  list, the BSN never appears, and the status is exactly 200 or (scope missing) 403.

A route whose path parameter no factory knows, or a route without an id that is neither a listing nor
in ``NOT_LISTINGS``, fails the suite with a message saying what to add. Prints
``cross-organisation matrix: R routes x O organisations = N calls, L leaks`` per backend.
Both databases; bounded (a few hundred in-process calls)."""
from __future__ import annotations

import inspect
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi.routing import APIRoute

from gateway.app import create_app
from gateway.auth.mint import new_key_pair
from contracts.parties import KINDS
from gateway.db.models import WebhookDelivery
from gateway.demo import DEMO_ORGANISATIONS
from tests import conftest as base
from tests.scenario import BSN, detention_notice, example, seed_stay, with_subject
from tests.security.conftest import all_scopes, backend_of

PREFIX = "/api/v1"
ORG_NAMES = [base.ALIASES[spec["oin"]] for spec in DEMO_ORGANISATIONS]
BSN2 = "999990020"  # a second subject, of other organisations (11-test valid)
UNKNOWN_OIN = "00000001000000000999"
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


# -- the route table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the full template, e.g. /api/v1/messages/{message_id}
    api_route: APIRoute

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path

    @property
    def params(self) -> list[str]:
        return [m.group(1) for m in PARAM.finditer(self.path)]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def api_routes(app) -> list[Route]:
    """Every APIRoute under /api/v1 with its full path (FastAPI >= 0.16x keeps included routers as
    route contexts; older versions flatten them into ``app.routes``)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes are the APIRoutes themselves
        pairs = [(r.path, r) for r in app.routes if isinstance(r, APIRoute)]
    else:
        pairs = [(c.path, c.original_route) for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]
    routes = []
    for path, api_route in pairs:
        if path and path.startswith(PREFIX + "/"):
            for method in sorted(api_route.methods - {"HEAD", "OPTIONS"}):
                routes.append(Route(method, path, api_route))
    return routes


def _dependants(dependant):
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def required_scopes(route: Route) -> frozenset[str] | None:
    """The scopes of the route's ``require(...)`` dependency (any one suffices); None without one."""
    found, gated = set(), False
    for dep in _dependants(route.api_route.dependant):
        call = dep.call
        if call is not None and getattr(call, "__qualname__", "").startswith("require.<locals>"):
            scopes = inspect.getclosurevars(call).nonlocals.get("scopes")
            if scopes is not None:
                found |= set(scopes)
                gated = True
    return frozenset(found) if gated else None


def required_query(route: Route) -> list[str]:
    return [f.alias for dep in _dependants(route.api_route.dependant) for f in dep.query_params if f.field_info.is_required()]


def app_for_route_table():
    """The app, for its route table only (no database is touched)."""
    return create_app(base.settings_for(base.TestDatabase("sqlite+aiosqlite:///:memory:", None)))


# -- the world: resources, their owners and parties, canaries ---------------------------------------

def canary(label: str) -> str:
    """A unique, letters-only marker (contracts accept it in free text)."""
    return f"Kanarie{label.title()}" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:16])


@dataclass
class Resource:
    kind: str  # message, consent, subscription, dead-letter, organisation, key, trajectory, triage
    id: str
    owner: str
    parties: frozenset[str]  # organisations that legitimately deal with it
    canaries: tuple[str, ...] = ()
    payload_canaries: tuple[str, ...] = ()  # message payload: never in any list, for anyone
    subject: str | None = None
    within: str | None = None  # a webhook delivery: its subscription's id

    @property
    def markers(self) -> tuple[str, ...]:
        markers = (*self.canaries, *self.payload_canaries)
        # a trajectory's id is its subject's pseudonym, which every message about the subject carries too (who sees
        # its deadlines in a list: tests/integration/test_deadlines.py)
        return markers if self.kind in ("dead-letter", "webhook-delivery", "organisation", "trajectory", "triage") \
            else (self.id, *markers)


@dataclass
class World:
    client: httpx.AsyncClient
    orgs: Any
    services: Any
    resources: list[Resource] = field(default_factory=list)
    subjects: dict[str, str] = field(default_factory=dict)  # bsn -> pseudonym
    calls: int = 0

    async def request(self, org_name: str, method: str, url: str, **kwargs) -> httpx.Response:
        org = getattr(self.orgs, org_name)
        headers = {"Authorization": f"Bearer {org.token(all_scopes(org))}", "Idempotency-Key": uuid.uuid4().hex}
        self.calls += 1
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def ok(self, org_name: str, method: str, url: str, **kwargs) -> Any:
        r = await self.request(org_name, method, url, **kwargs)
        self.calls -= 1  # set-up, not a matrix call
        assert r.status_code in (200, 201, 204), f"set-up {method} {url} as {org_name}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def add(self, resource: Resource) -> Resource:
        self.resources.append(resource)
        return resource


async def make_message(world: World, sender="vught", recipients=("amsterdam",), bsn=BSN) -> Resource:
    """A dr-plan (or, for a subject of PI Zwolle, a detention-notice to probation) with a payload canary."""
    mark = canary("message")
    orgs = world.orgs
    if bsn == BSN:
        payload = with_subject(example("dr-plan", "valid-minimal"), bsn)
        payload["sections"]["housing"]["currentSituation"] = f"Woont bij {mark}"
        message_type, targets = "dr-plan", [getattr(orgs, r).oin for r in recipients]
    else:
        payload = detention_notice(bsn, residence="0599")
        payload["subject"]["name"] = {"givenNames": "Piet", "surname": mark}
        payload["prisonOin"] = getattr(orgs, sender).oin
        message_type, targets = "detention-notice", [getattr(orgs, r).oin for r in recipients]
    body = {"type": message_type, "version": 1, "purpose": "reintegration", "recipients": targets, "payload": payload}
    receipt = await world.ok(sender, "POST", f"{PREFIX}/messages", json=body)
    assert all(d["status"] == "delivered" for d in receipt["deliveries"]), receipt
    world.subjects[bsn] = receipt["subjectId"]
    return world.add(Resource("message", receipt["id"], sender, frozenset({sender, *recipients}),
                              payload_canaries=(mark,), subject=receipt["subjectId"]))


async def make_consent(world: World, recorder="vught", recipient="amsterdam", bsn=BSN) -> Resource:
    mark = canary("consent")
    view = await world.ok(recorder, "POST", f"{PREFIX}/consents", json={
        "subject": {"bsn": bsn}, "givenBy": "detainee", "categories": ["children-family"],
        "recipientOins": [getattr(world.orgs, recipient).oin], "purposes": ["reintegration"],
        "evidenceReference": mark})
    world.subjects[bsn] = view["subjectId"]
    return world.add(Resource("consent", view["id"], recorder, frozenset({recorder, recipient}), canaries=(mark,),
                              subject=view["subjectId"]))


async def make_subscription(world: World, owner="vught") -> Resource:
    mark = canary("hook")
    view = await world.ok(owner, "POST", f"{PREFIX}/subscriptions", json={
        "callbackUrl": f"http://127.0.0.1:9/{mark}", "eventTypes": ["message.delivered"]})
    return world.add(Resource("subscription", view["id"], owner, frozenset({owner}), canaries=(mark,)))


async def make_dead_letter(world: World) -> Resource:
    """No API creates a dead letter (the dispatcher does, after the last failed attempt): stored
    directly, for vught's subscription. Only the operator (admin) deals with dead letters."""
    sub = await make_subscription(world)
    mark = canary("deadletter")
    now = world.services.clock.now()
    async with world.services.db.write() as session:
        row = WebhookDelivery(subscription_id=sub.id, event_id=str(uuid.uuid4()), event_type="message.delivered",
                              body=json.dumps({"note": mark}), status="dead", attempts=8, next_attempt_at=now,
                              last_error=f"connection refused by {mark}", created_at=now)
        session.add(row)
        await session.flush()
        row_id = row.id
    return world.add(Resource("dead-letter", str(row_id), "operator", frozenset({"operator"}), canaries=(mark,)))


async def make_key(world: World, oin: str, parties: frozenset[str] = frozenset({"operator"})) -> Resource:
    """A key of ``oin`` (its owner), added by the operator; no other organisation lists its kid.
    ``parties``: the operator for the admin routes, the organisation itself for /me routes."""
    _private, public = new_key_pair(kid=f"matrix-{uuid.uuid4().hex[:12]}")
    view = await world.ok("operator", "POST", f"{PREFIX}/organisations/{oin}/keys", json={"jwk": public})
    return world.add(Resource("key", view["kid"], base.ALIASES[oin], parties))


async def _key(world: World, chosen: dict) -> Resource:
    """For /organisations/{oin}/keys/{kid}: a key of that organisation; for /organisations/me/keys/{kid}
    (no oin): a key of PI Vught, which only PI Vught itself may revoke there."""
    if "oin" in chosen:
        return await make_key(world, chosen["oin"])
    return await make_key(world, world.orgs.vught.oin, frozenset({"vught"}))


async def _webhook_delivery(world: World, chosen: dict) -> Resource:
    """A dead delivery of the chosen subscription (PI Vught's), stored as the dispatcher leaves it: only
    its subscriber lists and replays it under /subscriptions/{id}/deliveries."""
    mark = canary("delivery")
    now = world.services.clock.now()
    async with world.services.db.write() as session:
        row = WebhookDelivery(subscription_id=chosen["subscription_id"], event_id=str(uuid.uuid4()),
                              event_type="message.delivered", body=json.dumps({"note": mark}), status="dead", attempts=8,
                              next_attempt_at=now, last_error=f"connection refused by {mark}", created_at=now)
        session.add(row)
        await session.flush()
        row_id = row.id
    return world.add(Resource("webhook-delivery", str(row_id), "vught", frozenset({"vught"}), canaries=(mark,),
                              within=chosen["subscription_id"]))


# Path parameter -> (factory of a resource, the value of an id that does not exist). A factory gets the
# world and the values already chosen for the route's earlier parameters, and returns the resource.
Factory = Callable[[World, dict], Awaitable[Resource]]


async def _organisation(world: World, chosen: dict) -> Resource:
    """An organisation (PI Vught) as a resource: only the operator (admin) manages its keys."""
    return Resource("organisation", world.orgs.vught.oin, "vught", frozenset({"operator"}))


async def _trajectory(world: World, chosen: dict) -> Resource:
    """A stay of PI Vught's whose detention-notice went to Reclassering Nederland only: those two, and whoever
    holds audit:read-all, see its trajectory and its deadlines; the subject's pseudonym is the id."""
    probation = world.orgs.reclassering.oin
    receipt = await world.ok("vught", "POST", f"{PREFIX}/messages", json={
        "type": "detention-notice", "version": 1, "purpose": "reintegration", "recipients": [probation],
        "payload": detention_notice("999990044")})
    everything = {name for name in ORG_NAMES if "audit:read-all" in KINDS[getattr(world.orgs, name).kind].scopes}
    return world.add(Resource("trajectory", receipt["subjectId"], "vught", frozenset({"vught", "reclassering", *everything}),
                              subject=receipt["subjectId"]))


async def _triage(world: World, chosen: dict) -> Resource:
    """The SOM triage of such a stay: its prison and probation organisation only (no auditor, no inspectorate: the
    audit log is theirs); a municipality or mayor is refused outright (``REFUSED_KINDS``)."""
    trajectory = await _trajectory(world, chosen)
    world.resources.remove(trajectory)
    return world.add(Resource("triage", trajectory.id, "vught", frozenset({"vught", "reclassering"}),
                              subject=trajectory.subject))


FACTORIES: dict[str, tuple[Factory, Callable[[], str]]] = {
    "message_id": (lambda w, c: make_message(w), lambda: str(uuid.uuid4())),
    "consent_id": (lambda w, c: make_consent(w), lambda: str(uuid.uuid4())),
    "subscription_id": (lambda w, c: make_subscription(w), lambda: str(uuid.uuid4())),
    "dead_letter_id": (lambda w, c: make_dead_letter(w), lambda: "2000000000"),
    "delivery_id": (_webhook_delivery, lambda: "2000000000"),
    "oin": (_organisation, lambda: UNKNOWN_OIN),
    "kid": (_key, lambda: "matrix-no-such-kid"),
    "subject_id": (_trajectory, lambda: f"sub-{uuid.uuid4().hex}"),
}

async def _public_keys(world: World, chosen: dict) -> Resource:
    """An organisation's public keys (PI Vught's), which every organisation may fetch to check its signatures."""
    return Resource("public-keys", world.orgs.vught.oin, "vught", frozenset(ORG_NAMES))


# A route whose id names another kind of resource than FACTORIES says for that parameter.
ROUTE_FACTORIES: dict[tuple[str, str], dict[str, tuple[Factory, Callable[[], str]]]] = {
    ("GET", f"{PREFIX}/organisations/{{oin}}/jwks"): {"oin": (_public_keys, lambda: UNKNOWN_OIN)},
    ("GET", f"{PREFIX}/triage/{{subject_id}}"): {"subject_id": (_triage, lambda: f"sub-{uuid.uuid4().hex}")},
}
# Routes that refuse whole kinds of organisation (403 forbidden) although their tokens hold the scope: the SOM
# triage is never a municipality's or a mayor's (DESIGN).
REFUSED_KINDS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", f"{PREFIX}/triage"): frozenset({"municipality", "mayor"}),
    ("GET", f"{PREFIX}/triage/{{subject_id}}"): frozenset({"municipality", "mayor"}),
}

# What a route needs besides its path: required query parameters and a valid body (a callable makes a
# fresh one per call). A route with a body or a required query parameter not listed here fails the suite.
QUERIES: dict[tuple[str, str], dict] = {
    ("GET", f"{PREFIX}/messages/{{message_id}}"): {"purpose": "reintegration"},
}
BODIES: dict[tuple[str, str], Callable[[], Any]] = {
    ("POST", f"{PREFIX}/messages/{{message_id}}/acknowledgements"): lambda: {"status": "accepted"},
    ("POST", f"{PREFIX}/consents/{{consent_id}}/withdrawal"): lambda: {"reason": "ingetrokken (matrix)"},
    ("POST", f"{PREFIX}/organisations/{{oin}}/keys"): lambda: {"jwk": new_key_pair(kid=f"matrix-{uuid.uuid4().hex[:12]}")[1]},
    ("POST", f"{PREFIX}/subscriptions/{{subscription_id}}/secret-rotation"): lambda: {"overlapHours": 1},
}


# How the owner sees a resource: compared before and after another organisation's write.
async def owner_view(world: World, res: Resource) -> Any:
    if res.kind == "message":
        return await world.ok(res.owner, "GET", f"{PREFIX}/messages/{res.id}/deliveries")
    if res.kind == "consent":
        items = (await world.ok(res.owner, "GET", f"{PREFIX}/consents", params={"subjectId": res.subject}))["items"]
        return [c for c in items if c["id"] == res.id]
    if res.kind == "subscription":
        return [s for s in (await world.ok(res.owner, "GET", f"{PREFIX}/subscriptions"))["items"] if s["id"] == res.id]
    if res.kind == "webhook-delivery":
        items = (await world.ok(res.owner, "GET", f"{PREFIX}/subscriptions/{res.within}/deliveries"))["items"]
        return [d for d in items if str(d["id"]) == res.id]
    if res.kind == "dead-letter":
        return [d for d in (await world.ok("operator", "GET", f"{PREFIX}/webhook-dead-letters"))["items"] if str(d["id"]) == res.id]
    organisations = (await world.ok("operator", "GET", f"{PREFIX}/organisations"))["items"]
    return json.dumps(organisations, sort_keys=True)


# -- listings ---------------------------------------------------------------------------------------

def _audit_visible(world: World, res: Resource) -> set[str]:
    """audit:read-all sees every record; an auditor sees those of the organisation it audits."""
    seen = {name for name in ORG_NAMES if "audit:read-all" in KINDS[getattr(world.orgs, name).kind].scopes}
    for name in ORG_NAMES:
        org = getattr(world.orgs, name)
        parent = next((s.get("parentOin") for s in DEMO_ORGANISATIONS if s["oin"] == org.oin), None)
        if org.kind == "auditor" and parent and base.ALIASES[parent] in res.parties:
            seen.add(name)
    return seen


def _sent(world, res):
    return {res.owner} if res.kind == "message" else set()


def _inbox(world, res):
    return set(res.parties - {res.owner}) if res.kind == "message" else set()


def _consents(world, res):
    return set(res.parties) if res.kind == "consent" else set()


def _subscriptions(world, res):
    return {res.owner} if res.kind == "subscription" else set()


def _admin_only(world, res):
    return {"operator"}


def _own_keys(world, res):
    return {res.owner} if res.kind == "key" else set()


def _trajectories(world, res):
    """A stay's deadlines (by subject pseudonym) to its parties and audit:read-all."""
    return set(res.parties) if res.kind == "trajectory" else set()


def _triages(world, res):
    """A stay's SOM triage to its prison and probation organisation."""
    return set(res.parties) if res.kind == "triage" else set()


@dataclass(frozen=True)
class Listing:
    visible: Callable[[World, Resource], set[str]]  # who may see the resource's items in this list
    variants: Callable[[World], list[dict]] = lambda w: [{}]  # request kwargs (params / json), one call each


LISTINGS: dict[tuple[str, str], Listing] = {
    ("GET", f"{PREFIX}/messages"): Listing(_sent, lambda w: [{"params": {"direction": "sent"}}]),
    ("GET", f"{PREFIX}/inbox"): Listing(_inbox),
    ("GET", f"{PREFIX}/consents"): Listing(_consents, lambda w: [{"params": {"subjectId": s}} for s in sorted(set(w.subjects.values()))]),
    ("GET", f"{PREFIX}/audit/records"): Listing(_audit_visible),
    ("GET", f"{PREFIX}/audit/export"): Listing(_audit_visible, lambda w: [{"params": {"format": "jsonl"}}, {"params": {"format": "csv"}},
                                                                          {"params": {"format": "csv", "separator": "semicolon"}}]),
    ("GET", f"{PREFIX}/audit/aggregates"): Listing(_audit_visible, lambda w: [{}, {"params": {"period": "day", "outcome": "allow"}}]),
    ("POST", f"{PREFIX}/audit/subject-report"): Listing(_audit_visible, lambda w: [{"json": {"bsn": BSN}}, {"json": {"bsn": BSN2}}]),
    ("GET", f"{PREFIX}/subscriptions"): Listing(_subscriptions),
    ("GET", f"{PREFIX}/webhook-dead-letters"): Listing(_admin_only),
    ("GET", f"{PREFIX}/organisations"): Listing(_admin_only),
    ("GET", f"{PREFIX}/organisations/me/keys"): Listing(_own_keys),
    ("GET", f"{PREFIX}/deadlines"): Listing(_trajectories, lambda w: [{}, {"params": {"status": "open"}}]),
    ("GET", f"{PREFIX}/deadlines/stats"): Listing(_trajectories),
    ("GET", f"{PREFIX}/triage"): Listing(_triages, lambda w: [{}, {"params": {"outcome": "no-priority"}}]),
}
# Routes without an id that list nothing of another organisation's (they create, or report on the chain).
NOT_LISTINGS = {
    ("POST", f"{PREFIX}/messages"), ("POST", f"{PREFIX}/consents"), ("POST", f"{PREFIX}/subscriptions"),
    ("POST", f"{PREFIX}/organisations"), ("GET", f"{PREFIX}/audit/verify"), ("GET", f"{PREFIX}/openapi.json"),
    ("POST", f"{PREFIX}/organisations/me/keys"),  # registers a key of the caller's own organisation only
}


def unclassified(routes: list[Route]) -> list[str]:
    """What the suite cannot test yet, as instructions to whoever added the route."""
    problems = []
    for route in routes:
        if route.params:
            unknown = [p for p in route.params if p not in {**FACTORIES, **ROUTE_FACTORIES.get(route.key, {})}]
            if unknown:
                problems.append(f"{route}: path parameter(s) {', '.join(unknown)} unknown to the cross-organisation matrix: "
                                f"add a factory to FACTORIES in {__name__}")
            if required_scopes(route) is None:
                problems.append(f"{route}: takes an id but has no require(...) scope dependency, so it is not even authenticated")
            if route.api_route.body_field is not None and route.key not in BODIES:
                problems.append(f"{route}: takes a body; add a valid one to BODIES in {__name__}")
            missing = [q for q in required_query(route) if q not in QUERIES.get(route.key, {})]
            if missing:
                problems.append(f"{route}: required query parameter(s) {', '.join(missing)}; add them to QUERIES in {__name__}")
        elif route.key not in LISTINGS and route.key not in NOT_LISTINGS:
            problems.append(f"{route}: a route without an id that is neither in LISTINGS (it lists things: say who may see "
                            f"which items) nor in NOT_LISTINGS, in {__name__}")
    return problems


def test_every_route_is_known_to_the_matrix():
    """Fails, naming the route and what to add, as soon as a route appears that the matrix cannot test."""
    routes = api_routes(app_for_route_table())
    assert routes, "no routes under /api/v1 found: has the route table changed shape?"
    problems = unclassified(routes)
    assert not problems, "\n".join(problems)


# -- the matrix -------------------------------------------------------------------------------------

def leaked(text: str, markers: tuple[str, ...]) -> list[str]:
    return [m for m in markers if m and m in text]


def problem_type(r: httpx.Response) -> str | None:
    try:
        return r.json().get("type")
    except (ValueError, AttributeError):
        return None


async def build_world(client, orgs, services) -> World:
    world = World(client, orgs, services)
    await seed_stay(services)  # BSN: Amsterdam (residence) and Rotterdam (intended) are competent
    await make_message(world)  # vught -> amsterdam, about BSN
    await make_consent(world)  # vught records, naming amsterdam, about BSN
    await make_message(world, sender="zwolle", recipients=("reclassering",), bsn=BSN2)  # unrelated: other parties, other subject
    await make_consent(world, recorder="zwolle", recipient="reclassering", bsn=BSN2)
    await make_subscription(world)
    await make_subscription(world, owner="reclassering")
    await make_dead_letter(world)
    await make_key(world, orgs.vught.oin)
    await _trajectory(world, {})
    await _triage(world, {})
    return world


async def test_no_organisation_reaches_what_is_not_its_own(client, orgs, services, summary_line):
    backend = backend_of(services)
    routes = api_routes(create_app(services=services))
    problems = unclassified(routes)
    assert not problems, "\n".join(problems)
    world = await build_world(client, orgs, services)
    leaks: list[str] = []
    wrong: list[str] = []
    covered = 0

    # 1. Routes with an id: every organisation that is no party, against the owner's resource.
    for route in [r for r in routes if r.params]:
        covered += 1
        scopes = required_scopes(route)
        write = route.method != "GET"

        factories = {**FACTORIES, **ROUTE_FACTORIES.get(route.key, {})}
        refused = REFUSED_KINDS.get(route.key, frozenset())

        async def make() -> tuple[dict, list[Resource]]:
            chosen, made = {}, []
            for param in route.params:
                res = await factories[param][0](world, chosen)
                chosen[param] = res.id
                made.append(res)
            return chosen, made

        chosen, made = await make()
        parties = frozenset().union(*(m.parties for m in made))
        used = False
        for name in [n for n in ORG_NAMES if n not in parties]:
            if write and used:  # a write gets a fresh resource per caller: the calls stay independent
                chosen, made = await make()
            used = True
            org = getattr(orgs, name)
            expected = 404 if KINDS[org.kind].scopes & scopes and org.kind not in refused else 403
            query = QUERIES.get(route.key, {})
            body = BODIES[route.key]() if route.key in BODIES else None
            kwargs = {"params": query, **({"json": body} if body is not None else {})}
            before = await owner_view(world, made[-1]) if write else None
            r = await world.request(name, route.method, route.path.format(**chosen), **kwargs)
            missing_ids = {p: factories[p][1]() for p in route.params}
            twin = await world.request(name, route.method, route.path.format(**missing_ids), **kwargs)
            where = f"[{backend}] {route} as {name} ({org.kind}) on {made[-1].kind} {made[-1].id} of {made[-1].owner}"
            markers = tuple(m for res in made for m in (*res.canaries, *res.payload_canaries)) + (BSN,)
            if 200 <= r.status_code < 300:
                leaks.append(f"{where}: {r.status_code} — a non-party got through: {r.text[:300]}")
            if found := leaked(r.text, markers):
                leaks.append(f"{where}: the answer carries the resource's data {found}: {r.text[:300]}")
            if write and (after := await owner_view(world, made[-1])) != before:
                leaks.append(f"{where}: {r.status_code}, and the owner now sees the resource changed: {before} -> {after}")
            if r.status_code >= 500 or twin.status_code >= 500:
                wrong.append(f"{where}: 5xx ({r.status_code}; for a missing id {twin.status_code}): {r.text[:300]}")
            if r.status_code != expected:
                wrong.append(f"{where}: expected {expected} ({'holds' if expected == 404 else 'lacks'} a scope of "
                             f"{sorted(scopes)}), got {r.status_code} {problem_type(r)}: {r.text[:200]}")
            if (r.status_code, problem_type(r)) != (twin.status_code, problem_type(twin)):
                wrong.append(f"{where}: existence oracle — {r.status_code} {problem_type(r)} for the real id but "
                             f"{twin.status_code} {problem_type(twin)} for a missing one")

    # 2. Listings: another organisation's items never appear.
    for route in [r for r in routes if r.key in LISTINGS]:
        covered += 1
        listing = LISTINGS[route.key]
        scopes = required_scopes(route) or frozenset()
        for name in ORG_NAMES:
            org = getattr(orgs, name)
            expected = 200 if (not scopes or KINDS[org.kind].scopes & scopes) and \
                org.kind not in REFUSED_KINDS.get(route.key, frozenset()) else 403
            for variant in listing.variants(world):
                r = await world.request(name, route.method, route.path, **variant)
                where = f"[{backend}] {route} {variant or ''} as {name} ({org.kind})"
                if r.status_code >= 500 or r.status_code != expected:
                    wrong.append(f"{where}: expected {expected}, got {r.status_code} {problem_type(r)}: {r.text[:200]}")
                if BSN in r.text or BSN2 in r.text:
                    leaks.append(f"{where}: a BSN appears in a list: {r.text[:300]}")
                for res in world.resources:
                    if found := [m for m in res.payload_canaries if m in r.text]:
                        leaks.append(f"{where}: the payload of {res.kind} {res.id} appears in a list {found}")
                    if name not in listing.visible(world, res) and (found := leaked(r.text, res.markers)):
                        leaks.append(f"{where}: {res.kind} {res.id} of {res.owner} (parties {sorted(res.parties)}) "
                                     f"appears: {found}")

    summary_line(f"cross-organisation matrix [{backend}]: {covered} routes x {len(ORG_NAMES)} organisations = "
                 f"{world.calls} calls, {len(leaks)} leaks, {len(wrong)} other findings")
    assert not leaks and not wrong, "\n".join(["LEAKS:", *leaks, "OTHER FINDINGS:", *wrong])
