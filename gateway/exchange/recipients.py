"""Resolve recipient addresses: an OIN, ``municipality:<CBS code>`` or ``mayor:<CBS code>``."""
from __future__ import annotations

import re

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.parties import CBS_KINDS
from gateway.db.models import Organisation
from gateway.problems import Problem, field_detail

_BY_CBS = re.compile(rf"^({'|'.join(CBS_KINDS)}):([0-9]{{4}})$")


async def resolve(session: AsyncSession, addresses: list[str]) -> list[Organisation]:
    found: list[Organisation] = []
    problems: list[tuple[str, str]] = []
    for i, address in enumerate(addresses):
        pointer = f"/recipients/{i}"
        match = _BY_CBS.match(address)
        if match:
            kind, cbs = match.groups()
            org = (await session.exec(
                select(Organisation).where(Organisation.kind == kind, Organisation.cbs_code == cbs, Organisation.active)
            )).first()
        elif re.fullmatch(r"[0-9]{20}", address):
            org = await session.get(Organisation, address)
            org = org if org is not None and org.active else None
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
