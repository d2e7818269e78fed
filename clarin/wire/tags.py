from __future__ import annotations

from datetime import datetime

import msgspec


class Tag(msgspec.Struct):
    """Tag object (spec §7). Embedded ``structured_tags`` carry real timestamps (the original sent zero times)."""

    id: str
    account_id: str
    name: str
    color: str
    created_at: datetime
    updated_at: datetime
