"""``broadcast(account_id, event, data)``: the one way features tell dashboards about changes.

With Redis the envelope is published once on a channel every worker (and every node) subscribes
to, and each delivers it to its own sockets. Without Redis, or while it is down, delivery is
in-process only. The envelope is encoded once per broadcast, never per socket; the hub fans it out to
the sockets in slices (``Hub.fan_out``), in publish order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from clarin.cache.redis_client import RedisHandle
from clarin.cache.subscription import subscribe_forever
from clarin.http.json import encode
from clarin.realtime.hub import Hub

if TYPE_CHECKING:
    from clarin.cache.pages import Retirement
    from clarin.webhooks.outbox import Outbox

log = logging.getLogger("clarin.broadcast")

CHANNEL = "clarin:ws"
_SEPARATOR = "|"
# A published message may carry several envelopes of one account: "<account>|\x1e<env>\x1e<env>...".
# JSON escapes every control character, so \x1e never occurs inside an envelope.
_MANY = "\x1e"
MANY_CHUNK = 256  # envelopes per Redis message
# Events that report no stored change (clarin.cache.scopes maps them to no scope: nothing is retired).
EPHEMERAL_EVENTS = frozenset({"typing", "presence", "qr_code", "pong"})
# (account, event names) → what retires the cached reads they may have changed (PageCache.retirement)
Retire = Callable[[str, Iterable[str], Iterable[str]], "Retirement | None"]  # (account, events, unchanged scopes)


def _retire_in(pipe: Any, retire: Retirement) -> Any:
    if retire.gens:
        pipe.mset(retire.gens)
    if retire.drop:
        pipe.unlink(*retire.drop)
    return pipe


def envelope(account_id: str, event: str, data: Any) -> str:
    return encode({"event": event, "account_id": account_id, "data": data}).decode()


class Broadcaster:
    def __init__(
        self, hub: Hub, redis: RedisHandle, channel: str = CHANNEL,
        retire: Retire | None = None,
    ) -> None:
        self.hub = hub
        # The page-cache scopes an event may have changed are retired before (and in the same Redis round
        # trip as) the publish, so a client that re-fetches on the event never gets a cached body from before
        # the change (clarin.cache.pages, clarin.cache.scopes).
        self._retire = retire
        self._redis = redis
        self._channel = channel
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Outgoing webhooks (clarin.webhooks.outbox, set by AppState.build): the outbox rows of an event are
        # written before it goes out, so before the change that caused it is acknowledged.
        self.outbox: Outbox | None = None

    async def start(self) -> None:
        if self._redis.configured:
            self._task = asyncio.create_task(self._subscribe_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    @property
    def cross_process(self) -> bool:
        return self._subscribed.is_set() and self._redis.up

    async def wait_subscribed(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._subscribed.wait()
        except TimeoutError:
            return False
        return True

    async def broadcast(self, account_id: object, event: str, data: Any, *, recorded: bool = False) -> None:
        """``recorded``: the caller already wrote the webhook outbox rows in its own transaction."""
        account = str(account_id)
        if self.outbox is not None and not recorded:
            await self.outbox.record(account, [(event, data)])
        payload = envelope(account, event, data)
        retire = self._retire(account, (event,), ()) if self._retire is not None else None
        if not await self._publish(account + _SEPARATOR + payload, retire):
            self.hub.fan_out(account, [payload])

    async def broadcast_many(self, account_id: object, events: list[tuple[str, Any]], *,
                             recorded: bool = False, unchanged: Iterable[str] = ()) -> None:
        """Several events of one account, delivered in order: one Redis message per chunk instead of one
        per event (bursts of inbound messages). Without Redis they go to this process's sockets.
        ``unchanged``: page-cache scopes the caller knows its write left alone although an event's scopes name
        them (an inbound batch that wrote no contact keeps the cached contacts pages)."""
        account = str(account_id)
        if self.outbox is not None and not recorded:
            await self.outbox.record(account, events)
        payloads = [envelope(account, event, data) for event, data in events]
        retire = (self._retire(account, [event for event, _ in events], unchanged)
                  if self._retire is not None else None)
        for start in range(0, len(payloads), MANY_CHUNK):
            chunk = payloads[start : start + MANY_CHUNK]
            if not await self._publish(account + _SEPARATOR + _MANY + _MANY.join(chunk), retire):
                self.hub.fan_out(account, chunk)
            retire = None  # with the first chunk

    async def _publish(self, message: str, retire: Retirement | None) -> bool:
        """Retire the cached reads, then publish, in one round trip; False: deliver in this process."""
        if not self.cross_process:
            if retire is not None:
                await self._redis.guard(lambda r: _retire_in(r.pipeline(transaction=False), retire).execute(), None)
            return False
        if retire is None:
            return await self._redis.guard(lambda r: r.publish(self._channel, message), None) is not None

        async def _run(r: Any) -> Any:
            pipe = _retire_in(r.pipeline(transaction=False), retire)
            pipe.publish(self._channel, message)
            return (await pipe.execute())[-1]

        return await self._redis.guard(_run, None) is not None

    async def _subscribe_loop(self) -> None:
        await subscribe_forever(
            self._redis, self._channel, self._on_message, on_subscribed=self._subscribed.set,
            on_lost=self._subscribed.clear,
            lost_warning="Redis subscription lost (%s); delivering in-process until it is back",
        )

    async def _on_message(self, text: str) -> None:
        account, _, payload = text.partition(_SEPARATOR)
        self.hub.fan_out(account, payload[1:].split(_MANY) if payload.startswith(_MANY) else [payload])

