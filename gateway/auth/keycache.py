"""What a token check needs of the registry, kept per process so a request costs no database round trip.

``verify_token`` (gateway/auth/tokens.py) looks up (iss, kid) here: the organisation's oin, kind, name, CBS
code, parent, active flag, and the key's algorithm, revocation time and PARSED verification key. A miss
reads organisation and key in one query, as before. Unknown issuers and kids are never cached.

A revocation stays effective within seconds across processes: every change of an organisation or key
increments the one-row ``registry_version`` counter in the same transaction (``bump``, migration 0009); in
the changing process the cache is cleared at once (``changed``); every other process clears it when its
watcher (``watch``, run by ``KeyKeeper``) sees the counter move, every ``BRB_KEY_CACHE_POLL_SECONDS``. An
entry also expires after ``BRB_KEY_CACHE_TTL_SECONDS`` (a row edited by hand, without the counter). The
cache only answers while its watcher has polled recently (``armed``): a process without one (a CLI
command, a test without the app's lifespan) or whose watcher cannot reach the database reads the registry
on every request, as before."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import RegistryVersion
from gateway.services import Services

log = logging.getLogger("brb.auth")


@dataclass(frozen=True)
class KeyEntry:
    """One registered key of one organisation, as a token check needs it."""

    oin: str
    kind: str
    name: str
    cbs_code: str | None
    parent_oin: str | None
    active: bool
    alg: str
    revoked_at: datetime | None
    verifier: Any  # the parsed public key (cryptography object), handed to jwt.decode as is
    jwk: dict  # the public JWK as registered: what a message's signature is checked with (brb_client/proof.py)
    loaded_at: float  # time.monotonic() when read from the database


class KeyCache:
    """(iss, kid) -> ``KeyEntry`` for one process. ``generation`` moves on every clear, so a lookup that
    started before a clear cannot put what it read (possibly stale) back afterwards."""

    def __init__(self, ttl_seconds: float, poll_seconds: float):
        self.ttl = ttl_seconds
        self.poll = poll_seconds
        self.generation = 0
        self.version: int | None = None  # the registry_version the watcher saw last
        self._polled_at: float | None = None  # time.monotonic() of the watcher's last successful poll
        self.failing = False  # the watcher's last poll failed
        self._entries: dict[tuple[str, str], KeyEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._entries

    @property
    def armed(self) -> bool:
        """True while the watcher has polled within a few of its intervals (else nothing is served)."""
        return self.ttl > 0 and self._polled_at is not None and \
            time.monotonic() - self._polled_at <= max(5 * self.poll, 5.0)

    def get(self, iss: str, kid: str) -> KeyEntry | None:
        if not self.armed:
            return None
        entry = self._entries.get((iss, kid))
        if entry is not None and time.monotonic() - entry.loaded_at > self.ttl:
            self._entries.pop((iss, kid), None)
            return None
        return entry

    def put(self, iss: str, kid: str, entry: KeyEntry, generation: int) -> None:
        """Keep ``entry`` unless the cache was cleared since ``generation`` was read (the read may be stale)."""
        if generation == self.generation and self.armed:
            self._entries[(iss, kid)] = entry

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def observe(self, version: int) -> bool:
        """The watcher read ``version``: clear when it moved. True when it did."""
        self._polled_at = time.monotonic()
        moved = version != self.version
        if moved:
            self.clear()
            self.version = version
        return moved

    def disarm(self) -> None:
        """The watcher could not poll: serve nothing until it can again."""
        self._polled_at = None
        self.clear()


def key_cache(services: Services) -> KeyCache:
    """This process's cache for ``services`` (kept on the Services object; created on first use)."""
    cache = getattr(services, "key_cache", None)
    if cache is None:
        settings = services.settings
        cache = KeyCache(settings.key_cache_ttl_seconds, settings.key_cache_poll_seconds)
        services.key_cache = cache
    return cache


async def bump(session: AsyncSession) -> None:
    """Record a change of an organisation or key: call it in the transaction of the change."""
    result = await session.exec(update(RegistryVersion).where(RegistryVersion.id == 1)
                                .values(version=RegistryVersion.version + 1))
    if not result.rowcount:  # the seeded row is gone (restored by hand): start again
        session.add(RegistryVersion(id=1, version=1))


def changed(services: Services) -> None:
    """A change of the registry committed in this process: forget what this process knew at once."""
    key_cache(services).clear()


async def read_version(services: Services) -> int:
    async with services.db.read() as session:
        version = (await session.exec(select(RegistryVersion.version).where(RegistryVersion.id == 1))).first()
    return int(version or 0)


async def poll_once(services: Services) -> bool:
    """One look at the counter; True when the cache was cleared because it moved."""
    cache = key_cache(services)
    try:
        version = await read_version(services)
    except Exception:  # noqa: BLE001 - the database may be down: serve nothing from the cache meanwhile
        if not cache.failing:  # once per outage, not once a second
            log.warning("keycache.poll-failed", exc_info=True)
        cache.failing = True
        cache.disarm()
        return False
    if cache.failing:
        log.info("keycache.poll-recovered")
        cache.failing = False
    moved = cache.observe(version)
    if moved:
        log.debug("keycache.cleared", extra={"registry_version": version})
    return moved


async def watch(services: Services, stop: asyncio.Event) -> None:
    """Poll the counter every ``key_cache_poll_seconds`` until ``stop`` is set (every gateway process)."""
    cache = key_cache(services)
    if cache.ttl <= 0:  # caching switched off
        return
    try:
        while not stop.is_set():
            await poll_once(services)
            try:
                await asyncio.wait_for(stop.wait(), timeout=cache.poll)
            except asyncio.TimeoutError:
                pass
    finally:
        cache.disarm()
