"""Cached totals of paged lists ("N total" under a page), per account and filter.

A page of 50 contacts costs a few index probes; its ``total`` counted every entry of the account that matches the
filter (30k contacts on the seeded large account: the count was most of the request, issue 13). The total is kept
in one Redis hash per account and list (field = the filter's signature) for ``TOTALS_TTL`` seconds, and dropped in
the publish round trip of every event that may have changed what it counts (``dropped_keys``, called by
``PageCache.retirement``), like the leads board's totals (clarin.crm.leads_cache).

A count that overlaps a write may store the total from before it after the event dropped the hash: such a total
lives at most ``TOTALS_TTL`` seconds. Without Redis every lookup misses and the page counts, as before.

Only filtered totals come here: the unfiltered ones are read from the account's counters (0009_account_counters.sql),
exact and O(1), so neither a Redis round trip nor a stale value is needed for them.
"""

from __future__ import annotations

from collections.abc import Iterable

from clarin.cache.cache import Cache
from clarin.cache.scopes import CHATS, CONTACTS

TOTALS_TTL = 30
# list name → the scopes whose changes may change its totals (clarin.cache.scopes). Chats are filtered by their
# contact's tags (contact_tags) and searched by their contact's text (chats.contact_search, rewritten with the contact).
LIST_SCOPES: dict[str, frozenset[str]] = {"contacts": frozenset({CONTACTS}), "chats": frozenset({CHATS, CONTACTS})}


def totals_key(prefix: str, account: object, name: str) -> str:
    return f"{prefix}:totals:{name}:{account}"


def dropped_keys(prefix: str, account: object, scopes: Iterable[str]) -> tuple[str, ...]:
    """The totals hashes to drop after a change to ``scopes``."""
    changed = set(scopes)
    return tuple(totals_key(prefix, account, name) for name, scopes in LIST_SCOPES.items() if scopes & changed)


class Totals:
    def __init__(self, cache: Cache, prefix: str, ttl: int = TOTALS_TTL) -> None:
        self._cache = cache
        self._prefix = prefix
        self._ttl = ttl

    async def get(self, account: object, name: str, signature: str) -> int | None:
        raw = await self._cache.hget(totals_key(self._prefix, account, name), signature)
        return None if raw is None else int(raw)

    async def put(self, account: object, name: str, signature: str, total: int) -> None:
        await self._cache.hset_ttl(totals_key(self._prefix, account, name), signature, total, self._ttl)
