"""Who is logged in to the pages, and how a page knows: the officer in the signed session cookie, mapped
from the identity provider's claims onto a registered organisation, and the anti-forgery token of its forms.

The cookie is Starlette's SessionMiddleware (itsdangerous: signed, http-only, SameSite=Lax, path /audit):
a forged cookie fails its signature and a cookie older than ``session_max_age_seconds`` fails its
timestamp, and either reads as no session. The login time inside is checked as well, so a session ends at
that age even while it is being used."""
from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass

from fastapi import Request
from sqlmodel import select

from contracts.parties import KINDS
from gateway.auth.tokens import Caller
from gateway.db.models import Organisation
from gateway.problems import Problem
from gateway.services import Services

# The role claim's values, and the kind of organisation each belongs to: an FG (privacy officer) audits one
# organisation (kind auditor, which names it as its parent); an inspector reads every record (inspectorate).
ROLES: dict[str, str] = {"privacy-officer": "auditor", "inspector": "inspectorate"}
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No (valid) session: the page answers with a redirect to the login page."""


@dataclass(frozen=True)
class Officer:
    sub: str  # the person, as the identity provider names them
    name: str
    role: str
    oin: str  # the officer's organisation (an auditor or the inspectorate)
    organisation: str
    kind: str
    parent_oin: str | None
    login_at: float

    def caller(self) -> Caller:
        """The officer as an API caller: the organisation's kind's scopes, the person in every audit record
        (the token id column: ``oidc:<sub>``)."""
        return Caller(oin=self.oin, kind=self.kind, name=self.organisation, cbs_code=None, parent_oin=self.parent_oin,
                      scopes=frozenset(KINDS[self.kind].scopes), jti=f"oidc:{self.sub}"[:200])


async def officer_from_claims(services: Services, claims: dict) -> Officer:
    """The officer an ID token describes, or ``login-refused``: the organisation claim must name a registered,
    active organisation whose kind the role claim belongs to."""
    settings = services.settings
    oin, role = claims.get(settings.oidc_organisation_claim), claims.get(settings.oidc_role_claim)
    if role not in ROLES:
        raise Problem("login-refused", f"claim {settings.oidc_role_claim} must be one of {', '.join(ROLES)}")
    if not isinstance(oin, str) or not (len(oin) == 20 and oin.isascii() and oin.isdigit()):
        raise Problem("login-refused", f"claim {settings.oidc_organisation_claim} must be an OIN of 20 digits")
    async with services.db.read() as session:
        org = (await session.exec(select(Organisation).where(Organisation.oin == oin))).first()
    if org is None or not org.active or org.kind != ROLES[role]:
        raise Problem("login-refused", f"the organisation in {settings.oidc_organisation_claim} is not a registered, "
                      f"active organisation of kind {ROLES[role]} (role {role})")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Problem("login-refused", "the ID token has no sub")
    return Officer(sub=sub, name=str(claims.get("name") or sub), role=role, oin=org.oin, organisation=org.name,
                   kind=org.kind, parent_oin=org.parent_oin, login_at=time.time())


def start_session(request: Request, officer: Officer) -> None:
    """A fresh session for a fresh login (nothing from before it survives: no session fixation)."""
    lang = request.session.get("lang")
    request.session.clear()
    request.session.update(officer=asdict(officer), csrf=secrets.token_urlsafe(32), lang=lang or "nl")


def current_officer(request: Request) -> Officer:
    """The logged-in officer, or ``LoginRequired``: no session, a cookie that failed its signature or age (the
    middleware then gives an empty session), or a login older than the session's maximum age."""
    data = request.session.get("officer")
    if not isinstance(data, dict):
        raise LoginRequired()
    try:
        officer = Officer(**data)
    except TypeError:
        request.session.clear()
        raise LoginRequired() from None
    if time.time() - officer.login_at > request.app.state.services.settings.session_max_age_seconds:
        request.session.clear()
        raise LoginRequired()
    return officer


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Every state-changing page request (POST) carries the session's token: in the form field, or for
    htmx requests in the X-CSRF-Token header. A token of another session, or none, is ``csrf-failed``."""
    expected = request.session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not expected or not given or not secrets.compare_digest(expected, given):
        raise Problem("csrf-failed", "reload the page and submit the form again")
