from __future__ import annotations

import msgspec


class Ok(msgspec.Struct):
    success: bool = True


class ErrorEnvelope(msgspec.Struct):
    error: str
    success: bool = False
    detail: str | None = None
