"""One Redis pub/sub subscription kept alive for a process's lifetime.

Several parts of a worker listen on a channel (WebSocket fan-out, auth invalidations, the webhook subscription
cache) and all need the same care: wait while Redis is down, re-subscribe after a drop, tell the owner when the
channel is live again (what it missed while deaf is unknown) and when it is lost, report a connection failure
once per outage through :meth:`RedisHandle.report_failure`, and never let a broken connection leak.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from clarin.cache.redis_client import CONNECTION_ERRORS

if TYPE_CHECKING:
    from clarin.cache.redis_client import RedisHandle

log = logging.getLogger("clarin.cache")

RETRY_SECONDS = 0.5


async def subscribe_forever(
    redis: RedisHandle,
    channel: str,
    on_message: Callable[[str], Awaitable[None] | None],
    *,
    on_subscribed: Callable[[], None] | None = None,
    on_lost: Callable[[], None] | None = None,
    lost_warning: str = "Redis subscription lost (%s)",
) -> None:
    """Deliver every message of ``channel`` (decoded text) to ``on_message`` until cancelled.

    ``on_subscribed`` runs each time the subscription is (re-)established, ``on_lost`` each time it is not
    (Redis down, dropped, cancelled). ``lost_warning`` (with the exception as its one argument) is logged for
    a failure that is not a connection error; connection errors go to the handle's once-per-outage report."""
    while True:
        if not redis.up:
            if on_lost is not None:
                on_lost()
            await asyncio.sleep(RETRY_SECONDS)
            continue
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(channel)
            if on_subscribed is not None:
                on_subscribed()
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                raw = message["data"]
                handled = on_message(raw.decode() if isinstance(raw, bytes) else str(raw))
                if handled is not None:
                    await handled
        except asyncio.CancelledError:
            if on_lost is not None:
                on_lost()
            await close_quietly(pubsub)
            raise
        except Exception as exc:
            if on_lost is not None:
                on_lost()
            if isinstance(exc, CONNECTION_ERRORS):
                redis.report_failure(exc)  # once per outage; the handle's probe brings Redis back
            else:
                log.warning(lost_warning, exc)
            await close_quietly(pubsub)
            await asyncio.sleep(RETRY_SECONDS)


async def close_quietly(pubsub: Any) -> None:
    try:
        await pubsub.aclose()
    except Exception:
        pass
