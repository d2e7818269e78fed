"""Annotated field types for request bodies.

Lengths mirror the ``varchar(n)`` columns, so oversized input fails body decoding with a 400 instead of reaching
the database. NUL characters need no pattern here: the body decoder (clarin.http.json) refuses them in every
JSON string. Integers carry the range of what they reach — an ``integer``/``bigint`` column, a routed device
call (msgpack cannot carry beyond 64 bits) — so an out-of-range number is a 400 on every worker, never an
overflow (500) on one of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Str20 = Annotated[str, msgspec.Meta(max_length=20)]
Str50 = Annotated[str, msgspec.Meta(max_length=50)]
Str100 = Annotated[str, msgspec.Meta(max_length=100)]
Str255 = Annotated[str, msgspec.Meta(max_length=255)]
Str500 = Annotated[str, msgspec.Meta(max_length=500)]
Text = Annotated[str, msgspec.Meta(max_length=100_000)]
Age = Annotated[int, msgspec.Meta(ge=0, le=200)]
# PostgreSQL integer / bigint.
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# Go's time.Time parser needs an RFC 3339 zone; naive timestamps are a 400, as in the original.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
