"""``@cached_read``: serve a GET handler's 200 body from the account's page cache (clarin.cache.pages).

The handler stays as it is; on a miss it runs once (single-flight) and its encoded body is kept until
a change to one of the scopes it reads (``clarin.cache.scopes.READ_SCOPES``, keyed by the handler's
``module.qualname``; a handler not listed there depends on every scope). Every answer carries a strong
ETag (``If-None-Match`` → 304) and, when the client accepts it, the gzip twin of the body (compressed once
per cached body, not per request). ``Cache-Control: private, no-cache``: browsers may keep the body but
must revalidate, and shared caches must not keep one tenant's data at all.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from clarin.cache.pages import CachedBody
from clarin.cache.scopes import read_scopes
from clarin.http.json import encode
from clarin.http.request import Request
from clarin.http.response import JSON_TYPE, Response

Handler = Callable[[Request], Awaitable[Any]]
CACHE_CONTROL = ("cache-control", "private, no-cache")
VARY = ("vary", "Accept-Encoding")


class _NotCacheable(Exception):
    """The handler answered something other than a plain 200 body: pass it through untouched."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def cached_read(handler: Handler) -> Handler:
    scopes = read_scopes(f"{handler.__module__}.{handler.__qualname__}")

    @functools.wraps(handler)
    async def serve(req: Request) -> Any:
        pages = req.app.pages

        async def build() -> bytes:
            result = await handler(req)
            if isinstance(result, Response):
                if result.status != 200 or type(result).send is not Response.send:
                    raise _NotCacheable(result)
                return result.body
            return encode(result)

        key = req.path + "?" + req.query_string
        try:
            entry = await pages.fetch(req.account_id, key, build, scopes)
        except _NotCacheable as exc:
            return exc.response
        if entry is None:  # cache unavailable: answer straight from the handler
            return await handler(req)
        return await cached_response(req, entry)

    return serve


async def cached_response(req: Request, entry: CachedBody) -> Response:
    headers = [JSON_TYPE, ("etag", entry.etag), CACHE_CONTROL, VARY]
    if _matches(req.header("if-none-match"), entry.etag):
        return Response(b"", 304, headers[1:])
    if "gzip" in req.header("accept-encoding"):
        compressed = await entry.gzipped()
        if compressed is not None:
            headers.append(("content-encoding", "gzip"))
            return Response(compressed, 200, headers)
    return Response(entry.body, 200, headers)


def _matches(if_none_match: str, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == etag for candidate in if_none_match.split(","))
