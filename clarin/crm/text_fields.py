"""Validation of user-supplied text columns, so bad input is a 400 and never a database error (500).

Used by the pipeline, tag and quick-reply services: trims, rejects blanks with the route's own message,
enforces the column's ``varchar(n)`` length and rejects NUL characters (PostgreSQL text cannot hold them).
"""

from __future__ import annotations

from clarin.http.errors import HTTPError, check_text

UNBOUNDED = 10**9  # text columns: NUL is still refused


def checked(value: str, field: str, max_len: int | None) -> str:
    return check_text(value, field, UNBOUNDED if max_len is None else max_len)


def required(value: str | None, missing: str, field: str, max_len: int | None, *, strip: bool = True) -> str:
    """A non-blank value (trimmed unless ``strip=False``); blank or missing → ``400 missing``."""
    raw = value or ""
    if not raw.strip():
        raise HTTPError(400, missing)
    return checked(raw.strip() if strip else raw, field, max_len)


def optional(value: str | None, blank: str, field: str, max_len: int | None, *, strip: bool = True) -> str | None:
    """For partial updates: ``None`` (not sent) stays ``None``; a sent value must be non-blank."""
    if value is None:
        return None
    return required(value, blank, field, max_len, strip=strip)
