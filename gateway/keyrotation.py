"""Rotating the payload key ring without breaking a running fleet (deploy/runbook-key-rotation.md).

Knowing a key and sealing with it are separate. Every process knows the keys of its key file
(BRB_ENCRYPTION_KEYS_FILE, re-read when it changes and on SIGHUP) and records them in ``key_holders``
every few seconds (``KeyKeeper``). Which key SEALS is one row in the database (``key_ring``), changed
only by ``brb key promote``, which refuses unless every live process already holds the key; ``brb key
rewrap`` refuses until every live process seals with it; ``brb key retire`` refuses while a live
process still seals with the old key or any value is still wrapped under it. So no process is ever
handed data it cannot open."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from gateway.auth import keycache
from gateway.crypto import KeyRing, read_key_file
from gateway.db.models import SEALED, KeyHolder, KeyRingState
from gateway.metrics import KEYRING_KEYS
from gateway.services import Services

log = logging.getLogger("brb.keys")


class Refused(Exception):
    """A key command that would leave some process unable to read or write; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def publish_metric(ring: KeyRing) -> None:
    """KEYRING_KEYS: one series per held key, current=1 for the sealing key."""
    KEYRING_KEYS.clear()
    for kid in ring.held:
        KEYRING_KEYS.labels(kid, "1" if kid == ring.current_id else "0").set(1)


# --- the fleet's state -----------------------------------------------------------------------------------

async def ring_state(services: Services) -> KeyRingState:
    """The fleet's ring row; the first process to ask seeds it with its own sealing key."""
    async with services.db.read() as session:
        state = await session.get(KeyRingState, 1)
    if state is not None:
        return state
    try:
        async with services.db.write() as session:
            session.add(KeyRingState(id=1, current_id=services.keyring.current_id, retired=[], changed_at=services.clock.now()))
    except IntegrityError:  # another process seeded it first: theirs stands
        pass
    async with services.db.read() as session:
        return await session.get(KeyRingState, 1)


async def adopt(services: Services) -> KeyRingState:
    """Seal with the fleet's key when this process holds it (if not: keep sealing with what it has, and
    say so loudly: readiness and key_holders show the difference)."""
    state = await ring_state(services)
    ring = services.keyring
    if ring.holds(state.current_id):
        if ring.current_id != state.current_id:
            log.info("keys.sealing-key-changed", extra={"key_id": state.current_id, "previous": ring.current_id})
            ring.use(state.current_id)
    else:
        log.error("keys.sealing-key-unknown", extra={"key_id": state.current_id, "held": ring.held})
    publish_metric(ring)
    return state


async def live_holders(services: Services) -> list[KeyHolder]:
    since = services.clock.now() - timedelta(seconds=services.settings.key_holder_window_seconds)
    async with services.db.read() as session:
        return list((await session.exec(select(KeyHolder).where(KeyHolder.seen_at >= since)
                                        .order_by(KeyHolder.process_id))).all())


async def wrapped_counts(services: Services) -> dict[str, int]:
    """How many sealed values (payloads, webhook secrets, acknowledgement and withdrawal reasons) are
    wrapped under each key."""
    counts: dict[str, int] = {}
    async with services.db.read() as session:
        for model, columns in SEALED:
            kid = getattr(model, columns.key_id)
            rows = (await session.exec(select(kid, func.count()).where(col(getattr(model, columns.ciphertext)).is_not(None))
                                       .group_by(kid))).all()
            for k, n in rows:
                counts[k] = counts.get(k, 0) + n
    return counts


def _describe(holders: list[KeyHolder]) -> str:
    return ", ".join(f"{h.process_id} ({h.role})" for h in holders)


# --- the three steps -------------------------------------------------------------------------------------

