"""Cache-aside helpers over Redis: get/set with TTL, delete by key and by prefix.

Without Redis (not configured or down) every call is a cheap no-op and reads miss, so callers
always fall through to PostgreSQL.
"""

from __future__ import annotations

from clarin.cache.redis_client import RedisHandle

SCAN_BATCH = 500


class Cache:
    def __init__(self, redis: RedisHandle) -> None:
        self._redis = redis

    async def get(self, key: str) -> bytes | None:
        return await self._redis.guard(lambda r: r.get(key), None)

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        await self._redis.guard(lambda r: r.set(key, value, ex=ttl_seconds), None)

    async def hget(self, key: str, field: str) -> bytes | None:
        return await self._redis.guard(lambda r: r.hget(key, field), None)

    async def hset_ttl(self, key: str, field: str, value: bytes | str | int, ttl_seconds: int) -> None:
        async def _set(r) -> None:  # type: ignore[no-untyped-def]
            async with r.pipeline(transaction=False) as pipe:
                pipe.hset(key, field, value)
                pipe.expire(key, ttl_seconds)
                await pipe.execute()

        await self._redis.guard(_set, None)

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._redis.guard(lambda r: r.unlink(*keys), None)

    async def delete_prefix(self, prefix: str) -> int:
        async def _delete(r) -> int:  # type: ignore[no-untyped-def]
            removed = 0
            batch: list[bytes] = []
            async for key in r.scan_iter(match=_escape_glob(prefix) + "*", count=SCAN_BATCH):
                batch.append(key)
                if len(batch) >= SCAN_BATCH:
                    removed += await r.unlink(*batch)
                    batch.clear()
            if batch:
                removed += await r.unlink(*batch)
            return removed

        return await self._redis.guard(_delete, 0)


def _escape_glob(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def leads_key(prefix: str, account_id: object) -> str:
    """The board cache (spec §5.3 names it ``leads:<account_id>``), under ``REDIS_PREFIX`` like every key."""
    return f"{prefix}:leads:{account_id}"
