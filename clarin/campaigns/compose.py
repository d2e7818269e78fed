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

Spintax (``settings.randomize_message`` is JSON ``true``; docs/CAMPAIGNS.md "Spintax"): :func:`spin` picks one
option of every ``{option one|option two}`` group, groups nest, ``\\{`` ``\\}`` ``\\|`` are literal characters,
a ``{`` or ``}`` without its partner and a ``{…}`` without a ``|`` stay literal text, and ``{{placeholder}}``
tokens are never read as groups. It runs on the template BEFORE :func:`personalize`, so a recipient's name or
metadata is never spun. The choice is seeded by the recipient (:func:`spin_seed`): the same recipient always
gets the same text, which is what lets the worker's reconcile rule recompute a crashed send's plan and match
it against what outbound stored. Different recipients get independent choices; with fewer variants
(:func:`variant_count`) than recipients some texts repeat (no invisible characters are added to force them
apart: they would alter links and copy-paste and are a filter-evasion trick, not a variation).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ATTACHMENT_PAUSE = 1.5  # seconds before each attachment that follows another message (C.5)
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
SPIN_MAX_DEPTH = 32  # groups nested deeper than this are literal text (bounds recursion on hostile templates)
_PLACEHOLDER = re.compile(r"\{\{[^{}|]*\}\}")  # {{key}}: personalize's token, never a spintax group
_ESCAPABLE = frozenset("{}|")


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
    spin_seed: str | None = None,
) -> list[Part]:
    """The messages one recipient gets, in order (C.5 step 5). ``attachments`` must be in position order.

    - attachments and text, exactly one attachment with an empty caption → one media message, text as caption;
    - attachments and text otherwise → the text, then each attachment (1.5 s before each) with its
      personalised caption;
    - attachments and no text → each attachment (1.5 s between them) with its personalised caption;
    - no attachments, campaign ``media_url`` and ``media_type`` set → one media message, text as caption;
    - otherwise → one text message.

    ``spin_seed`` (:func:`spin_seed`; ``None`` = spintax off): the text and every caption are spun first, each
    with its own stream derived from the seed, so the plan of a recipient is the same on every call.
    """
    if spin_seed is not None:
        template = spin(template, spin_seed)
        attachments = [AttachmentData(a.media_url, a.media_type, spin(a.caption, f"{spin_seed}:{i}"))
                       for i, a in enumerate(attachments)]
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


# -- spintax ------------------------------------------------------------------------------------------------
def spin_seed(settings: Mapping[str, Any] | None, recipient_key: object) -> str | None:
    """The seed :func:`plan` spins a recipient's messages with, or ``None`` when the campaign's
    ``randomize_message`` is not JSON ``true`` (spintax off: the template is sent as written)."""
    if not settings or settings.get("randomize_message") is not True:
        return None
    return f"clarin-spin:{recipient_key}"


class _Choice:
    """A ``{a|b|…}`` group: one option is rendered."""

    __slots__ = ("options",)

    def __init__(self, options: list[list[_Node]]) -> None:
        self.options = options


_Node = str | _Choice | list  # a list: a group kept as text ("{…}" without |, or too deep), shared not copied


def _tokens(template: str) -> list[tuple[str, str]]:
    """``(kind, text)``: ``lit`` text, ``open``/``close``/``bar`` syntax. Escapes and placeholders become text."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(template)
    start = 0
    while i < n:
        ch = template[i]
        if ch == "\\" and i + 1 < n and template[i + 1] in _ESCAPABLE:
            out.append(("lit", template[start:i] + template[i + 1]))
            i += 2
            start = i
            continue
        if ch in _ESCAPABLE:
            if ch == "{" and (m := _PLACEHOLDER.match(template, i)) is not None:
                out.append(("lit", template[start:m.end()]))
                i = start = m.end()
                continue
            if start < i:
                out.append(("lit", template[start:i]))
            out.append(({"{": "open", "}": "close", "|": "bar"}[ch], ch))
            i += 1
            start = i
            continue
        i += 1
    if start < n:
        out.append(("lit", template[start:]))
    return out


@functools.lru_cache(maxsize=64)  # a campaign spins one template for every recipient; render never mutates it
def _parse(template: str) -> list[_Node]:
    """One linear pass to pair the braces (unpaired ones are text), one to build the tree."""
    tokens = _tokens(template)
    kinds = [kind for kind, _ in tokens]
    stack: list[int] = []
    for index, kind in enumerate(kinds):
        if kind == "open":
            stack.append(index)
        elif kind == "close":
            if stack:
                stack.pop()
            else:
                kinds[index] = "lit"  # a } with no { before it
    for index in stack:
        kinds[index] = "lit"  # a { never closed
    # frames: [options, real]; real = a group that may choose (not nested too deep)
    root: list[_Node] = []
    frames: list[tuple[list[list[_Node]], bool]] = []
    for (_, text), kind in zip(tokens, kinds, strict=True):
        current = frames[-1][0][-1] if frames else root
        if kind == "lit":
            current.append(text)
        elif kind == "open":
            frames.append(([[]], len(frames) < SPIN_MAX_DEPTH))
        elif kind == "bar":
            if frames and frames[-1][1]:
                frames[-1][0].append([])
            else:
                current.append("|")
        else:  # close
            options, real = frames.pop()
            parent = frames[-1][0][-1] if frames else root
            if real and len(options) > 1:
                parent.append(_Choice(options))
            else:  # {text} without a |, or nested too deep: the braces and bars stay as written
                text_group: list[_Node] = ["{"]
                for position, option in enumerate(options):
                    if position:
                        text_group.append("|")
                    text_group.append(option)  # by reference: deep text nesting stays linear
                text_group.append("}")
                parent.append(text_group)
    return root


def _render(nodes: list[_Node], rng: random.Random, out: list[str]) -> None:
    """Depth-first with an explicit stack: text groups may nest as deep as the template does."""
    stack: list[Iterator[_Node]] = [iter(nodes)]
    while stack:
        for node in stack[-1]:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, _Choice):
                stack.append(iter(node.options[rng.randrange(len(node.options))]))
                break
            else:
                stack.append(iter(node))
                break
        else:
            stack.pop()


def _choices(nodes: list[_Node]) -> Iterator[_Choice]:
    """The groups that choose at this level (looking through text groups, without recursion)."""
    stack: list[Iterator[_Node]] = [iter(nodes)]
    while stack:
        for node in stack[-1]:
            if isinstance(node, _Choice):
                yield node
            elif isinstance(node, list):
                stack.append(iter(node))
                break
        else:
            stack.pop()


def spin(template: str, seed: str) -> str:
    """The template with one option of every spintax group, chosen by ``seed`` (see the module docstring)."""
    if not template or not any(ch in template for ch in "{}|\\"):
        return template
    out: list[str] = []
    _render(_parse(template), random.Random(seed), out)
    return "".join(out)


def variant_count(template: str, cap: int = 10**9) -> int:
    """How many distinct spins the template's structure allows (options may still render alike), capped."""

    def count(nodes: list[_Node]) -> int:  # recursion only through choosing groups: at most SPIN_MAX_DEPTH
        total = 1
        for choice in _choices(nodes):
            total = min(cap, total * sum(count(option) for option in choice.options))
        return total

    return count(_parse(template or ""))
