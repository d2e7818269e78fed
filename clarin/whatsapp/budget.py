"""One send budget per WhatsApp number (docs/NUMBER_HEALTH.md).

Contract relied on by every sender (manual/API sends, the campaign worker, scheduled messages):

- the outbound send path raises :class:`OverBudget` when the number's budget for that kind of message is
  spent, *before* anything is recorded or sent;
- ``retry_after`` is the number of seconds until the window frees a slot, ``kind`` is ``'cold'`` (a first
  message to a chat with no inbound message yet) or ``'reply'`` (the contact has written to us);
- HTTP handlers need nothing: :class:`OverBudget` is an :class:`~clarin.http.errors.HTTPError` ``429`` with a
  ``Retry-After`` header and ``{"error": "..."}`` body; background senders catch it and wait ``retry_after``
  (they never fail the message because of it). Routed calls (another node runs the device) re-raise it as
  :class:`OverBudget` on the requester too (:mod:`clarin.whatsapp.remote`).
"""

from __future__ import annotations

import math
from typing import Literal

from clarin.http.errors import HTTPError

Kind = Literal["cold", "reply"]
KINDS: tuple[Kind, ...] = ("cold", "reply")


class OverBudget(HTTPError):
    """The device's send budget for ``kind`` is spent; a slot frees in ``retry_after`` seconds."""

    def __init__(self, retry_after: float, kind: Kind, window: str = "") -> None:
        self.retry_after = max(0.0, float(retry_after))
        self.kind: Kind = kind
        self.window = window
        what = "new conversations" if kind == "cold" else "replies"
        per = f" per {window}" if window else ""
        seconds = max(1, math.ceil(self.retry_after))
        super().__init__(
            429, f"send budget for {what}{per} is spent on this number; retry in {seconds} s",
            headers=[("retry-after", str(seconds))],
        )
