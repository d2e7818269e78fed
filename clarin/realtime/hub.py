"""This process's WebSocket connections, grouped by account, and the fan-out of events to them.

A connection has no task and no queue of its own (at 10k sockets per worker a sender task + ``asyncio.Queue``
each were ~20k objects the loop had to step through per broadcast): ``push`` hands the payload straight to
granian (``send_str`` starts the write in its runtime) when the previous write has finished, and only while one
is still in flight does it queue the payload behind it, in a bounded deque drained by that write's completion
callback. A consumer that falls ``QUEUE_SIZE`` events behind (its TCP buffers are full, so its writes never
finish) is closed with 1013 and counted (``clarin_ws_slow_consumers_closed_total``): it holds at most
``QUEUE_SIZE`` references to payloads every socket shares, never a growing copy.

Fan-out (``fan_out``) goes through one FIFO per process and one task, ``DELIVER_SLICE`` sockets at a time with
a yield to the event loop between slices, so a broadcast to 10k sockets does not hold the loop (HTTP requests
of the same worker get their turn between slices) and every socket still gets events in publish order.

Caps: at most ``max_connections`` sockets in this process and ``max_per_account`` per account (0 = none).
A handshake reserves its slot before it awaits anything (``reserve``), so concurrent handshakes cannot
overshoot a cap, and one tenant cannot take the sockets (file descriptors) every other tenant needs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

from clarin.observability.metrics import WS_SLOW_CLOSED

if TYPE_CHECKING:
    from clarin.auth.tokens import AuthContext

log = logging.getLogger("clarin.ws")

QUEUE_SIZE = 256  # events queued behind a socket's unfinished write before it is closed as too slow
DELIVER_SLICE = 256  # sockets written to between two yields to the event loop
PACE_POLL_S = 0.0005  # how often a fan-out looks whether its slice's writes are done
PACE_MAX_S = 0.02  # longest wait for one slice (a stalled socket's write never finishes)
REFUSED_PROCESS_FULL = 503  # this process holds max_connections sockets: retry (another node/worker)
REFUSED_ACCOUNT_FULL = 429  # this account holds max_per_account sockets here
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013
CLOSE_POLICY_VIOLATION = 1008  # access revoked (granian may send the close frame without the code)


def _failed(write: Any) -> bool:
    try:
        return write.exception() is not None
    except BaseException:  # cancelled
        return True


async def _paced(write: Any) -> None:
    """Between two slices of a fan-out: wait (sleeping, so granian's threads get the GIL) until the slice's last
    write is done, at most ``PACE_MAX_S``. granian runs the writes in order on its runtime, whose queue HTTP
    responses share: a fan-out that queued 10k writes at once held every response of the worker behind them."""
    waited = 0.0
    while write is not None and not write.done() and waited < PACE_MAX_S:
        await asyncio.sleep(PACE_POLL_S)
        waited += PACE_POLL_S
    if waited == 0.0:
        await asyncio.sleep(0)  # still let the loop's ready callbacks (HTTP requests) in


class WSConnection:
    __slots__ = ("account_id", "auth", "closed", "pending", "protocol", "transport", "writing")

    def __init__(self, account_id: str, protocol: Any, transport: Any, auth: AuthContext | None = None) -> None:
        self.account_id = account_id
        self.auth = auth  # the handshake's token: re-checked when its user's access changes
        self.protocol = protocol
        self.transport = transport
        self.writing: Any = None  # granian's awaitable of the last write started
        self.pending: deque[str] | None = None  # payloads waiting for that write to finish (bounded)
        self.closed = False

    def push(self, payload: str) -> bool:
        """Send ``payload`` (or queue it behind the write in flight); False when the socket is (now) closed."""
        if self.closed:
            return False
        if self.pending is not None:  # already waiting on a write: keep the order
            if len(self.pending) >= QUEUE_SIZE:
                log.warning("closing a slow WebSocket consumer of account %s (%d events behind)",
                            self.account_id, len(self.pending))
                WS_SLOW_CLOSED.inc()
                self.close(CLOSE_TRY_AGAIN)
                return False
            self.pending.append(payload)
            return True
        writing = self.writing
        if writing is None or writing.done():
            if writing is not None and _failed(writing):
                self.close(CLOSE_GOING_AWAY)
                return False
            return self._write(payload)
        self.pending = deque((payload,))
        writing.add_done_callback(self._written)
        return True

    def _write(self, payload: str) -> bool:
        try:
            writing = self.transport.send_str(payload)
        except Exception:  # the transport is gone
            self.close(CLOSE_GOING_AWAY)
            return False
        # granian answers with a future already running in its runtime; RSGI only promises an awaitable (a
        # coroutine does nothing until scheduled): make it a task then, so done()/callbacks work the same.
        self.writing = writing if asyncio.isfuture(writing) else asyncio.ensure_future(writing)
        return True

    def _written(self, writing: Any) -> None:
        """The write in flight finished: start the next queued one (its completion calls back here)."""
        pending = self.pending
        if self.closed or pending is None:
            return
        if _failed(writing):
            self.close(CLOSE_GOING_AWAY)
            return
        payload = pending.popleft()
        if not pending:
            self.pending = None
        if self._write(payload) and self.pending is not None:
            self.writing.add_done_callback(self._written)

    def close(self, code: int) -> None:
        """Close from the server side (slow consumer, revoked access, shutdown): drop the queue, send the close."""
        if self.closed:
            return
        self.closed = True
        self.pending = None
        writing = self.writing
        if writing is not None and not writing.done():
            # A write stuck on a full TCP buffer holds the socket's sink: cancelling it lets the close through.
            writing.cancel()
        try:
            self.protocol.close(code)
        except Exception:  # already closed by the peer
            pass

    async def finish(self) -> None:
        """End of the handler: nothing more is written to this socket."""
        self.closed = True
        self.pending = None


class Hub:
    def __init__(self, *, max_connections: int = 0, max_per_account: int = 0) -> None:
        self.max_connections = max_connections
        self.max_per_account = max_per_account
        self._by_account: dict[str, set[WSConnection]] = defaultdict(set)
        self._by_user: dict[uuid.UUID, set[WSConnection]] = defaultdict(set)
        self._count = 0
        self._reserved: dict[str, int] = defaultdict(int)
        self._reserved_total = 0
        self._fan_out: deque[tuple[str, list[str]]] = deque()  # (account, payloads) in publish order
        self._fan_out_task: asyncio.Task[None] | None = None

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
        """Push ``payload`` to every socket of the account now, in one go; the number that took it."""
        delivered = 0
        for conn in tuple(self._by_account.get(account_id, ())):
            if conn.push(payload):
                delivered += 1
            else:
                self.unregister(conn)
        return delivered

    def fan_out(self, account_id: str, payloads: list[str]) -> None:
        """Queue ``payloads`` for every socket of the account; delivered in order by one task per process,
        a slice of sockets at a time (see the module docstring). Without a running loop: at once."""
        if not payloads or account_id not in self._by_account:
            return
        self._fan_out.append((account_id, payloads))
        if self._fan_out_task is None or self._fan_out_task.done():
            try:
                self._fan_out_task = asyncio.get_running_loop().create_task(self._drain_fan_out())
            except RuntimeError:
                while self._fan_out:
                    account, queued = self._fan_out.popleft()
                    for payload in queued:
                        self.deliver(account, payload)

    async def _drain_fan_out(self) -> None:
        while self._fan_out:
            account, payloads = self._fan_out.popleft()
            conns = tuple(self._by_account.get(account, ()))
            for payload in payloads:
                for start in range(0, len(conns), DELIVER_SLICE):
                    last = None
                    for conn in conns[start : start + DELIVER_SLICE]:
                        if conn.push(payload):
                            last = conn.writing
                        else:
                            self.unregister(conn)
                    if len(conns) > DELIVER_SLICE:
                        await _paced(last)

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
