"""Keyset pagination, one way for every list: rows in the ascending order of a few columns (the last one
unique), a page of ``size`` rows after a cursor, and the cursor to go on from: after the last row given,
also on the last page, so a poller resumes there later and gets only what arrived since (``hasMore``
says whether more rows follow now).

A cursor is opaque to callers: base64url (no padding) of ``{"v":1,"list":<list name>,"after":[<key>]}``,
the ordering key of the last row given out. It is decoded strictly: the list's name must match (a cursor
of the inbox is no cursor of the sent list), every value must have its column's type and range, and the
text must be exactly what the encoder writes for those values. Anything else is the problem
``invalid-request`` at ``query:cursor``, never a 500 from the database."""
from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.dialect import MAX_BIGINT, MAX_INT
from gateway.problems import Problem, field_detail

VERSION = 1
MAX_CURSOR_LENGTH = 200  # as declared for the query parameter
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
Row = TypeVar("Row")


class _Refused(ValueError):
    """A cursor this API did not give out; the message says why, without echoing the cursor."""


class Kind:
    """How one key value travels in a cursor (``dump``) and what a cursor may hold for it (``load``)."""

    def dump(self, value: Any) -> Any:
        return value

    def load(self, raw: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Kind):
    top: int

    def load(self, raw: Any) -> int:
        if type(raw) is not int:  # bool is no int here
            raise _Refused("a key that is no integer")
        if not 0 <= raw <= self.top:
            raise _Refused(f"an id out of range (0..{self.top})")
        return raw


class Uuid(Kind):
    def load(self, raw: Any) -> str:
        try:
            if type(raw) is str and str(uuid.UUID(raw)) == raw:  # lower case, with hyphens, as stored
                return raw
        except ValueError:
            pass
        raise _Refused("an id that is no UUID")


class Instant(Kind):
    def dump(self, value: datetime) -> str:
        return value.astimezone(timezone.utc).isoformat()

    def load(self, raw: Any) -> datetime:
        try:
            value = datetime.fromisoformat(raw) if type(raw) is str else None
        except ValueError:
            value = None
        if value is None:
            raise _Refused("a time that is no RFC 3339 date-time")
        if value.tzinfo is None:
            raise _Refused("a time without an offset")
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            raise _Refused("a time out of range") from None


class Day(Kind):
    """A calendar date, as ISO 8601 (``2026-12-07``)."""

    def dump(self, value: date) -> str:
        return value.isoformat()

    def load(self, raw: Any) -> date:
        if type(raw) is str and len(raw) == 10:
            try:
                return date.fromisoformat(raw)
            except ValueError:
                pass
        raise _Refused("a key that is no date")


INT, BIGINT, UUID, INSTANT, DAY = Integer(MAX_INT), Integer(MAX_BIGINT), Uuid(), Instant(), Day()


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    position: tuple | None  # the key of the last row given; on an empty page, where the caller stood
    has_more: bool  # more rows follow now; when False, the cursor still resumes here later
    keyset: Keyset

    @property
    def next_key(self) -> tuple | None:
        """The key to page on from while more rows follow now; None on the last page."""
        return self.position if self.has_more else None

    @property
    def next_cursor(self) -> str | None:
        """Where to resume: after the last row given, also on the last page (a poller stores it and asks
        again later for what arrived since). None only for an empty first page of a list without a start."""
        return None if self.position is None else self.keyset.encode(self.position)


@dataclass(frozen=True)
class Keyset:
    """One paged list: its name (carried in its cursors) and its ordering as (column, kind) pairs."""

    name: str
    keys: tuple[tuple[Any, Kind], ...]
    start: tuple | None = None  # the key before every row, if there is one: an empty first page still gives a cursor

    def encode(self, after: Sequence[Any]) -> str:
        values = [kind.dump(v) for (_column, kind), v in zip(self.keys, after, strict=True)]
        raw = json.dumps({"v": VERSION, "list": self.name, "after": values}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, cursor: str | None) -> tuple | None:
        """The key the next page starts after; None (or an empty cursor) is the first page."""
        if not cursor:
            return None
        try:
            return self._decode(cursor)
        except _Refused as exc:
            raise Problem("invalid-request", field_detail([("query:cursor", f"not a cursor this API gave out: {exc}")])) from None

    def _decode(self, cursor: str) -> tuple:
        if len(cursor) > MAX_CURSOR_LENGTH or not _BASE64URL.fullmatch(cursor):
            raise _Refused("not base64url")
        try:
            body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _Refused("not an encoded cursor") from None
        if not isinstance(body, dict) or body.keys() != {"v", "list", "after"} or body["v"] != VERSION:
            raise _Refused("not a cursor of this version")
        if body["list"] != self.name:
            raise _Refused(f"a cursor of another list (this is {self.name})")
        if not isinstance(body["after"], list) or len(body["after"]) != len(self.keys):
            raise _Refused("a key of the wrong shape")
        after = tuple(kind.load(raw) for (_column, kind), raw in zip(self.keys, body["after"]))
        if self.encode(after) != cursor:  # e.g. another spelling of the same time, or stray bits
            raise _Refused("not as this API writes it")
        return after

    def key_of(self, row: Any) -> tuple:
        """The ordering key of a result row (one entity, or a tuple of entities from a join)."""
        entities = (row,) if isinstance(row, SQLModel) else tuple(row)
        return tuple(getattr(next(e for e in entities if isinstance(e, column.class_)), column.key)
                     for column, _kind in self.keys)

    def after(self, key: tuple):
        """The rows strictly after ``key`` in this ordering: a >= x and (a > x or (a = x and b > y) ...).
        The leading ``a >= x`` lets both databases start the index range at the cursor (a deep page
        costs what the first does); a row-value comparison would say the same, less portably."""
        columns = [column for column, _kind in self.keys]
        later = or_(*(and_(*(c == v for c, v in zip(columns[:i], key)), columns[i] > key[i]) for i in range(len(columns))))
        return later if len(columns) == 1 else and_(columns[0] >= key[0], later)

    async def page(self, session: AsyncSession, query, after: tuple | None, size: int) -> Page:
        """``size`` rows of ``query`` after the key, and the cursor of the next page if one more row exists."""
        if after is not None:
            query = query.where(self.after(after))
        rows = list((await session.exec(query.order_by(*(c for c, _k in self.keys)).limit(size + 1))).all())
        has_more = len(rows) > size
        rows = rows[:size]
        position = self.key_of(rows[-1]) if rows else (after if after is not None else self.start)
        return Page(rows, position, has_more, self)