async def promote(services: Services, kid: str) -> KeyRingState:
    """Make ``kid`` the fleet's sealing key; refused unless every live process holds it."""
    state = await ring_state(services)
    if kid in state.retired:
        raise Refused(f"key {kid!r} was retired; add a new key instead")
    if state.current_id == kid:
        return state
    lacking = [h for h in await live_holders(services) if kid not in h.held]
    if lacking:
        raise Refused(f"not every live process holds key {kid!r} yet: {_describe(lacking)} do not. Add it to their "
                      "key file (they re-read it within BRB_KEY_RELOAD_SECONDS, or on SIGHUP) and try again")
    async with services.db.write() as session:
        await session.exec(update(KeyRingState).where(KeyRingState.id == 1)
                           .values(current_id=kid, changed_at=services.clock.now()))
    log.warning("keys.promoted", extra={"key_id": kid, "previous": state.current_id})
    return await adopt(services)


async def rewrap_all(services: Services, batch: int = 500, progress=None) -> int:
    """Re-wrap every data key not yet under the fleet's sealing key; ``progress(n)`` after each batch.
    Refused until every live process holds that key and seals with it (else new data could still be
    wrapped under the old key, or a process could be handed data it cannot open). Each row is changed
    only if its wrapped key is still the one read (a concurrent write wins; the ciphertexts stay)."""
    state = await adopt(services)
    ring, current = services.keyring, state.current_id
    if not ring.holds(current):
        raise Refused(f"this command does not hold the sealing key {current!r}: give it the same key file as the fleet")
    behind = [h for h in await live_holders(services) if current not in h.held or h.current_id != current]
    if behind:
        raise Refused(f"not every live process seals with key {current!r} yet: {_describe(behind)}. They pick up a "
                      "promotion within BRB_KEY_HEARTBEAT_SECONDS; try again")
    done = 0
    for model, columns in SEALED:
        key_col, pk = getattr(model, columns.key_id), list(model.__table__.primary_key.columns)
        while True:
            async with services.db.write() as session:
                rows = (await session.exec(select(model).where(key_col != current,
                                                               col(getattr(model, columns.ciphertext)).is_not(None))
                                           .limit(batch))).all()
                for row in rows:
                    old = columns.get(row)
                    if not ring.holds(old.key_id):
                        raise Refused(f"a value is wrapped under key {old.key_id!r}, which this command does not hold")
                    new = ring.rewrap(old)
                    await session.exec(update(model).where(*(c == getattr(row, c.name) for c in pk),
                                                           key_col == old.key_id,
                                                           getattr(model, columns.wrapped_key) == old.wrapped_key)
                                       .values({columns.wrapped_key: new.wrapped_key, columns.key_id: new.key_id})
                                       .execution_options(synchronize_session=False))
            done += len(rows)
            if progress:
                progress(len(rows))
            if len(rows) < batch:
                break
    return done


async def retire(services: Services, kid: str) -> KeyRingState:
    """Record ``kid`` as retired (then remove it from every key file); refused while it seals anywhere or
    any value is still wrapped under it."""
    state = await adopt(services)
    if kid == state.current_id:
        raise Refused(f"key {kid!r} is the sealing key; promote another key first")
    sealing = [h for h in await live_holders(services) if h.current_id == kid]
    if sealing:
        raise Refused(f"key {kid!r} still seals in {_describe(sealing)}; wait for them to pick up the promotion")
    left = (await wrapped_counts(services)).get(kid, 0)
    if left:
        raise Refused(f"{left} value(s) are still wrapped under key {kid!r}: run `brb key rewrap` first")
    if kid not in state.retired:
        async with services.db.write() as session:
            await session.exec(update(KeyRingState).where(KeyRingState.id == 1)
                               .values(retired=[*state.retired, kid], changed_at=services.clock.now()))
    log.warning("keys.retired", extra={"key_id": kid})
    return await ring_state(services)


# --- every process: reload the key file, follow the sealing key, heartbeat ---------------------------------

