"""Who is logged in to the pages, and how a page knows: the officer in the signed session cookie, mapped
from the identity provider's claims onto a registered organisation, the server-side session that cookie
names, and the anti-forgery token of its forms.

The cookie is Starlette's SessionMiddleware (itsdangerous: signed, http-only, SameSite=Lax, path /audit):
a forged cookie fails its signature and reads as no session. It names a session (``sid``, random) whose row
in ``officer_sessions`` (only the id's SHA-256) decides whether it is live (OWASP ASVS 3.3.1): logout, the
idle timeout (``session_idle_seconds``), the absolute one (``session_max_age_seconds`` after login) and
``brb sessions end`` end the row, and from then on every copy of the cookie leads to the login."""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import delete, or_, update
from sqlmodel import select

from contracts.parties import KINDS
from gateway.auth.tokens import Caller
from gateway.db.engine import core
from gateway.db.models import OfficerSession, Organisation
from gateway.problems import Problem
from gateway.services import Services, UnitOfWork
from gateway.settings import Settings

log = logging.getLogger("brb.pages")

# The role claim's values, and the kind of organisation each belongs to: an FG (privacy officer) audits one
# organisation (kind auditor, which names it as its parent); an inspector reads every record (inspectorate).
ROLES: dict[str, str] = {"privacy-officer": "auditor", "inspector": "inspectorate"}
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_SUB = 255  # OpenID Connect Core 1.0, 2: a sub is at most 255 ASCII characters (officer_sessions.officer_sub)
TOUCH = timedelta(seconds=60)  # a session's last use is written at most this often, not once per page view
KEPT_ENDED = timedelta(days=30)  # how long the retention round keeps a session row after it ended or expired


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
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUB:
        raise Problem("login-refused", f"the ID token has no sub of at most {MAX_SUB} characters")
    return Officer(sub=sub, name=str(claims.get("name") or sub), role=role, oin=org.oin, organisation=org.name,
                   kind=org.kind, parent_oin=org.parent_oin)


async def start_session(request: Request, uow: UnitOfWork, officer: Officer) -> None:
    """A fresh session for a fresh login, its row written in ``uow`` (the login's, with its audit record): nothing
    from before it survives (no session fixation), and a session this browser still had ends (reason logout)."""
    lang = request.session.get("lang")
    await end_session(request, uow)
    sid = secrets.token_urlsafe(32)
    uow.session.add(OfficerSession(
        id=session_key(sid), officer_sub=officer.sub, officer_oin=officer.oin, created_at=uow.now, last_seen_at=uow.now,
        expires_at=uow.now + timedelta(seconds=uow.services.settings.session_max_age_seconds)))
    request.session.clear()
    request.session.update(officer=asdict(officer), sid=sid, csrf=secrets.token_urlsafe(32), lang=lang or "nl")


async def end_session(request: Request, uow: UnitOfWork) -> None:
    """Logout, in ``uow`` (with its audit record): the cookie's session ends on the server, so a copy of the
    cookie opens nothing either. The caller clears the cookie once ``uow`` committed."""
    sid = request.session.get("sid")
    if isinstance(sid, str):
        await uow.connection.execute(_ending([OfficerSession.id == session_key(sid)], "logout", uow.now))


async def load_officer(request: Request) -> None:
    """The pages' dependency: ``request.state.officer`` is the officer of a live session, or None. A dead
    session's officer, session id and looked-up subject leave the cookie (the language and a login under way
    stay), so its next request costs no lookup."""
    request.state.officer = found = await _live_officer(request)
    if found is None:
        for key in ("officer", "sid", "subject"):
            request.session.pop(key, None)


