"""Writes that must land after WhatsApp took a message: kept and retried until PostgreSQL takes them.

A send is recorded as a pending row before the driver is called (clarin.messaging.outbound). Once the driver
answered, the row's final state (sent with its stanza id, or removed) and the Idempotency-Key's answer are one
statement. If PostgreSQL is unreachable at that moment the statement is handed here: retried 0.2 s doubling to
2 s (as inbound ingestion does) until it lands, so the outcome of a message that is already on the phone is never
lost to a database restart. The client is answered at once with what WhatsApp said; a retry of its request
meanwhile finds the key in flight (409) and never sends again.

One instance per process (``DevicePool.held``); shutdown gives the writes a few seconds to land. A process that
dies first leaves the row 'pending' and the key linked: retries answer 409, the message is never sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from clarin.db.errors import DatabaseUnavailable

log = logging.getLogger("clarin.whatsapp.held")

FIRST_DELAY = 0.2
MAX_DELAY = 2.0


class HeldWrites:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._since: float | None = None  # start of the current run of held writes (logged once per outage)

    def __len__(self) -> int:
        return len(self._tasks)

    def hold(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        """Retry ``write()`` until it succeeds (only database unavailability is retried)."""
        if self._since is None:
            self._since = time.monotonic()
            log.warning("database unavailable: %s is held and retried until it lands", what)
        task = asyncio.create_task(self._retry(what, write), name=f"held-write {what}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks and self._since is not None:
            log.warning("held writes landed after %.1f s", time.monotonic() - self._since)
            self._since = None

    async def _retry(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        delay = FIRST_DELAY
        while True:
            await asyncio.sleep(delay)
            try:
                await write()
                return
            except DatabaseUnavailable:
                delay = min(delay * 2, MAX_DELAY)
            except Exception:
                log.exception("held write %s failed for good", what)
                return

    async def drain(self, timeout: float) -> None:
        """Shutdown: let held writes land for up to ``timeout`` s, then give up (logged)."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            log.error("%d held send result(s) not written at shutdown: their rows stay 'pending'", len(late))
