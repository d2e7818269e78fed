"""Wire types of the media routes (R35, R36) and stickers (R31–R34)."""

from __future__ import annotations

import msgspec


class UploadResponse(msgspec.Struct):
    public_url: str
    proxy_url: str
    filename: str
    success: bool = True


class UploadURLResponse(msgspec.Struct):
    upload_url: str
    public_url: str
    filename: str
    success: bool = True


class StickersResponse(msgspec.Struct):
    stickers: list[str]
    success: bool = True


class StickerBody(msgspec.Struct):
    media_url: str = ""
