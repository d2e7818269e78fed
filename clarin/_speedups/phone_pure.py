"""Pure-Python phone normalization (spec: integrations.md §A.13, Go ``NormalizePhone``).

This is the reference twin of ``phone.pyx``; both must return identical results for every str.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "GO_WHITESPACE",
    "PHONE_MAX_DIGITS",
    "PHONE_MIN_DIGITS",
    "is_phone",
    "normalize_phone",
    "normalize_phones",
    "phone_number",
    "phone_numbers",
]

# What a phone number is once normalised: ASCII digits only, E.164's at most 15, and at least 7 (the shortest
# numbers in use with their country code). Not str.isdigit(): it also takes fullwidth, Arabic-Indic,
# superscript... digits, which WhatsApp does not know and which made odd JIDs.
PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 15

# Go's strings.TrimSpace set (unicode.IsSpace == Unicode White_Space). Unlike str.strip() with no
# argument it does NOT contain the ASCII separators U+001C..U+001F; U+FEFF (BOM) is not in it either.
GO_WHITESPACE: str = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


def normalize_phone(s: str) -> str:
    """Normalize a phone number exactly like the Go service's ``NormalizePhone``.

    Steps: trim Go whitespace; drop one leading ``'``; delete every U+0020 space and every
    ``-``, ``(``, ``)``; drop one leading ``+``; a 9-character result starting with ``9`` gets
    the Peru prefix ``51``.

    Step 6 counts *code points* of the Python str. Go's ``len()`` counts UTF-8 bytes, so for
    non-ASCII input the two can disagree: ``"9ñ2345678"`` (9 code points, 10 bytes) gets the
    prefix here but not in Go, ``"9ñ234567"`` (8 code points, 9 bytes) gets it in Go but not
    here. Real phone numbers are ASCII, where both agree; code points are the saner choice.
    """
    if not isinstance(s, str):
        raise TypeError(f"normalize_phone() argument must be str, not {type(s).__name__}")
    s = s.strip(GO_WHITESPACE)
    if s[:1] == "'":
        s = s[1:]
    s = s.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    if s[:1] == "+":
        s = s[1:]
    if len(s) == 9 and s[0] == "9":
        s = "51" + s
    return s


def normalize_phones(items: Iterable[str]) -> list[str]:
    """Element-wise :func:`normalize_phone` over a list (or any iterable) of str."""
    return [normalize_phone(s) for s in items]


def is_phone(s: str) -> bool:
    """Whether an already normalised ``s`` is a phone number: 7 to 15 ASCII digits, nothing else."""
    if not isinstance(s, str):
        raise TypeError(f"is_phone() argument must be str, not {type(s).__name__}")
    return PHONE_MIN_DIGITS <= len(s) <= PHONE_MAX_DIGITS and s.isascii() and s.isdigit()


def phone_number(s: str) -> str:
    """:func:`normalize_phone`, then "" unless the result :func:`is_phone` (the one rule for phone input).

    Every input whose Go normalisation is 7-15 ASCII digits gets exactly that result; the rest (emoji,
    fullwidth or Arabic-Indic digits, direction marks, ``1e10``, paths, a lone ``+``...) gets ""."""
    number = normalize_phone(s)
    return number if is_phone(number) else ""


def phone_numbers(items: Iterable[str]) -> list[str]:
    """Element-wise :func:`phone_number` over a list (or any iterable) of str."""
    return [phone_number(s) for s in items]
