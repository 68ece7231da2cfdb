"""Shared router helpers: the services, and standard query parameters."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from gateway.auth.dependencies import require
from gateway.auth.tokens import Caller
from gateway.problems import Problem, field_detail
from gateway.services import Services
from gateway.settings import MAX_PAGE_SIZE


def services(request: Request) -> Services:
    return request.app.state.services


def page_size(request: Request, size: Annotated[int | None, Query(
        alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description=f"items per page, at most BRB_MAX_PAGE_SIZE (≤ {MAX_PAGE_SIZE})")] = None) -> int:
    settings = request.app.state.services.settings
    size = size or settings.default_page_size
    if size > settings.max_page_size:
        raise Problem("invalid-request", field_detail([("query:pageSize", f"at most {settings.max_page_size}")]))
    return size


Svc = Annotated[Services, Depends(services)]
PageSize = Annotated[int, Depends(page_size)]


def caller_with(*scopes: str):
    """The authenticated caller, holding any one of ``scopes`` (see gateway/auth/dependencies.py)."""
    return Annotated[Caller, Depends(require(*scopes))]
