"""Take-over on a peer's death, event-driven: wake the device pool's scan the moment another process's
device-lease session ends, instead of waiting for the periodic scan (``WHATSAPP_LEASE_RENEW``, 10 s).

Every process that runs devices holds one extra advisory lock on its lease session, its *node key* in a
key space of its own (``NODE_SPACE``; clarin.whatsapp.lease). The lock ends exactly when that session
ends — with the process (crash, SIGKILL, OOM) or its connection — which is also when its device leases
end. A watcher here blocks on a shared lock of a peer's node key on a connection of its own; PostgreSQL
grants it the instant the peer's session is gone, and the watcher wakes the scan. The claim still waits
out ``CLAIM_GRACE`` (clarin.whatsapp.claims): the holder may be alive and stopping its clients.

Each process watches at most ``MAX_WATCHED`` peers, the next ones after its own key in key order (a ring),
so the cluster holds at most that many waiting connections per process, and every process is watched by
several others (a whole node dying at once still leaves a watcher alive; any woken scan claims every
unleased device, not only the dead peer's). A watcher that fails (PostgreSQL restarting) is started again
by the next scan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psqlpy

from clarin.db.queries import query

log = logging.getLogger("clarin.whatsapp.peers")

NODE_SPACE = 0x434C4E44  # "CLND": advisory key space of the node keys (two-int form, fits an int4)
MAX_WATCHED = 4
CONNECT_TIMEOUT = 5

Q_CHECK_CLIENT = query("advisory_check_client")
Q_WAIT_RELEASED = query("advisory_wait_released")


def ring_successors(me: int, peers: set[int], count: int = MAX_WATCHED) -> list[int]:
    """The ``count`` peers after ``me`` in key order, wrapping around."""
    ordered = sorted(peers - {me})
    after = [p for p in ordered if p > me] + [p for p in ordered if p < me]
    return after[:count]


class PeerWatch:
    def __init__(self, dsn: str, on_gone: Callable[[int], None], space: int = NODE_SPACE) -> None:
        self._dsn = dsn
        self._on_gone = on_gone
        self._space = space
        self._watchers: dict[int, asyncio.Task[None]] = {}

    @property
    def watched(self) -> set[int]:
        return set(self._watchers)

    def watch(self, me: int, peers: set[int]) -> None:
        """Watch ``me``'s ring successors among ``peers`` (the live node keys); stop watching the others."""
        wanted = set(ring_successors(me, peers))
        for peer in set(self._watchers) - wanted:
            self._watchers.pop(peer).cancel()
        for peer in wanted - set(self._watchers):
            self._watchers[peer] = asyncio.create_task(self._wait(peer), name=f"whatsapp-peer-watch-{peer}")

    async def _wait(self, peer: int) -> None:
        pool = psqlpy.ConnectionPool(dsn=self._dsn, max_db_pool_size=2, connect_timeout_sec=CONNECT_TIMEOUT,
                                     application_name="clarin-peer-watch")
        try:
            conn = await pool.connection()
            await conn.execute(Q_CHECK_CLIENT)
            await conn.execute(Q_WAIT_RELEASED, [self._space, peer])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # PostgreSQL restarting or unreachable: the next scan starts a new watcher
            log.info("watching device-lease peer %d stopped: %s", peer, exc)
            return
        finally:
            if self._watchers.get(peer) is asyncio.current_task():
                del self._watchers[peer]
            pool.close()
        log.info("device-lease peer %d ended its session: scanning for its devices now", peer)
        self._on_gone(peer)

    async def stop(self) -> None:
        tasks = list(self._watchers.values())
        self._watchers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
