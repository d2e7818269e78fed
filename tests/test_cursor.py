"""The opaque keyset cursor: round-trips its key, refuses anything it did not produce with a 400."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from clarin.http.cursor import decode_cursor, encode_cursor
from clarin.http.errors import HTTPError

KEY = tuple[datetime, uuid.UUID]


def test_round_trip_keeps_microseconds_and_zone() -> None:
    stamp = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    ident = uuid.uuid4()
    text = encode_cursor(stamp, ident)
    assert text.isascii() and "=" not in text and "/" not in text and "+" not in text
    assert decode_cursor(text, KEY) == (stamp, ident)


def test_nullable_and_boolean_parts() -> None:
    shape = tuple[bool, datetime | None, uuid.UUID]
    ident = uuid.uuid4()
    assert decode_cursor(encode_cursor(True, None, ident), shape) == (True, None, ident)


@pytest.mark.parametrize("text", ["", "x", "!!!", "eyJ", encode_cursor(1, 2), encode_cursor("a"), "A" * 600])
def test_anything_else_is_a_400(text: str) -> None:
    with pytest.raises(HTTPError) as caught:
        decode_cursor(text, KEY)
    assert (caught.value.status, caught.value.message) == (400, "Invalid cursor")
