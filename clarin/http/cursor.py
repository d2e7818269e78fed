"""Opaque keyset cursors for list routes (``?cursor=`` in, ``"next_cursor"`` out).

A cursor is the sort key of the last row of a page, so the next page is ``WHERE (key) < (cursor)`` on the
list's index: O(page) at any depth, where ``offset`` costs O(offset). The text is base64url of a small JSON
array, opaque to clients (they only hand back what they were given). Decoding validates the shape with
msgspec, so a tampered or truncated cursor is a 400, never a driver error.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from clarin.http.errors import HTTPError

_ENCODER = msgspec.json.Encoder()
MAX_CURSOR_LEN = 512


def encode_cursor(*key: Any) -> str:
    """The cursor for a row whose sort key is ``key`` (datetimes, UUIDs, ints, bools, strings, None)."""
    return base64.urlsafe_b64encode(_ENCODER.encode(key)).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, shape: Any) -> Any:
    """``text`` decoded as ``shape`` (e.g. ``tuple[datetime, uuid.UUID]``); 400 "Invalid cursor" otherwise."""
    if len(text) > MAX_CURSOR_LEN:
        raise HTTPError(400, "Invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=shape)
    except (binascii.Error, ValueError, msgspec.ValidationError, msgspec.DecodeError):
        raise HTTPError(400, "Invalid cursor") from None
