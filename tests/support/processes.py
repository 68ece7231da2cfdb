"""Ending the gateway processes a test started: each gets its chance to stop cleanly, then is killed."""
from __future__ import annotations

import asyncio


async def wait_or_kill(procs, timeout: float = 20) -> None:
    """Wait for each (already asked to stop) asyncio subprocess; kill what has not ended within ``timeout``."""
    for p in procs:
        try:
            await asyncio.wait_for(p.wait(), timeout)
        except TimeoutError:
            p.kill()
            await p.wait()
