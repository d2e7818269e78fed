"""This process's WebSocket connections, grouped by account.

Each connection owns a bounded queue and one sender task, so a slow consumer only fills its own
queue; when it is full the connection is dropped and nobody else waits.

Caps: at most ``max_connections`` sockets in this process and ``max_per_account`` per account (0 = none).
A handshake reserves its slot before it awaits anything (``reserve``), so concurrent handshakes cannot
overshoot a cap, and one tenant cannot take the sockets (file descriptors) every other tenant needs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clarin.auth.tokens import AuthContext

log = logging.getLogger("clarin.ws")

QUEUE_SIZE = 256
REFUSED_PROCESS_FULL = 503  # this process holds max_connections sockets: retry (another node/worker)
REFUSED_ACCOUNT_FULL = 429  # this account holds max_per_account sockets here
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY_VIOLATION = 1008  # access revoked (granian may send the close frame without the code)


class WSConnection:
    __slots__ = ("account_id", "auth", "closed", "protocol", "queue", "sender", "transport")

    def __init__(self, account_id: str, protocol: Any, transport: Any, auth: AuthContext | None = None) -> None:
        self.account_id = account_id
        self.auth = auth  # the handshake's token: re-checked when its user's access changes
        self.protocol = protocol
        self.transport = transport
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.closed = False
        self.sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        try:
            while True:
                payload = await self.queue.get()
                await self.transport.send_str(payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.close(CLOSE_GOING_AWAY)

    def push(self, payload: str) -> bool:
        if self.closed:
            return False
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("dropping slow WebSocket consumer of account %s", self.account_id)
            self.close(CLOSE_TRY_AGAIN)
            return False
        return True

    def close(self, code: int) -> None:
        """Close from the server side (slow consumer, shutdown): cancel the sender, send the close frame."""
        if self.closed:
            return
        self.closed = True
        self.sender.cancel()
        try:
            self.protocol.close(code)
        except Exception:  # already closed by the peer
            pass

    async def finish(self) -> None:
        """End of the handler: the sender task must be gone (not just cancelled) before the protocol
        closes, or granian waits for it and the client's close handshake hangs until its timeout."""
        self.closed = True
        self.sender.cancel()
        try:
            await self.sender
        except (asyncio.CancelledError, Exception):
            pass


class Hub:
    def __init__(self, *, max_connections: int = 0, max_per_account: int = 0) -> None:
        self.max_connections = max_connections
        self.max_per_account = max_per_account
        self._by_account: dict[str, set[WSConnection]] = defaultdict(set)
        self._by_user: dict[uuid.UUID, set[WSConnection]] = defaultdict(set)
        self._count = 0
        self._reserved: dict[str, int] = defaultdict(int)
        self._reserved_total = 0

    def reserve(self, account_id: str) -> int:
        """Hold a socket slot for a handshake: 0, or the HTTP status refusing it (a cap is reached). A held
        slot is released by ``register`` or, when the handshake fails, by ``release``."""
        if self.max_connections and self._count + self._reserved_total >= self.max_connections:
            return REFUSED_PROCESS_FULL
        if self.max_per_account and (len(self._by_account.get(account_id, ())) + self._reserved.get(account_id, 0)
                                     >= self.max_per_account):
            return REFUSED_ACCOUNT_FULL
        self._reserved[account_id] += 1
        self._reserved_total += 1
        return 0

    def release(self, account_id: str) -> None:
        left = self._reserved.get(account_id, 0) - 1
        if left < 0:
            return
        self._reserved_total -= 1
        if left:
            self._reserved[account_id] = left
        else:
            del self._reserved[account_id]

    def register(
        self, account_id: str, protocol: Any, transport: Any, auth: AuthContext | None = None, *, reserved: bool = False
    ) -> WSConnection:
        if reserved:
            self.release(account_id)
        conn = WSConnection(account_id, protocol, transport, auth)
        self._by_account[account_id].add(conn)
        self._count += 1
        if auth is not None:
            self._by_user[auth.user_id].add(conn)
        return conn

    def unregister(self, conn: WSConnection, *, close: bool = True) -> None:
        conns = self._by_account.get(conn.account_id)
        if conns is not None and conn in conns:
            conns.discard(conn)
            self._count -= 1
            if not conns:
                del self._by_account[conn.account_id]
        if conn.auth is not None:
            mine = self._by_user.get(conn.auth.user_id)
            if mine is not None:
                mine.discard(conn)
                if not mine:
                    del self._by_user[conn.auth.user_id]
        if close:
            conn.close(CLOSE_GOING_AWAY)

    def deliver(self, account_id: str, payload: str) -> int:
        delivered = 0
        for conn in tuple(self._by_account.get(account_id, ())):
            if conn.push(payload):
                delivered += 1
            else:
                self.unregister(conn)
        return delivered

    def of_user(self, user_id: uuid.UUID) -> list[WSConnection]:
        return list(self._by_user.get(user_id, ()))

    def of_account(self, account_id: str) -> list[WSConnection]:
        return list(self._by_account.get(account_id, ()))

    def everyone(self) -> list[WSConnection]:
        return [conn for conns in self._by_account.values() for conn in conns]

    def connection_count(self) -> int:
        return self._count

    def account_connection_count(self, account_id: str) -> int:
        """Open connections of one account held by this process (R114 ``ws_clients``)."""
        return len(self._by_account.get(account_id, ()))

    def close_all(self, code: int = CLOSE_GOING_AWAY) -> None:
        for conns in list(self._by_account.values()):
            for conn in list(conns):
                self.unregister(conn)
                conn.close(code)