class KeyKeeper:
    """Keeps this process's ring current: re-reads the key file when its mtime changes (checked every
    ``key_reload_seconds``) and on SIGHUP, follows the fleet's sealing key, and records what it holds in
    ``key_holders`` every ``key_heartbeat_seconds``."""

    def __init__(self, services: Services, role: str):
        self.services, self.role = services, role
        self.process_id = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._file = services.settings.encryption_keys_file
        self._stamp = self._file_stamp()
        self._wake = asyncio.Event()

    def _file_stamp(self):
        if not self._file:
            return None
        try:
            st = Path(self._file).stat()
            return st.st_mtime_ns, st.st_size, st.st_ino
        except OSError:
            return None

    def reload(self, force: bool = False) -> bool:
        """Re-read the key file if it changed; a bad file is logged and the ring kept as it was."""
        stamp = self._file_stamp()
        if not self._file or (stamp == self._stamp and not force):
            return False
        self._stamp = stamp
        ring = self.services.keyring
        try:
            keys, _ = read_key_file(self._file)
            ring.replace(keys)
        except (OSError, ValueError) as exc:
            log.error("keys.reload-refused", extra={"reason": str(exc)[:300]})
            return False
        log.info("keys.reloaded", extra={"held": ring.held, "key_id": ring.current_id})
        publish_metric(ring)
        return True

    async def beat(self) -> None:
        """Follow the sealing key, record what this process holds, forget processes long gone."""
        svc = self.services
        await adopt(svc)
        now, ring = svc.clock.now(), svc.keyring
        values = {"role": self.role, "held": ring.held, "current_id": ring.current_id, "seen_at": now}
        async with svc.db.write() as session:
            found = await session.exec(update(KeyHolder).where(KeyHolder.process_id == self.process_id).values(**values))
            if not found.rowcount:
                session.add(KeyHolder(process_id=self.process_id, **values))
            await session.exec(delete(KeyHolder).where(
                KeyHolder.seen_at < now - timedelta(seconds=10 * svc.settings.key_holder_window_seconds)))

    async def start(self, stop: asyncio.Event) -> asyncio.Task:
        """One beat now (so the process seals with the fleet's key before it serves), then the loop; and
        the watcher of the registry version, which keeps this process's key cache honest (gateway/auth/keycache.py)."""
        try:
            await self.beat()
        except Exception:  # noqa: BLE001 - the database may be down at start; the loop tries again
            log.warning("keys.heartbeat-failed", exc_info=True)
        publish_metric(self.services.keyring)
        await keycache.poll_once(self.services)  # the cache serves from the first request on
        watcher = asyncio.create_task(keycache.watch(self.services, stop), name="key-cache-watcher")
        return asyncio.create_task(self._run_with(watcher, stop), name="key-keeper")

    async def _run_with(self, watcher: asyncio.Task, stop: asyncio.Event) -> None:
        """``run``, and the watcher ends with it (one task for the caller to wait for)."""
        try:
            await self.run(stop)
        finally:
            if not stop.is_set():  # the loop ended without a stop (cancelled): stop the watcher too
                watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                pass

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait ``seconds``, or less when stopped or woken (SIGHUP)."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        settings, loop = self.services.settings, asyncio.get_running_loop()
        hup = False
        if self._file:
            try:
                loop.add_signal_handler(signal.SIGHUP, self._wake.set)
                hup = True
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
                pass
        next_beat = loop.time() + settings.key_heartbeat_seconds
        try:
            while not stop.is_set():
                forced = self._wake.is_set()
                self._wake.clear()
                changed = self.reload(force=forced)
                if changed or loop.time() >= next_beat:
                    try:
                        await self.beat()
                    except Exception:  # noqa: BLE001 - try again next beat
                        log.warning("keys.heartbeat-failed", exc_info=True)
                    next_beat = loop.time() + settings.key_heartbeat_seconds
                wait = min(settings.key_reload_seconds if self._file else settings.key_heartbeat_seconds,
                           max(0.0, next_beat - loop.time()))
                await self._pause(stop, wait)
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            try:
                async with self.services.db.write() as session:  # gone: no longer counts as a holder
                    await session.exec(delete(KeyHolder).where(KeyHolder.process_id == self.process_id))
            except Exception:  # noqa: BLE001 - the row ages out of the window anyway
                log.warning("keys.leave-failed", exc_info=True)
