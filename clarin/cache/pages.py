"""Encoded response bodies of hot account-scoped reads, retired by the changes that can affect them.

Why generations, not a key per page: a write cannot know every page, filter and search that shows the row
it changed. Every committed change already broadcasts a WebSocket event to the account (docs/EVENTS.md), so
the broadcaster moves the *scopes* that event may have changed (clarin.cache.scopes: leads, contacts, tags,
chats, messages, devices) to new generations before it publishes, and every cached body built from an older
generation of one of those scopes stops matching at once. A read is keyed by the generations of every scope
its body depends on (a chat page: chats, contacts, devices), so an inbound message retires the chat and
message pages but not the leads pages. An unknown event, and a direct ``invalidate`` without scopes, retire
every scope of the account.

Layers, fastest first:
  * L1 — this process's LRU: ``(account, key) → entry`` holding the generation it was built under;
  * L2 — one Redis hash per account and generation, shared by the workers (TTL ``ttl``);
  * the builder (the route handler), single-flight per process so a miss is built once.

Each read costs one Redis round trip (``MGET epoch gen:<scope>…`` for its scopes) to learn the current
generation, which is what keeps a worker from serving a body another worker's write made stale
(read-your-writes across workers). Generations are random tokens, never counters: a gen key lost in a Redis
restart or eviction comes back as a new token that no old entry matches. While Redis is down nothing is
cached (writes could not announce themselves), and when it comes back the process moves everyone to a new
*epoch*, which retires every entry built before the outage, including other processes' L1 entries.

Keys (``<p>`` = ``REDIS_PREFIX``): ``<p>:pc:epoch``, ``<p>:pc:gen:<account>:<scope>``, ``<p>:pc:<account>:<generation>``
(the L2 hash; field = request path and query).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from clarin.cache.cache import leads_key
from clarin.cache.redis_client import RedisHandle
from clarin.cache.scopes import ALL, changed_scopes, drops_board, read_scopes
from clarin.cache.totals import dropped_keys

log = logging.getLogger("clarin.cache.pages")

GZIP_MIN_BYTES = 1024  # below this gzip saves nothing worth a header
GZIP_LEVEL = 6
GZIP_OFF_LOOP_BYTES = 256 * 1024  # bigger bodies are compressed in a thread (zlib releases the GIL) ...
GZIP_OFF_LOOP_LEVEL = 9  # ... and harder: once per body, ~9 % fewer bytes for every client of the board
_DOWN = object()


@dataclass(frozen=True, slots=True)
class Retirement:
    """Keys to write (``gens``: gen key → new token, one MSET) and keys to drop (``drop``: one UNLINK)."""

    gens: dict[str, str]
    drop: tuple[str, ...] = ()


class CachedBody:
    """One encoded 200 body, its validator, and its gzip twin (made on first demand, once)."""

    __slots__ = ("_gzip", "_gzipping", "body", "etag", "expires")

    def __init__(self, body: bytes, expires: float) -> None:
        self.body = body
        self.etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        self.expires = expires
        self._gzip: bytes | None = None
        self._gzipping: asyncio.Future[bytes] | None = None

    async def gzipped(self) -> bytes | None:
        if len(self.body) < GZIP_MIN_BYTES:
            return None
        if self._gzip is None:
            if len(self.body) < GZIP_OFF_LOOP_BYTES:
                self._gzip = gzip.compress(self.body, GZIP_LEVEL, mtime=0)
            else:  # the 10k-lead board takes ~0.2 s: never on the event loop, and only once
                if self._gzipping is None:
                    self._gzipping = asyncio.ensure_future(
                        asyncio.to_thread(gzip.compress, self.body, GZIP_OFF_LOOP_LEVEL, mtime=0)
                    )
                self._gzip = await asyncio.shield(self._gzipping)
        return self._gzip


def _token() -> str:
    return os.urandom(8).hex()


class PageCache:
    def __init__(
        self, redis: RedisHandle, prefix: str, ttl: float = 60.0, l1_entries: int = 4096,
        l1_bytes: int = 128 * 1024 * 1024,
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:pc"
        self._board_prefix = prefix
        self._epoch_key = f"{self._prefix}:epoch"
        self.ttl = ttl
        self._l1: OrderedDict[tuple[str, str], tuple[str, CachedBody]] = OrderedDict()
        self._l1_entries = l1_entries
        self._l1_bytes = l1_bytes
        self._l1_size = 0
        self._building: dict[tuple[str, str, str], asyncio.Future[CachedBody]] = {}
        self.enabled = ttl > 0 and redis.configured
        # local = this worker's copy, shared = from Redis, built = the handler ran, bypass = no cache now
        self.lookups = {"local": 0, "shared": 0, "built": 0, "bypass": 0}
        redis.on_state_change(self._redis_state_changed)
        self._new_epoch_pending = False

    # -- keys -------------------------------------------------------------------------------------
    def _gen_key(self, account: str, scope: str) -> str:
        return f"{self._prefix}:gen:{account}:{scope}"

    def _hash_key(self, account: str, generation: str) -> str:
        return f"{self._prefix}:{account}:{generation}"

    # -- generation -------------------------------------------------------------------------------
    async def generation(self, account: str, scopes: tuple[str, ...] = ALL) -> str | None:
        """The ``epoch/gen/gen…`` token of the account's ``scopes`` (in this order); ``None`` when the cache
        must be bypassed."""
        if not self.enabled:
            return None
        if self._new_epoch_pending:
            await self._start_new_epoch()
        keys = [self._epoch_key, *(self._gen_key(account, scope) for scope in scopes)]
        found = await self._redis.guard(lambda r: r.mget(keys), _DOWN)
        if found is _DOWN or not self._redis.up:
            return None
        if None in found:  # type: ignore[operator]
            # First use (or lost in a Redis restart): create them; SET NX keeps a concurrent creator's.
            async def _create(r: Any) -> list[Any]:
                async with r.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.set(key, _token(), nx=True)
                    pipe.mget(keys)
                    return await pipe.execute()

            created = await self._redis.guard(_create, _DOWN)
            if created is _DOWN:
                return None
            found = created[-1]  # type: ignore[index]
            if None in found:  # type: ignore[operator]
                return None
        return "/".join(_text(value) for value in found)  # type: ignore[union-attr]

    def retirement(self, account: str, events: Iterable[str], unchanged: Iterable[str] = ()) -> Retirement | None:
        """What retires everything ``events`` may have changed, for the caller to send with its publish (the
        broadcaster: one round trip): the scopes' gen keys → new tokens, and the board cache keys after a
        leads/pipeline/tag event (``scopes.BOARD_EVENTS``: a lead write then needs no separate
        ``invalidate_leads``); ``None``: nothing to do. ``unchanged``: scopes the writer knows it did not touch
        (never the board: only lead events drop it, and their writers pass nothing here)."""
        events = list(events)
        scopes = changed_scopes(events) - frozenset(unchanged)
        gens = self._retire_keys(account, scopes) if self.enabled and scopes else {}
        drop = self._board_keys(account) if drops_board(events) else ()
        drop += dropped_keys(self._board_prefix, account, scopes)  # cached list totals (clarin.cache.totals)
        return Retirement(gens, drop) if gens or drop else None

    def _board_keys(self, account: str) -> tuple[str, str]:
        board = leads_key(self._board_prefix, account)
        return board, board + ":totals"  # clarin.crm.leads_cache

    def _retire_keys(self, account: str, scopes: Iterable[str]) -> dict[str, str]:
        token = _token()  # one new token for all: each key only needs a value it never had
        return {self._gen_key(account, scope): token for scope in sorted(set(scopes))}

    async def invalidate(self, account_id: object, *also_delete: str, scopes: Iterable[str] = ALL) -> None:
        """Retire the account's cached bodies that depend on ``scopes`` (default: all; call after the change
        committed); ``also_delete`` names other keys of the same change, dropped in the same round trip."""
        retire = self._retire_keys(str(account_id), scopes) if self.enabled else None
        if not retire:
            if also_delete:
                await self._redis.guard(lambda r: r.unlink(*also_delete), None)
            return
        if not also_delete:
            await self._redis.guard(lambda r: r.mset(retire), None)
            return

        async def _run(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.mset(retire)
                pipe.unlink(*also_delete)
                await pipe.execute()

        await self._redis.guard(_run, None)

    # -- read through -----------------------------------------------------------------------------
    async def fetch(
        self, account_id: object, key: str, build: Callable[[], Awaitable[bytes]],
        scopes: tuple[str, ...] | None = None,
    ) -> CachedBody | None:
        """The cached body for ``key`` of the account, built by ``build`` on a miss. ``scopes``: what the body
        depends on, sorted (default: ``clarin.cache.scopes.read_scopes(key)``, every scope for an unlisted
        key). ``None`` means "not cacheable right now" (Redis absent or down): the caller answers uncached."""
        account = str(account_id)
        generation = await self.generation(account, read_scopes(key) if scopes is None else scopes)
        if generation is None:
            self.lookups["bypass"] += 1
            return None
        now = time.monotonic()
        local = self._l1.get((account, key))
        if local is not None and local[0] == generation and local[1].expires > now:
            self._l1.move_to_end((account, key))
            self.lookups["local"] += 1
            return local[1]
        flight = (account, key, generation)
        pending = self._building.get(flight)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedBody] = asyncio.get_running_loop().create_future()
        self._building[flight] = future
        try:
            entry = await self._load_or_build(account, key, generation, build)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else waited
            raise
        finally:
            self._building.pop(flight, None)

    async def _load_or_build(
        self, account: str, key: str, generation: str, build: Callable[[], Awaitable[bytes]]
    ) -> CachedBody:
        hash_key = self._hash_key(account, generation)
        shared = await self._redis.guard(lambda r: r.hget(hash_key, key), None)
        expires = time.monotonic() + self.ttl
        if shared is not None:
            self.lookups["shared"] += 1
            entry = CachedBody(shared, expires)
        else:
            self.lookups["built"] += 1
            body = await build()
            entry = CachedBody(body, expires)

            async def _store(r: Any) -> None:
                async with r.pipeline(transaction=False) as pipe:
                    pipe.hset(hash_key, key, body)
                    pipe.expire(hash_key, int(self.ttl) + 1)
                    await pipe.execute()

            await self._redis.guard(_store, None)
        self._remember(account, key, generation, entry)
        return entry

    # -- L1 bookkeeping ---------------------------------------------------------------------------
    def _remember(self, account: str, key: str, generation: str, entry: CachedBody) -> None:
        if len(entry.body) > self._l1_bytes // 4:
            return  # one giant body must not evict everything else
        old = self._l1.pop((account, key), None)
        if old is not None:
            self._l1_size -= len(old[1].body)
        self._l1[(account, key)] = (generation, entry)
        self._l1_size += len(entry.body)
        while self._l1 and (len(self._l1) > self._l1_entries or self._l1_size > self._l1_bytes):
            _, (_, evicted) = self._l1.popitem(last=False)
            self._l1_size -= len(evicted.body)

    def clear_local(self) -> None:
        self._l1.clear()
        self._l1_size = 0

    # -- Redis outages ----------------------------------------------------------------------------
    def _redis_state_changed(self, up: bool) -> None:
        # Writes made while Redis was unreachable could not retire anything: when it is back, retire
        # everything built before (a new epoch), here and — through the shared key — in every process.
        self.clear_local()
        if up:
            self._new_epoch_pending = True

    async def _start_new_epoch(self) -> None:
        self._new_epoch_pending = False
        done = await self._redis.guard(lambda r: r.set(self._epoch_key, _token()), _DOWN)
        if done is _DOWN:
            self._new_epoch_pending = True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
