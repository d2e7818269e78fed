"""Which unheld devices this process claims, and when: the device pool's maintenance loop and lease watchdog.

:class:`DeviceClaims` is owned by :class:`~clarin.whatsapp.pool.DevicePool`, which hands it what it needs: the
database, the lease session, a read-only view of the devices it runs, and two operations of its own (claim one
device, stop them all). The claim bookkeeping (grace clocks, the devices stopped by a lost lease session) lives
here only.

Start-up and take-over (:meth:`DeviceClaims._claim`): paired devices nobody holds are claimed and resumed (at
start-up all of them, then every ``WHATSAPP_LEASE_RENEW`` s, or as soon as :mod:`clarin.whatsapp.peers` sees a
peer's lease session end, the ones whose last status is live).

Ownership after a lost lease session (docs/WHATSAPP.md, "Database outages"): the holder pings its lease session
every ``LEASE_CHECK`` s (each ping bounded by ``LEASE_PING_TIMEOUT`` s) and stops every device the moment it fails;
it re-opens the session every ``REOPEN_INTERVAL`` s and re-claims its own former devices at once. Any other process
claims a device only once it has seen it unleased for ``CLAIM_GRACE`` s: longer than the holder needs to notice and
stop (``LEASE_CHECK`` + a failed ping, which is immediate on a connection PostgreSQL closed), so never two runners.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from clarin.db.queries import query

if TYPE_CHECKING:
    from clarin.db.pool import Database
    from clarin.whatsapp.lease import DeviceLeases
    from clarin.whatsapp.peers import PeerWatch

log = logging.getLogger("clarin.whatsapp.pool")  # same logger as before the split: operators grep for it

CLAIM_BATCH = 500
LEASE_CHECK = 0.5
LEASE_PING_TIMEOUT = 2.0
REOPEN_INTERVAL = 0.25
CLAIM_GRACE = 1.5

Q_TO_RECONNECT = query("devices_to_reconnect")
Q_TO_TAKE_OVER = query("devices_to_take_over")

# (device_id, account_id, jid, reason) -> whether this process took the lease (a failed resume counts as taken)
ClaimOne = Callable[[uuid.UUID, uuid.UUID, str, str], Awaitable[bool]]
# (reason, stopped) -> stops every device run here, calling stopped(device_id) as each one leaves the pool
StopAll = Callable[[str, Callable[[uuid.UUID], None]], Awaitable[None]]


class DeviceClaims:
    def __init__(
        self,
        db: Database,
        leases: DeviceLeases,
        running: Mapping[uuid.UUID, Any],
        claim_one: ClaimOne,
        stop_all: StopAll,
        *,
        renew_interval: float = 10.0,
        peers: PeerWatch | None = None,
    ) -> None:
        self.db = db
        self.leases = leases
        self.renew_interval = renew_interval
        self.peers = peers  # wakes the take-over scan when a peer process's lease session ends
        self._running = running  # the pool's devices: read only here
        self._claim_one = claim_one
        self._stop_all = stop_all
        self._maintainer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unleased_since: dict[uuid.UUID, float] = {}  # first seen unleased (claim grace)
        self._mine_before: set[uuid.UUID] = set()  # stopped here when the lease session broke: re-claimed at once
        self._epoch = 0  # lease sessions opened so far
        self._dropped_in = 0  # the session whose loss filled _mine_before

    def wake(self) -> None:
        """Scan now instead of at the next renew tick."""
        self._wake.set()

    def start(self) -> None:
        self._maintainer = asyncio.create_task(self._maintain(), name="whatsapp-device-pool")
        self._watchdog = asyncio.create_task(self._watch(), name="whatsapp-lease-watchdog")

    async def stop(self) -> None:
        if self.peers is not None:
            await self.peers.stop()
        for task in (self._maintainer, self._watchdog):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _maintain(self) -> None:
        boot, failing = True, False
        while True:
            delay = float(self.renew_interval)
            self._wake.clear()  # before the scan: a wake-up arriving during it is kept for the wait below
            try:
                if not self.leases.is_open:
                    if self._running:
                        await self._drop_all("lease connection lost")
                    await self.leases.open()
                    self._epoch += 1
                epoch = self._epoch
                wait = await self._claim(Q_TO_RECONNECT if boot else Q_TO_TAKE_OVER, "start-up" if boot else "take-over")
                if epoch > self._dropped_in:  # used once, by the first scan on a session opened after the drop
                    self._mine_before.clear()
                boot = boot and wait is not None  # start-up candidates still in their grace: scan them again
                if failing:
                    log.warning("device pool maintenance works again")
                failing = False
                if wait is not None:
                    delay = min(delay, wait)
                if self.peers is not None:
                    self.peers.watch(self.leases.node, await self.leases.peers())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:  # once per outage: re-open attempts are frequent
                    log.warning("device pool maintenance failed (retrying every %.2f s): %s", REOPEN_INTERVAL, exc)
                failing = True
                delay = REOPEN_INTERVAL
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _watch(self) -> None:
        """Stop every device the moment the lease session is lost, before anyone else may claim them."""
        while True:
            await asyncio.sleep(LEASE_CHECK)
            try:
                if self.leases.is_open and not await self.leases.check(LEASE_PING_TIMEOUT):
                    if self._running:
                        await self._drop_all("lease connection lost")
                    self._wake.set()  # re-open (and re-claim) without waiting for the renew tick
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("device lease check failed: %s", exc)

    async def _claim(self, candidates_query: Any, reason: str) -> float | None:
        """Claim and resume every candidate nobody holds, page by page (claimed rows leave the query).

        A device is claimed only after it has been seen unleased for ``CLAIM_GRACE`` s (its old holder has stopped
        it by then), except the ones this process itself stopped when its lease session broke. Returns in how many
        seconds the next candidate's grace ends (``None``: none waiting)."""
        attempted: set[uuid.UUID] = set()
        now = time.monotonic()
        waiting: float | None = None
        while True:
            rows = await self.db.fetch(candidates_query, [CLAIM_BATCH])
            fresh = [row for row in rows if uuid.UUID(str(row["id"])) not in attempted]
            for row in fresh:
                device_id = uuid.UUID(str(row["id"]))
                attempted.add(device_id)
                if device_id in self._running:
                    continue
                if device_id not in self._mine_before:
                    left = self._unleased_since.setdefault(device_id, now) + CLAIM_GRACE - now
                    if left > 0:
                        waiting = left if waiting is None else min(waiting, left)
                        continue
                if await self._claim_one(device_id, uuid.UUID(str(row["account_id"])), row["jid"] or "", reason):
                    self._unleased_since.pop(device_id, None)
            if len(rows) < CLAIM_BATCH or not fresh:
                break
        for device_id in [d for d in self._unleased_since if d not in attempted]:
            del self._unleased_since[device_id]  # leased again (or no longer live): its grace starts over
        return waiting

    async def _drop_all(self, reason: str) -> None:
        """The leases are gone: the pool stops every client now so no session runs twice; the devices it stops
        are this process's former ones, re-claimed without grace by the first scan on the next session."""
        self._dropped_in = self._epoch
        await self._stop_all(reason, self._mine_before.add)
