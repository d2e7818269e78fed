"""What the pool knows of a device it runs (:class:`LiveDevice`), the status names, and the answers for a call
on a device no live client serves (``409 device not connected``, ``503 device is reconnecting, retry``).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from clarin.http.errors import HTTPError
from clarin.whatsapp.inbox import DeviceRef

DISCONNECTED, CONNECTING, CONNECTED, LOGGED_OUT = "disconnected", "connecting", "connected", "logged_out"
LIVE_STATUSES = frozenset({CONNECTING, CONNECTED})
NOT_CONNECTED = "device not connected"
RESUMING = "device is reconnecting, retry"


@dataclass
class LiveDevice:
    id: uuid.UUID
    account_id: uuid.UUID
    jid: str = ""
    status: str = CONNECTING
    qr_code: str = ""
    qr_timer: asyncio.Task[None] | None = field(default=None, repr=False)

    def ref(self) -> DeviceRef:
        return DeviceRef(self.id, self.account_id, self.jid)


def resuming_error() -> HTTPError:
    return HTTPError(503, RESUMING, headers=[("retry-after", "1")])


async def set_fields(live: LiveDevice, **fields: str) -> None:
    """Memory follows the committed row, before the event (a ``recording`` on-commit hook)."""
    for name, value in fields.items():
        setattr(live, name, value)


def describe_event(event: Any) -> str:
    """One line of a driver event for the log (protobuf text), at most 300 characters."""
    try:
        from google.protobuf import text_format

        return text_format.MessageToString(event, as_one_line=True)[:300]
    except Exception:
        return ""
