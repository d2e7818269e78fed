"""The ``<REDIS_PREFIX>:leads:<account_id>`` cache (spec §5.3's ``leads:<account_id>``): the exact R37 body, 30 s TTL.

A ``lead_update``, ``pipeline_update`` or ``tag_update`` event drops the board in its publish round trip
(clarin.cache.pages.PageCache.retirement); every other write that can change what ``GET /api/leads`` returns calls
``invalidate_leads`` (contact→lead sync, merges, imports, Kommo, WhatsApp auto-created leads), so the
dashboard never sees a stale board.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarin.cache import leads_key
from clarin.cache.scopes import LEADS, TAGS

if TYPE_CHECKING:
    from clarin.state import AppState

LEADS_TTL_SECONDS = 30


def board_key(state: AppState, account_id: object) -> str:
    return leads_key(state.settings.redis_prefix, account_id)


async def get_cached_leads(state: AppState, account_id: object) -> bytes | None:
    return await state.cache.get(board_key(state, account_id))


async def store_cached_leads(state: AppState, account_id: object, body: bytes) -> None:
    await state.cache.set(board_key(state, account_id), body, LEADS_TTL_SECONDS)


def totals_key(state: AppState, account_id: object) -> str:
    """One Redis hash per account: field = filter signature, value = the page total (dropped with the board)."""
    return board_key(state, account_id) + ":totals"


async def get_cached_total(state: AppState, account_id: object, signature: str) -> int | None:
    raw = await state.cache.hget(totals_key(state, account_id), signature)
    return None if raw is None else int(raw)


async def store_cached_total(state: AppState, account_id: object, signature: str, total: int) -> None:
    await state.cache.hset_ttl(totals_key(state, account_id), signature, total, LEADS_TTL_SECONDS)


async def invalidate_leads(state: AppState, account_id: object) -> None:
    # The board, its totals and the cached pages that show leads (leads, stages, tag names), even for a change
    # that broadcasts nothing (a Kommo connect rewriting stages and tags), in one round trip. What else the
    # caller changed is retired by the event it broadcasts (clarin.cache.scopes.EVENT_SCOPES).
    await state.pages.invalidate(
        account_id, board_key(state, account_id), totals_key(state, account_id), scopes=(LEADS, TAGS)
    )
