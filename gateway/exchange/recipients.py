"""Resolve recipient addresses: an OIN, ``municipality:<CBS code>`` or ``mayor:<CBS code>``."""
from __future__ import annotations

import re

from sqlalchemy import bindparam
from sqlmodel import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.parties import CBS_KINDS
from gateway.db.engine import core
from gateway.db.models import Organisation
from gateway.problems import Problem, field_detail

_BY_CBS = re.compile(rf"^({'|'.join(CBS_KINDS)}):([0-9]{{4}})$")


# rows (Core), statements built once: a recipient is only read here
_ORGANISATION = select(*Organisation.__table__.columns)
_BY_CODE = _ORGANISATION.where(Organisation.kind == bindparam("kind"), Organisation.cbs_code == bindparam("cbs"),
                               Organisation.active)
_BY_OIN = _ORGANISATION.where(Organisation.oin == bindparam("oin"), Organisation.active)
BY_OINS = _ORGANISATION.where(Organisation.oin.in_(bindparam("oins", expanding=True)))  # active or not: a read's parties


async def resolve(db: AsyncSession | AsyncConnection, addresses: list[str]) -> list[Organisation]:
    """The active organisations addressed, in order (each a row with the organisation's attributes)."""
    conn = await core(db)
    found: list[Organisation] = []
    problems: list[tuple[str, str]] = []
    for i, address in enumerate(addresses):
        pointer = f"/recipients/{i}"
        match = _BY_CBS.match(address)
        if match:
            kind, cbs = match.groups()
            org = (await conn.execute(_BY_CODE, {"kind": kind, "cbs": cbs})).first()
        elif re.fullmatch(r"[0-9]{20}", address):
            org = (await conn.execute(_BY_OIN, {"oin": address})).first()
        else:
            problems.append((pointer, "not an OIN, 'municipality:<CBS code>' or 'mayor:<CBS code>'"))
            continue
        if org is None:
            problems.append((pointer, f"no active organisation {address}"))
        elif org.oin in {o.oin for o in found}:
            problems.append((pointer, f"{address} is already a recipient"))
        else:
            found.append(org)
    if problems:
        raise Problem("unknown-recipient", field_detail(problems))
    return found
