"""Kommo API v4 client (spec integrations.md A.2–A.4, A.19) on one ``httpx.AsyncClient``.

- ``GET`` only, ``Authorization: Bearer <token>``, a timeout on every call (``KOMMO_TIMEOUT``, 30 s).
- Every request, retries included, first waits for a slot of the shared :class:`RateLimiter`.
- Retries with exponential back-off and full jitter on 429, 5xx, timeouts, transport errors and
  bodies that are not JSON; ``Retry-After`` (seconds or HTTP date) is honoured and also pauses every
  other caller through the limiter. ``KOMMO_MAX_RETRIES`` retries, then :class:`KommoError`.
- 401 raises :class:`KommoAuthError` at once (no retry); 204 is an empty page; any other status is a
  :class:`KommoError` whose text matches the original (``kommo API <path> returned <code>: <body>``).
- Paging: ``page=1,2,…`` with ``limit=250`` while the page is non-empty and ``_links.next`` is present.
- Contacts of a page of leads are fetched in bulk (``GET /contacts?filter[id][]=…``, ≤ 100 ids per call)
  instead of one ``GET /contacts/{id}`` per lead (A.19: "consider caching contacts"): 250 leads cost
  1 + 3 requests instead of 251.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import msgspec

from clarin.kommo.limiter import RateLimiter

log = logging.getLogger("clarin.kommo.client")

API_PREFIX = "/api/v4"
PAGE_LIMIT = 250
CONTACT_BATCH = 100
MAX_PAGES = 10_000
MAX_RETRY_AFTER = 300.0
BODY_EXCERPT = 300

_decode = msgspec.json.Decoder().decode


class KommoError(Exception):
    """A Kommo call failed (after retries where they apply). ``status`` is the HTTP status, 0 for transport."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KommoAuthError(KommoError):
    """Kommo refused the access token (401): retrying cannot help."""


class _Retryable(Exception):
    def __init__(self, error: KommoError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class KommoClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        limiter: RateLimiter,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.max_retries = max_retries
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.timeout = timeout
        self._rng = random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url + API_PREFIX,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                     "Accept": "application/json", "User-Agent": "clarin-kommo/1"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints (A.3) ------------------------------------------------------------------------------
    async def account(self, retries: int | None = None) -> dict[str, Any]:
        data = await self.get("/account", retries=retries)
        if not isinstance(data, dict):
            raise KommoError("kommo API /account returned no account")
        return data

    async def pipelines(self, retries: int | None = None) -> list[Any]:
        data = await self.get("/leads/pipelines", retries=retries)
        return _embedded_list(data, "pipelines")

    async def lead_pages(self, pipeline_id: int, updated_since: int | None) -> AsyncIterator[list[Any]]:
        """Raw lead items of one pipeline, page by page (``updated_since`` = unix seconds, None = all)."""
        params: list[tuple[str, str | int]] = [("with", "contacts"), ("filter[pipeline_id][]", pipeline_id)]
        if updated_since is not None and updated_since > 0:
            params.append(("filter[updated_at][from]", updated_since))
        async for items in self._pages("/leads", params, "leads"):
            yield items

    async def lead_tags(self) -> list[Any]:
        tags: list[Any] = []
        async for items in self._pages("/leads/tags", [], "tags"):
            tags.extend(items)
        return tags

    async def contacts_by_ids(self, ids: Iterable[int]) -> list[Any]:
        unique = list(dict.fromkeys(ids))
        found: list[Any] = []
        for start in range(0, len(unique), CONTACT_BATCH):
            chunk = unique[start:start + CONTACT_BATCH]
            params: list[tuple[str, str | int]] = [("limit", PAGE_LIMIT)]
            params.extend(("filter[id][]", cid) for cid in chunk)
            found.extend(_embedded_list(await self.get("/contacts", params), "contacts"))
        return found

    async def contact(self, contact_id: int) -> dict[str, Any] | None:
        data = await self.get(f"/contacts/{int(contact_id)}")
        return data if isinstance(data, dict) else None

    # -- transport ------------------------------------------------------------------------------------
    async def _pages(
        self, path: str, params: list[tuple[str, str | int]], key: str
    ) -> AsyncIterator[list[Any]]:
        for page in range(1, MAX_PAGES + 1):
            data = await self.get(path, [("page", page), ("limit", PAGE_LIMIT), *params])
            items = _embedded_list(data, key)
            if not items:
                return
            yield items
            links = data.get("_links") if isinstance(data, dict) else None
            if not isinstance(links, dict) or not links.get("next"):
                return
        log.warning("kommo paging of %s stopped after %d pages", path, MAX_PAGES)

    async def get(
        self, path: str, params: list[tuple[str, str | int]] | None = None, *, retries: int | None = None
    ) -> Any:
        """GET ``path`` (below /api/v4) → decoded JSON, or ``None`` for 204 No Content."""
        max_retries = self.max_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                return await self._get_once(path, params)
            except _Retryable as retry:
                if attempt >= max_retries:
                    raise retry.error from None
                delay = self._backoff(attempt)
                if retry.retry_after is not None:
                    delay = max(delay, retry.retry_after)
                    await self.limiter.penalize(retry.retry_after)
                attempt += 1
                log.info("kommo %s: %s; retry %d/%d in %.2fs", path, retry.error, attempt, max_retries, delay)
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retry_max, self.retry_base * (2 ** attempt))
        return self._rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never 0, never above the ceiling

    async def _get_once(self, path: str, params: list[tuple[str, str | int]] | None) -> Any:
        await self.limiter.acquire()
        shown = _shown(path, params)
        try:
            async with asyncio.timeout(self.timeout):  # the whole exchange, body included (A.2)
                response = await self._http.get(path, params=params)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise _Retryable(KommoError(f"kommo request failed: {shown}: timeout ({type(exc).__name__})")) from exc
        except httpx.HTTPError as exc:
            raise _Retryable(KommoError(f"kommo request failed: {shown}: {exc!s}")) from exc
        status = response.status_code
        if status == 204:
            return None
        if status == 200:
            try:
                return _decode(response.content) if response.content.strip() else None
            except msgspec.DecodeError as exc:
                raise _Retryable(KommoError(f"kommo API {shown} returned malformed JSON: {exc}", 200)) from exc
        error_text = f"kommo API {shown} returned {status}: {response.text[:BODY_EXCERPT]}"
        if status == 401:
            raise KommoAuthError(error_text, status)
        if status == 429 or status >= 500:
            raise _Retryable(KommoError(error_text, status), _retry_after(response.headers.get("retry-after")))
        raise KommoError(error_text, status)


def _embedded_list(data: Any, key: str) -> list[Any]:
    if not isinstance(data, dict):
        return []
    embedded = data.get("_embedded")
    if not isinstance(embedded, dict):
        return []
    items = embedded.get(key)
    return items if isinstance(items, list) else []


def _shown(path: str, params: list[tuple[str, str | int]] | None) -> str:
    if not params:
        return path
    shown = path + "?" + "&".join(f"{k}={v}" for k, v in params)
    return shown if len(shown) <= 200 else shown[:197] + "..."



def _retry_after(raw: str | None) -> float | None:
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
