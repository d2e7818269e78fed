"""Open WebSockets lose access with their token: re-checked whenever the auth cache drops their user or
account, and periodically.

A socket is authenticated at the handshake; without this, a deleted, deactivated or logged-out user (or a
password change elsewhere) kept receiving the tenant's events for as long as the socket stayed open. Every
revocation reaches every worker's ``TokenGuard`` (locally, or through ``<REDIS_PREFIX>:auth``), which tells
this watcher; it re-runs the same check as HTTP on that user's (or account's) sockets and closes the ones
that fail (1008; granian may send the frame without the code). The periodic pass, every ``ttl / 2``
(at least 0.5 s), covers the time Redis is down: cache entries then expire after ``ttl`` and the pass
reads the database, so a socket is closed within about 1.5 × ``AUTH_CACHE_TTL`` even without Redis.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from clarin.http.errors import HTTPError
from clarin.realtime.hub import CLOSE_POLICY_VIOLATION, Hub, WSConnection

if TYPE_CHECKING:
    from clarin.auth.revocation import TokenGuard

log = logging.getLogger("clarin.ws")

MIN_INTERVAL = 0.5


class SocketAuthWatch:
    def __init__(self, hub: Hub, guard: TokenGuard, ttl: float) -> None:
        self._hub = hub
        self._guard = guard
        self.interval = max(MIN_INTERVAL, ttl / 2)
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        guard.add_listener(self._on_drop)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._periodic())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._task = None
        self._pending.clear()

    def _on_drop(self, kind: str, key: uuid.UUID | None) -> None:
        if kind == "u" and key is not None:
            conns = self._hub.of_user(key)
        elif kind == "a" and key is not None:
            conns = self._hub.of_account(str(key))
        else:
            conns = self._hub.everyone()
        if not conns:
            return
        try:
            task = asyncio.get_running_loop().create_task(self.recheck(conns))
        except RuntimeError:  # no loop (a guard used outside the server): the periodic pass covers it
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def recheck(self, conns: list[WSConnection]) -> int:
        """Close the sockets whose token no longer passes; returns how many were closed."""
        closed = 0
        for conn in conns:
            if conn.closed or conn.auth is None:
                continue
            try:
                await self._guard.check(conn.auth)
            except HTTPError:
                conn.close(CLOSE_POLICY_VIOLATION)  # first: no event is queued to it from here on
                self._hub.unregister(conn, close=False)
                closed += 1
            except Exception as exc:  # database unreachable: keep the socket, the next pass decides
                log.debug("websocket access re-check failed: %s", exc)
        return closed

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.recheck(self._hub.everyone())
            except Exception:
                log.exception("periodic websocket access re-check failed")
