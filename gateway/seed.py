"""Register the demo organisations and their public keys (idempotent)."""
from __future__ import annotations

from sqlmodel import select

from gateway import registry
from gateway.db.models import Organisation, OrganisationKey
from gateway.demo import DEMO_ORGANISATIONS, demo_key
from gateway.services import Services


async def seed_demo(services: Services) -> int:
    count = 0
    for spec in DEMO_ORGANISATIONS:
        async with services.db.read() as session:
            exists = await session.get(Organisation, spec["oin"])
        if exists is None:
            await registry.add_organisation(services, registry.OrganisationRequest.model_validate(spec))
        _private, public = demo_key(spec["oin"])
        async with services.db.read() as session:
            has_key = (await session.exec(select(OrganisationKey).where(
                OrganisationKey.oin == spec["oin"], OrganisationKey.kid == public["kid"]))).first()
        if has_key is None:
            await registry.add_key(services, spec["oin"], public)
        count += 1
    return count
