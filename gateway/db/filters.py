"""Optional list filters, one way: each helper gives a condition only when the caller gave a value, so a
route's query reads as the list of filters it offers, with no ``if value:`` ladder per list."""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_


def narrowed(query, *conditions):
    """``query`` with every condition that applies (None: the caller did not ask for it)."""
    given = [c for c in conditions if c is not None]
    return query.where(*given) if given else query


def equals(column, value: Any):
    return None if value is None else column == value


def either(columns: tuple, value: Any):
    """One value in any of several columns (e.g. an organisation as actor or as counterparty)."""
    return None if value is None else or_(*(c == value for c in columns))


def in_range(column, since: Any = None, until: Any = None):
    """``since`` inclusive, ``until`` exclusive, either side open when not given."""
    bounds = ([column >= since] if since is not None else []) + ([column < until] if until is not None else [])
    return and_(*bounds) if bounds else None
