"""Where the Kommo worker status (R111) and the per-account full-sync status (R112) live.

With Redis configured they are Redis values under ``<REDIS_PREFIX>:kommo:…``, so whichever worker process
answers R111/R112 sees what any process did (and a full-sync result survives a restart, for 7 days). Every
write is mirrored in-process; reads fall back to that copy when Redis is not configured or down.

- worker status: a hash (``HSET`` per field, so processes never overwrite each other's fields);
- full-sync status: one JSON document per account, rewritten by the process running that sync, which also
  refreshes ``heartbeat`` every few seconds. A status still ``running`` whose heartbeat is older than
  ``STALE_AFTER`` belonged to a process that died: readers report it as interrupted.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from clarin.cache.redis_client import RedisHandle

FULL_TTL = 7 * 24 * 3600
STALE_AFTER = 30.0
INTERRUPTED = "sync interrupted: the server process running it stopped"

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class StatusStore:
    def __init__(self, redis: RedisHandle | None, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._hashes: dict[str, dict[str, str]] = {}
        self._docs: dict[str, dict[str, Any]] = {}

    def _key(self, name: str) -> str:
        return f"{self._prefix}:kommo:{name}"

    # -- hashes -------------------------------------------------------------------------------------
    async def update(self, name: str, fields: dict[str, str]) -> None:
        self._hashes.setdefault(name, {}).update(fields)
        if self._redis is not None and fields:
            key = self._key(name)

            async def write(r: Any) -> None:
                async with r.pipeline(transaction=False) as pipe:
                    pipe.hset(key, mapping=fields)
                    pipe.expire(key, FULL_TTL)
                    await pipe.execute()

            await self._redis.guard(write, None)

    async def read(self, name: str) -> dict[str, str]:
        if self._redis is not None:
            key = self._key(name)
            raw = await self._redis.guard(lambda r: r.hgetall(key), None)
            if raw:
                return {_text(k): _text(v) for k, v in raw.items()}
        return dict(self._hashes.get(name, {}))

    # -- documents ----------------------------------------------------------------------------------
    async def put(self, name: str, doc: dict[str, Any]) -> None:
        doc = {**doc, "heartbeat": time.time()}
        self._docs[name] = doc
        if self._redis is not None:
            key, body = self._key(name), _encode(doc)
            await self._redis.guard(lambda r: r.set(key, body, ex=FULL_TTL), None)

    async def get(self, name: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = None
        if self._redis is not None:
            key = self._key(name)
            raw = await self._redis.guard(lambda r: r.get(key), None)
            if raw:
                try:
                    doc = _decode(raw)
                except msgspec.DecodeError:
                    doc = None
        if doc is None:
            doc = self._docs.get(name)
        if doc is None:
            return None
        doc = dict(doc)
        if doc.get("running") and time.time() - float(doc.get("heartbeat") or 0) > STALE_AFTER:
            doc["running"] = False
            doc.setdefault("error", INTERRUPTED)
        doc.pop("heartbeat", None)
        return doc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
