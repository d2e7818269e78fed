"""One worker per campaign across processes: PostgreSQL session advisory locks.

The campaign worker of each process opens ONE dedicated connection (its own tiny pool, so request load
can never starve it) and takes ``pg_try_advisory_lock(hashtextextended('clarin-campaign:' || id, 0))``
before it sends for a campaign. The lock lives as long as that session: released when the campaign stops
running here, on shutdown, or by PostgreSQL when the process dies (SIGKILL included). Holding it means no
other live process is sending for that campaign, which is what makes start-up reconciliation of
``sending`` recipients safe. The worker checks the connection (:meth:`CampaignLocks.check`) before every
claim: a lost connection means every lock is gone, and it stops sending at once.
"""

from __future__ import annotations

import asyncio
import uuid

from clarin.db.advisory import AdvisorySession, AdvisoryUnavailable

# The worker catches this name; it is the shared session's error.
LocksUnavailable = AdvisoryUnavailable


def _key(campaign_id: uuid.UUID) -> str:
    return f"clarin-campaign:{campaign_id}"


class CampaignLocks:
    def __init__(self, dsn: str) -> None:
        self._session = AdvisorySession(dsn, "clarin-campaign-locks", on_lost=lambda _exc: self.held.clear())
        self._lock = asyncio.Lock()
        self.held: dict[uuid.UUID, str] = {}  # campaign → owner (the device loop holding it)

    @property
    def is_open(self) -> bool:
        return self._session.is_open

    async def open(self) -> None:
        async with self._lock:
            await self._session.open()

    async def try_acquire(self, campaign_id: uuid.UUID, owner: str) -> bool:
        """``True`` when ``owner`` now holds the campaign's lock (or already did); ``False`` when another
        process, or another owner in this one, holds it."""
        async with self._lock:
            if campaign_id in self.held:
                return self.held[campaign_id] == owner  # advisory locks stack: never take ours twice
            if await self._session.try_lock(_key(campaign_id)):
                self.held[campaign_id] = owner
                return True
            return False

    def holds(self, campaign_id: uuid.UUID, owner: str) -> bool:
        return self._session.is_open and self.held.get(campaign_id) == owner

    async def release(self, campaign_id: uuid.UUID, owner: str) -> None:
        async with self._lock:
            if self.held.get(campaign_id) != owner:
                return
            del self.held[campaign_id]
            try:
                await self._session.unlock(_key(campaign_id))
            except AdvisoryUnavailable:
                pass  # the session is gone, and its locks with it

    async def check(self) -> bool:
        """Health ping; ``False`` means the connection (and every lock) is gone."""
        async with self._lock:
            return await self._session.ping()

    async def close(self) -> None:
        async with self._lock:
            await self._session.close()
            self.held.clear()
