"""Annotated field types for request bodies of contacts, events, participants and interactions.

Lengths mirror the ``varchar(n)`` columns and NUL characters are refused (PostgreSQL text cannot hold
them), so oversized or malformed input fails body decoding with a 400 instead of reaching the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

_NO_NUL = "^[^\\x00]*$"

Str20 = Annotated[str, msgspec.Meta(max_length=20, pattern=_NO_NUL)]
Str50 = Annotated[str, msgspec.Meta(max_length=50, pattern=_NO_NUL)]
Str100 = Annotated[str, msgspec.Meta(max_length=100, pattern=_NO_NUL)]
Str255 = Annotated[str, msgspec.Meta(max_length=255, pattern=_NO_NUL)]
Str500 = Annotated[str, msgspec.Meta(max_length=500, pattern=_NO_NUL)]
Text = Annotated[str, msgspec.Meta(max_length=100_000, pattern=_NO_NUL)]
Age = Annotated[int, msgspec.Meta(ge=0, le=200)]
# Go's time.Time parser needs an RFC 3339 zone; naive timestamps are a 400, as in the original.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
