"""Rendering a page: the Jinja2 environment (autoescaped), the interface language (Dutch, English on
request) and the headers every page carries (no caching of audit data, a strict content security policy:
every script and style is one of the vendored files, nothing inline, nothing from elsewhere)."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from gateway.audit.citizen_report import plain_words
from gateway.pages.texts import LANGUAGES, TEXTS

HERE = Path(__file__).parent
TIMEZONE = ZoneInfo("Europe/Amsterdam")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
# the audit package's templates too: the subject page shows the citizen report's own body (one template)
templates = Jinja2Templates(directory=[str(HERE / "templates"), str(HERE.parent / "audit" / "templates")])


def language(request: Request) -> str:
    lang = request.session.get("lang") if "session" in request.scope else None
    return lang if lang in LANGUAGES else "nl"


def local_time(value: datetime | None) -> str:
    """A stored UTC time as the officer reads it: Europe/Amsterdam."""
    return value.astimezone(TIMEZONE).strftime("%d-%m-%Y %H:%M:%S") if value else ""


templates.env.filters["local"] = local_time
templates.env.filters["tojson_attr"] = lambda v: json.dumps(v, ensure_ascii=False)


def texts_for(request: Request):
    """``t(key)``: the page's words in the officer's language."""
    texts = TEXTS[language(request)]
    return lambda key: texts.get(key, key)


def page(request: Request, template: str, *, status_code: int = 200, **context) -> HTMLResponse:
    from gateway.pages.officer import csrf_token

    lang = language(request)
    response = templates.TemplateResponse(request, template, {
        "t": texts_for(request), "plain": plain_words(lang), "lang": lang, "csrf": csrf_token(request) if "session" in request.scope else "",
        "path": request.url.path, "htmx": request.headers.get("hx-request") == "true", **context,
    }, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response
