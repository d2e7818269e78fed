"""Campaign message composition (spec integrations.md C.5 step 5 and C.6, api.md §6.2).

:func:`personalize` replaces placeholders exactly like the original: literal ``{{key}}`` (case-sensitive,
no spaces inside the braces), every occurrence, one pass per placeholder in the order of C.6:

1. ``{{nombre}}``, ``{{name}}`` → recipient name, when non-empty;
2. ``{{telefono}}``, ``{{phone}}``, ``{{celular}}`` → recipient phone, when not NULL (``""`` replaces too);
3. ``{{nombre_completo}}`` → linked contact's ``custom_name``, else ``name`` + ``last_name`` (non-empty
   parts joined by one space), when a contact is linked and the result is non-empty;
4. ``{{nombre_corto}}`` → linked contact's ``short_name``, when non-empty;
5. ``{{<key>}}`` → recipient ``metadata[key]`` when it is a non-empty string (numbers, bools ignored).

Unknown placeholders stay literal. :func:`plan` turns a personalised recipient into the list of
WhatsApp messages to send (C.5's matrix), each with the pause to observe before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ATTACHMENT_PAUSE = 1.5  # seconds before each attachment that follows another message (C.5)
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


@dataclass(frozen=True, slots=True)
class RecipientData:
    name: str | None = None
    phone: str | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ContactData:
    name: str | None = None
    last_name: str | None = None
    short_name: str | None = None
    custom_name: str | None = None


@dataclass(frozen=True, slots=True)
class AttachmentData:
    media_url: str
    media_type: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Part:
    """One WhatsApp message of a recipient's send: text (``media_url`` empty) or media with caption."""

    body: str
    media_url: str = ""
    media_type: str = ""
    pause_before: float = 0.0  # seconds (before the delay scale)

    @property
    def is_media(self) -> bool:
        return bool(self.media_url)


def full_name(contact: ContactData) -> str:
    if contact.custom_name:
        return contact.custom_name
    return " ".join(part for part in (contact.name, contact.last_name) if part)


def personalize(template: str, recipient: RecipientData, contact: ContactData | None = None) -> str:
    if not template:
        return template
    text = template
    if recipient.name:
        text = text.replace("{{nombre}}", recipient.name).replace("{{name}}", recipient.name)
    if recipient.phone is not None:
        text = (
            text.replace("{{telefono}}", recipient.phone)
            .replace("{{phone}}", recipient.phone)
            .replace("{{celular}}", recipient.phone)
        )
    if contact is not None:
        complete = full_name(contact)
        if complete:
            text = text.replace("{{nombre_completo}}", complete)
        if contact.short_name:
            text = text.replace("{{nombre_corto}}", contact.short_name)
    if recipient.metadata:
        for key, value in recipient.metadata.items():
            if isinstance(value, str) and value:
                text = text.replace("{{" + str(key) + "}}", value)
    return text


def plan(
    template: str,
    attachments: Sequence[AttachmentData],
    recipient: RecipientData,
    contact: ContactData | None = None,
    *,
    media_url: str | None = None,
    media_type: str | None = None,
) -> list[Part]:
    """The messages one recipient gets, in order (C.5 step 5). ``attachments`` must be in position order.

    - attachments and text, exactly one attachment with an empty caption → one media message, text as caption;
    - attachments and text otherwise → the text, then each attachment (1.5 s before each) with its
      personalised caption;
    - attachments and no text → each attachment (1.5 s between them) with its personalised caption;
    - no attachments, campaign ``media_url`` and ``media_type`` set → one media message, text as caption;
    - otherwise → one text message.
    """
    text = personalize(template, recipient, contact)
    if attachments:
        if text and len(attachments) == 1 and not attachments[0].caption:
            only = attachments[0]
            return [Part(text, only.media_url, only.media_type)]
        parts: list[Part] = [Part(text)] if text else []
        for item in attachments:
            pause = ATTACHMENT_PAUSE if parts else 0.0
            parts.append(Part(personalize(item.caption, recipient, contact), item.media_url, item.media_type, pause))
        return parts
    if media_url and media_type:
        return [Part(text, media_url, media_type)]
    return [Part(text)]
