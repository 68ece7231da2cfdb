"""The pages' own ASGI app, mounted at /audit by gateway/app.py: its session cookie, security headers,
login client and error pages stay here, and the API under /api/v1 never sees a cookie.

Errors: a browser navigation (Accept: text/html) gets the problem as a page naming its type and error
number; anything else (htmx, curl, a script) gets the same problem as application/problem+json."""
from __future__ import annotations

import logging
import secrets
import warnings
from pathlib import Path

with warnings.catch_warnings():  # authlib's own httpx integration warns about itself on import (authlib 1.9)
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.starlette_client import OAuth
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from gateway.pages import dev_issuer, views
from gateway.pages.officer import LoginRequired
from gateway.pages.render import SECURITY_HEADERS, page
from gateway.pages.verification import Verifications
from gateway.problems import PROBLEM_JSON, PROBLEM_TYPES, Problem, render
from gateway.settings import Settings

log = logging.getLogger("brb.pages")
PREFIX = "/audit"
COOKIE = "brb_audit_session"
STATIC = Path(__file__).parent / "static"


class SecurityHeaders:
    """The pages' security headers on every answer, static files and redirects included."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in self.headers if h[0] not in present]
            await send(message)

        await self.app(scope, receive, with_headers)


def oidc_client(settings: Settings):
    """The login client for the configured issuer (authorization code flow, PKCE S256), or None: no issuer,
    or the development issuer outside demo mode (refused)."""
    issuer = settings.oidc_issuer
    if not issuer:
        return None
    if dev_issuer.is_dev_issuer(issuer) and not settings.demo:
        log.error("pages.dev-issuer-refused", extra={"issuer": issuer})
        return None
    oauth = OAuth()
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
    return oauth.register(
        "officers", client_id=settings.oidc_client_id, client_secret=secret,
        server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile", "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic" if secret else "none"},
    )


def create_pages_app(settings: Settings, state: State) -> FastAPI | None:
    """The pages, sharing the main app's ``state`` (its services). None when they cannot be served safely:
    no session key outside demo mode."""
    if settings.session_secret is None and not settings.demo:
        return None
    secret = settings.session_secret.get_secret_value() if settings.session_secret else secrets.token_urlsafe(32)
    pages = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    pages.router.redirect_slashes = False
    pages.state = state  # request.app.state.services, as in the API
    pages.state.oidc = oidc_client(settings)
    pages.state.verifications = Verifications()
    pages.include_router(views.router)
    if settings.demo:
        pages.include_router(dev_issuer.router())
    pages.mount("/static", StaticFiles(directory=STATIC), name="static")

    def problem(request: Request, slug: str, detail: str, headers: dict | None = None):
        type_ = PROBLEM_TYPES[slug]
        body = render(type_, detail, request.url.path)
        if "text/html" in request.headers.get("accept", "") and request.headers.get("hx-request") != "true":
            response = page(request, "error.html", officer=None, problem=body, status_code=type_.status)
        else:
            response = JSONResponse(body, status_code=type_.status, media_type=PROBLEM_JSON)
        response.headers.update(headers or {})
        return response

    @pages.exception_handler(LoginRequired)
    async def to_login(request: Request, _exc: LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"{PREFIX}/login?{views.urlencode({'next': target})}"
        if request.headers.get("hx-request") == "true":  # htmx follows HX-Redirect with a full navigation
            return JSONResponse(render(PROBLEM_TYPES["invalid-token"], "log in first", request.url.path), status_code=401,
                                media_type=PROBLEM_JSON, headers={"HX-Redirect": login})
        return RedirectResponse(login, status_code=303)

    @pages.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return problem(request, exc.type.slug, exc.detail, exc.headers)

    @pages.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError):
        items = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return problem(request, "validation-failed", items)

    @pages.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "invalid-request")
        return problem(request, slug, str(exc.detail))

    pages.add_middleware(SessionMiddleware, secret_key=secret, session_cookie=COOKIE, max_age=settings.session_max_age_seconds,
                         path=PREFIX, same_site="lax", https_only=settings.session_cookie_secure)
    pages.add_middleware(SecurityHeaders)
    return pages
