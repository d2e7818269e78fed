"""Kommo v4 payload shapes (A.4) and the per-item text rules of the sync (A.10–A.14): pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from clarin._speedups import is_phone
from clarin._speedups.phone_pure import GO_WHITESPACE

CLOSED_STATUSES = frozenset({142, 143})  # "closed – won" / "closed – lost": never stages (A.8)
DEFAULT_COLOR = "#6366f1"
MAX_REPORTED = 20
TAG_SEPARATOR = "\x1f"
# Column widths (0001_schema.sql)
NAME_MAX, PHONE_MAX, EMAIL_MAX, TAG_MAX, STAGE_COLOR_MAX, JID_MAX = 255, 50, 255, 100, 50, 255


# -- Kommo shapes (A.4; unknown fields ignored) ---------------------------------------------------------
class KTag(msgspec.Struct):
    id: int | None = None
    name: str | None = None


class KRef(msgspec.Struct):
    id: int
    is_main: bool | None = None


class KLeadEmbedded(msgspec.Struct):
    tags: list[KTag] | None = None
    contacts: list[KRef] | None = None


class KLead(msgspec.Struct):
    id: int
    name: str | None = None
    status_id: int | None = None
    pipeline_id: int | None = None
    updated_at: int | None = None
    embedded: KLeadEmbedded | None = msgspec.field(default=None, name="_embedded")


class KValue(msgspec.Struct):
    value: Any = None


class KField(msgspec.Struct):
    field_code: str | None = None
    values: list[KValue] | None = None


class KContactEmbedded(msgspec.Struct):
    tags: list[KTag] | None = None


class KContact(msgspec.Struct):
    id: int
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    custom_fields_values: list[KField] | None = None
    embedded: KContactEmbedded | None = msgspec.field(default=None, name="_embedded")


class KStatus(msgspec.Struct):
    id: int
    name: str | None = None
    color: str | None = None


class KPipelineEmbedded(msgspec.Struct):
    statuses: list[KStatus] | None = None


class KPipeline(msgspec.Struct):
    id: int
    name: str | None = None
    is_main: bool | None = None
    embedded: KPipelineEmbedded | None = msgspec.field(default=None, name="_embedded")


# -- small text rules ---------------------------------------------------------------------------------
def clip(value: str | None, limit: int) -> str:
    """Text as PostgreSQL can store it: no NUL, at most ``limit`` characters."""
    if not value:
        return ""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit]


def clean_quotes(value: str | None) -> str:
    """A.14: strip outer (Go) whitespace, then drop ONE leading apostrophe."""
    text = (value or "").strip(GO_WHITESPACE)
    return text[1:] if text.startswith("'") else text


def custom_field(fields: list[KField] | None, code: str) -> str:
    """A.12: first value of the first field with exactly this code whose first value is a JSON string."""
    for item in fields or ():
        if item.field_code != code or not item.values:
            continue
        value = item.values[0].value
        if isinstance(value, str):
            return value
    return ""


def phone_jid(phone: str) -> str:
    """The WhatsApp JID of a normalised phone, or "" when it is not one (the phone rule of clarin.crm.phones)."""
    return phone + "@s.whatsapp.net" if is_phone(phone) else ""


def lead_placeholder(kommo_id: int) -> str:
    return f"kommo_{kommo_id}@kommo.lead"


def contact_placeholder(kommo_id: int) -> str:
    return f"kommo_{kommo_id}@kommo.contact"


def tag_name(raw: str | None) -> str:
    return clip((raw or "").replace(TAG_SEPARATOR, " ").strip(), TAG_MAX)


def stage_color(raw: str | None) -> str:
    return clip(raw, STAGE_COLOR_MAX) if raw and raw.startswith("#") else DEFAULT_COLOR


def describe_item(item: Any, index: int) -> str:
    ident = item.get("id") if isinstance(item, dict) else None
    return f"id {ident!r}" if isinstance(ident, int) and not isinstance(ident, bool) else f"#{index + 1} of the page"


def decode_items(raw: Iterable[Any], kind: type[Any], label: str) -> tuple[list[Any], list[str]]:
    """Decode each raw item on its own: a bad one is skipped and reported, the others survive."""
    good: list[Any] = []
    errors: list[str] = []
    for index, item in enumerate(raw):
        try:
            good.append(msgspec.convert(item, kind))
        except msgspec.ValidationError as exc:
            errors.append(f"{label} {describe_item(item, index)} skipped: {exc}")
    return good, errors


def first_contact_id(lead: KLead) -> int | None:
    """A.10 step 2 takes the first linked contact; the one Kommo flags ``is_main`` wins when present."""
    contacts = lead.embedded.contacts if lead.embedded else None
    if not contacts:
        return None
    for ref in contacts:
        if ref.is_main:
            return ref.id
    return contacts[0].id


def lead_tags(lead: KLead) -> list[tuple[int | None, str]]:
    tags = lead.embedded.tags if lead.embedded else None
    return _tag_pairs(tags)


def _tag_pairs(tags: list[KTag] | None) -> list[tuple[int | None, str]]:
    out: dict[str, int | None] = {}
    for tag in tags or ():
        name = tag_name(tag.name)
        if name and name not in out:
            out[name] = tag.id
    return [(kid, name) for name, kid in out.items()]
