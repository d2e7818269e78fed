"""Paging parameters shared by every list route.

The dashboard often sends no paging parameters and expects the whole list; we keep that, but
every list is still capped (``MAX_LIMIT``) so no request can ask the database for unbounded work.
"""

from __future__ import annotations

from dataclasses import dataclass

from clarin.http.request import Request

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int
    explicit: bool  # the client sent ``limit`` itself


def page_params(req: Request, default_limit: int, max_limit: int = MAX_LIMIT) -> Page:
    """``limit``/``offset`` from the query; a missing or non-positive limit means ``default_limit``."""
    explicit = bool(req.query_str("limit"))
    limit = req.query_int("limit", 0)
    if limit <= 0:
        limit = default_limit
    offset = max(0, req.query_int("offset", 0))
    return Page(min(limit, max_limit), offset, explicit)
