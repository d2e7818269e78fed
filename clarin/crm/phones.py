"""The one phone rule of every entry point (leads, contacts, chats, sends, campaigns, CSV/XLSX, inbound).

A phone is what the Go ``NormalizePhone`` (A.13; D.5 for import files) makes of the input, and it must then
be 7 to 15 ASCII digits (``clarin._speedups.is_phone``); anything else is ``400 invalid phone``. Inputs the
original accepted and that normalise to such digits give the same result as before; the rest (emoji,
fullwidth or Arabic-Indic digits, direction marks, ``"+-+-+-"``, ``"1e10"``, paths) never becomes a JID.
"""

from __future__ import annotations

from clarin._speedups import is_phone, phone_number
from clarin.http.errors import HTTPError

INVALID_PHONE = "invalid phone"
USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"


def checked_phone(raw: str) -> str:
    """The normalised phone of ``raw`` or ``400 invalid phone``."""
    number = phone_number(raw)
    if not number:
        raise HTTPError(400, INVALID_PHONE)
    return number


def phone_jid(raw: str) -> str:
    """``<phone>@s.whatsapp.net`` of ``raw`` or ``400 invalid phone``."""
    return f"{checked_phone(raw)}@{USER_SERVER}"


def valid_user(user: str, server: str) -> bool:
    """Whether the user part of a JID on ``server`` is acceptable: a phone on ``s.whatsapp.net``, ASCII digits
    on ``lid`` (hidden users have no phone to check); other servers (groups...) are not phone JIDs. An AD
    suffix (``.agent``, ``:device``) is not part of the user."""
    base = user.split(":", 1)[0].split(".", 1)[0]
    if server == USER_SERVER:
        return is_phone(base)
    if server == LID_SERVER:
        return bool(base) and base.isascii() and base.isdigit()
    return True
