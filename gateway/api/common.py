"""Shared router helpers: the services, and standard query parameters."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel

from gateway.auth.dependencies import require
from gateway.auth.tokens import Caller
from gateway.problems import Problem, field_detail
from gateway.services import Services
from gateway.settings import MAX_PAGE_SIZE


async def services(request: Request) -> Services:  # async: a plain def would cost a thread hop per request
    return request.app.state.services


async def page_size(request: Request, size: Annotated[int | None, Query(
        alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description=f"items per page, at most BRB_MAX_PAGE_SIZE (≤ {MAX_PAGE_SIZE})")] = None) -> int:
    settings = request.app.state.services.settings
    size = size or settings.default_page_size
    if size > settings.max_page_size:
        raise Problem("invalid-request", field_detail([("query:pageSize", f"at most {settings.max_page_size}")]))
    return size


Svc = Annotated[Services, Depends(services)]
PageSize = Annotated[int, Depends(page_size)]


def answer(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as the JSON body, serialised once. A route that returns its response model lets FastAPI
    validate it again against that model first; the busiest routes (send, read, inbox) answer with this
    and declare ``response_model=`` for the OpenAPI document instead."""
    return Response(model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json")


def caller_with(*scopes: str):
    """The authenticated caller, holding any one of ``scopes`` (see gateway/auth/dependencies.py)."""
    return Annotated[Caller, Depends(require(*scopes))]


def caller_in_transaction(*scopes: str):
    """As ``caller_with``, for routes whose handler opens its unit of work before it discloses anything: the
    token's jti is then recorded inside that one transaction (no write of its own). If the handler fails
    before, the jti is burnt after it, before the answer goes out (``scope="function"``)."""
    return Annotated[Caller, Depends(require(*scopes, jti_in_transaction=True), scope="function")]
