"""One msgspec encoder for the whole process, and cached typed decoders that enforce the body rules.

Every JSON document the server decodes (request bodies, WebSocket messages) goes through a decoder of this
module, and two rules hold for all of them before msgspec sees a byte:

- nesting deeper than :data:`MAX_DEPTH` levels is refused (:class:`JSONTooDeep`): msgspec would otherwise
  recurse until Python's recursion limit and raise ``RecursionError`` (a 500);
- a string holding U+0000, in a key or a value at any depth, is refused (:class:`JSONHasNUL`): PostgreSQL text
  and jsonb cannot store NUL, so such a value would fail in the driver (a 500) wherever it ended up.

Both errors subclass ``msgspec.ValidationError``, so callers that already turn msgspec errors into a 400 keep
doing so; the request pipeline answers them with their own messages (:data:`TOO_DEEP`, :data:`NUL_MESSAGE`).
The checks are byte scans: the common body (no ``\\u0000`` escape, under 65 brackets) costs two ``count``
calls and one ``in``.
"""

from __future__ import annotations

import re
from functools import cache
from itertools import accumulate
from typing import Any

import msgspec

MAX_DEPTH = 64
TOO_DEEP = f"JSON nested too deeply (max {MAX_DEPTH} levels)"
NUL_MESSAGE = "Request contains invalid characters"
NUL_DETAIL = "NUL character (\\u0000) in a string"

encoder = msgspec.json.Encoder()
encode = encoder.encode


class JSONTooDeep(msgspec.ValidationError):
    pass


class JSONHasNUL(msgspec.ValidationError):
    pass


# A JSON string literal (unrolled loop: fast on long strings); brackets inside strings do not nest.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NUL_ESCAPE = b"\\u0000"
_BACKSLASH = 0x5C


def _too_deep(raw: bytes) -> bool:
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:  # cannot nest deeper than the openers it has
        return False
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return bool(brackets) and max(accumulate(_STEP[b] for b in brackets)) > MAX_DEPTH


def _has_nul(raw: bytes) -> bool:
    """True when ``raw`` holds a ``\\u0000`` escape, i.e. one not itself preceded by an escaping backslash
    (``"\\\\u0000"`` is the harmless six characters ``\\u0000``)."""
    start = raw.find(_NUL_ESCAPE)
    while start >= 0:
        run = start
        while run > 0 and raw[run - 1] == _BACKSLASH:
            run -= 1
        if (start - run) % 2 == 0:  # an even number of backslashes before it: this one escapes
            return True
        start = raw.find(_NUL_ESCAPE, start + 1)
    return False


def check_document(raw: bytes | str) -> None:
    """Raise :class:`JSONTooDeep` / :class:`JSONHasNUL` when ``raw`` breaks the rules above."""
    # A raw NUL byte needs no rule: msgspec refuses unescaped control characters in strings.
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _too_deep(data):
        raise JSONTooDeep(TOO_DEEP)
    if _NUL_ESCAPE in data and _has_nul(data):
        raise JSONHasNUL(NUL_DETAIL)


class CheckedDecoder:
    """``msgspec.json.Decoder`` with :func:`check_document` in front."""

    __slots__ = ("_decode", "type")

    def __init__(self, body_type: Any = Any) -> None:
        self.type = body_type
        self._decode = msgspec.json.Decoder(body_type).decode

    def decode(self, raw: bytes | str) -> Any:
        check_document(raw)
        return self._decode(raw)


@cache
def decoder_for(body_type: Any) -> CheckedDecoder:
    return CheckedDecoder(body_type)


decode_any = decoder_for(Any).decode