async def _live_officer(request: Request) -> Officer | None:
    """The cookie's officer when its session's row is live: one SELECT on a read connection. A row found past its
    absolute end or idle too long is marked ended (expired, idle); a live one's last use is written at most once
    per ``TOUCH``."""
    data, sid = request.session.get("officer"), request.session.get("sid")
    if not isinstance(data, dict) or not isinstance(sid, str):
        return None
    try:
        officer = Officer(**data)
    except TypeError:
        return None
    services = request.app.state.services
    async with services.db.read() as session:
        row = (await session.exec(select(OfficerSession).where(OfficerSession.id == session_key(sid)))).first()
    if row is None or row.ended_at is not None or (row.officer_sub, row.officer_oin) != (officer.sub, officer.oin):
        return None
    now = services.clock.now()
    if reason := _ended_by_time(row, now, services.settings):
        await _write(services, _ending([OfficerSession.id == row.id], reason, now))
        return None
    if now - row.last_seen_at >= TOUCH:
        await _write(services, update(OfficerSession).where(OfficerSession.id == row.id, OfficerSession.ended_at.is_(None))
                     .values(last_seen_at=now))
    return officer


def current_officer(request: Request) -> Officer:
    """The logged-in officer (``load_officer`` found a live session for this request), or ``LoginRequired``."""
    officer = getattr(request.state, "officer", None)
    if officer is None:
        raise LoginRequired()
    return officer


# --- the sessions' rows ---------------------------------------------------------------------------

def session_key(sid: str) -> str:
    """A session row's id: the SHA-256 of the cookie's random session id, so the table alone opens no session."""
    return hashlib.sha256(sid.encode()).hexdigest()


def _ended_by_time(row: OfficerSession, now: datetime, settings: Settings) -> str | None:
    """Why time ended a session not yet marked ended: ``expired`` (past its absolute end) or ``idle``; None while live."""
    if now >= row.expires_at:
        return "expired"
    if now - row.last_seen_at > timedelta(seconds=settings.session_idle_seconds):
        return "idle"
    return None


def _open(now: datetime, settings: Settings) -> list:
    """The rows of live sessions (``_ended_by_time``'s complement, in SQL)."""
    return [OfficerSession.ended_at.is_(None), OfficerSession.expires_at > now,
            OfficerSession.last_seen_at >= now - timedelta(seconds=settings.session_idle_seconds)]


def _ending(where: list, reason: str, now: datetime):
    """End the sessions ``where`` selects that have not ended yet (one conditional UPDATE: a session ends once)."""
    return (update(OfficerSession).where(OfficerSession.ended_at.is_(None), *where)
            .values(ended_at=now, end_reason=reason))


async def _write(services: Services, statement) -> int:
    """Run one statement in a transaction of its own; how many rows it touched."""
    async with services.db.write() as session:
        return (await (await core(session)).execute(statement)).rowcount or 0


async def open_sessions(services: Services) -> list[OfficerSession]:
    """``brb sessions list``: the live sessions, by organisation and officer."""
    async with services.db.read() as session:
        return list((await session.exec(select(OfficerSession).where(*_open(services.clock.now(), services.settings))
                                        .order_by(OfficerSession.officer_oin, OfficerSession.officer_sub,
                                                  OfficerSession.created_at))).all())


async def end_sessions(services: Services, *, sub: str | None = None, oin: str | None = None, every: bool = False) -> int:
    """``brb sessions end`` in an incident: end the live sessions of one officer (``sub``), of one organisation
    (``oin``) or ``every`` one (exactly one of them); how many ended. Their cookies lead to the login from now on."""
    if sum((sub is not None, oin is not None, every)) != 1:
        raise ValueError("exactly one of sub, oin, every")
    now = services.clock.now()
    where = _open(now, services.settings)
    if sub is not None:
        where.append(OfficerSession.officer_sub == sub)
    if oin is not None:
        where.append(OfficerSession.officer_oin == oin)
    ended = await _write(services, _ending(where, "ended-by-operator", now))
    selector = "officer" if sub is not None else "organisation" if oin is not None else "all"  # never the sub itself
    log.info("pages.sessions-ended", extra={"ended": ended, "selector": selector})
    return ended


async def prune_sessions(services: Services) -> int:
    """The retention round's part: forget the sessions that ended or expired more than ``KEPT_ENDED`` ago."""
    cutoff = services.clock.now() - KEPT_ENDED
    return await _write(services, delete(OfficerSession).where(
        or_(OfficerSession.ended_at < cutoff, OfficerSession.expires_at < cutoff)))


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
