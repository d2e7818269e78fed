"""Small input helpers shared by the contacts, events and interactions services.

- ``like_pattern``: a user search term as an ``ILIKE`` pattern with ``%``, ``_`` and ``\\`` escaped
  (PostgreSQL's default LIKE escape is the backslash), NULs dropped; ``check_search``: a list route's trimmed
  search term, refusing 1-2 character terms (400 "search must be at least 3 characters"; the leads, contacts and
  chats lists); ``search_pattern``: both, for the contacts and chats lists.
- UUID parsing: lenient (invalid → ignored) or strict (invalid → 400 with the route's message).
- ``blank_to_none``: optional text columns store NULL instead of ``""`` (so the display-name order,
  the participant unique keys and ``omitempty`` all see "no value").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from clarin.http.errors import HTTPError
from clarin.http.paging import MAX_LIMIT
from clarin.http.request import Request

MAX_OFFSET = 1_000_000_000  # keeps OFFSET inside bigint whatever the client sends
_LIKE_ESCAPES = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


def like_pattern(term: str) -> str:
    """``'%term%'`` with LIKE wildcards in ``term`` matched literally; ``""`` when nothing to search."""
    cleaned = term.strip().translate(_LIKE_ESCAPES)
    return f"%{cleaned}%" if cleaned else ""


MIN_SEARCH = 3  # a trigram index cannot serve a shorter pattern (issue 17): 1-2 characters are a 400
SEARCH_TOO_SHORT = f"search must be at least {MIN_SEARCH} characters"


def check_search(term: str) -> str:
    """A list route's ``search``, trimmed: ``""`` = no search; 1-2 characters → 400 (no index can serve them)."""
    trimmed = term.strip()
    if 0 < len(trimmed) < MIN_SEARCH:
        raise HTTPError(400, SEARCH_TOO_SHORT)
    return trimmed


def search_pattern(term: str) -> str:
    """``like_pattern`` of a list route's ``search``: ``""`` when blank; 1-2 characters after trimming → 400."""
    return like_pattern(check_search(term))


def lenient_uuid(raw: str | None) -> uuid.UUID | None:
    if not raw:
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        return None


def strict_uuid(raw: str | None, message: str) -> uuid.UUID | None:
    """``None``/``""`` → None; a valid UUID → UUID; anything else → ``400 message``."""
    if raw is None or not raw.strip():
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise HTTPError(400, message) from None


def uuid_list(values: list[str], message: str) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    for value in values:
        try:
            out.append(uuid.UUID(value))
        except ValueError:
            raise HTTPError(400, message) from None
    return out


def blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    return value if value.strip() else None


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    offset: int


def list_window(req: Request, default_limit: int, *, non_positive_means_all: bool) -> Window:
    """``limit``/``offset`` for a list route.

    A missing or non-numeric ``limit`` gives ``default_limit``. ``limit<=0`` meant "no limit" on some
    original routes (contacts, events): it now means "as many as allowed" (``MAX_LIMIT``); on the
    others it means the default. Every limit is capped at ``MAX_LIMIT``.
    """
    raw = req.query_str("limit").strip()
    try:
        limit = int(raw) if raw else default_limit
    except ValueError:
        limit = default_limit
    if limit <= 0:
        limit = MAX_LIMIT if non_positive_means_all else default_limit
    offset = min(max(0, req.query_int("offset", 0)), MAX_OFFSET)
    return Window(min(limit, MAX_LIMIT), offset)
