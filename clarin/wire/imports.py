from __future__ import annotations

import msgspec


class ImportResponse(msgspec.Struct):
    """R74: ``errors`` is ``null`` when every row was imported."""

    imported: int
    skipped: int
    errors: list[str] | None
    success: bool = True


class ImportedEvent(msgspec.Struct):
    """``lead_update`` / ``contact_update`` data after an import: ``{"action":"imported","count":n}``."""

    action: str
    count: int
