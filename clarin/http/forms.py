"""Form request bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data`` on JSON routes.

The original parsed bodies with Fiber's ``BodyParser``, which also filled the route's struct from form fields.
Clarin does the same for routes whose body struct is **flat** — every field a scalar (text, number, boolean,
time, UUID, literal) or a list of scalars (a repeated key, ``ids=a&ids=b``): the fields become a dict that
``msgspec.convert(..., strict=False)`` turns into the struct, so numbers and booleans may arrive as text and
every constraint of the struct still applies. A route whose struct nests (objects, maps, free-form JSON)
cannot be expressed as a flat form: such a form, and XML (also accepted by Fiber), answer ``415``.

The rules of JSON bodies hold for forms: a NUL character in a key or value is ``400 Request contains
invalid characters``; there is no nesting to bound. Like Fiber's form decoder, an empty value of a
non-text field counts as absent (an HTML form sends every input, filled or not); a non-list field takes the
first value of a repeated key. Booleans accept Go's ``strconv.ParseBool`` spellings. File parts of a
multipart body are skipped (uploads have their own streaming routes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec
from msgspec import inspect as mi

from clarin.http.errors import HTTPError
from clarin.http.json import NUL_MESSAGE
from clarin.http.multipart import MultipartStream, boundary_of
from clarin.http.request import FALSE_VALUES, TOO_LARGE, TRUE_VALUES

if TYPE_CHECKING:
    from clarin.http.request import Request

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_MEDIA_TYPES = (URLENCODED, MULTIPART)
XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})
UNSUPPORTED_MEDIA_TYPE = 415
NESTED_FORM = "This route takes a JSON body (application/json): its fields do not fit a flat form"
XML_REFUSED = "XML request bodies are not supported: send application/json"
NUL_FORM = "NUL character in a form field"
INVALID_FORM = "malformed form body"
MAX_FIELDS = 1000  # far more than any flat struct has; bounds the work a hostile form can cause

_SCALARS = (
    mi.StrType, mi.IntType, mi.FloatType, mi.BoolType, mi.DateTimeType, mi.DateType, mi.TimeType, mi.UUIDType,
    mi.DecimalType, mi.LiteralType, mi.EnumType, mi.NoneType,
)
_LISTS = (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)


def media_type(content_type: str) -> str:
    # Split by hand: parse_options_header raises on characters outside latin-1, a header clients can send.
    return content_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True, slots=True)
class FormShape:
    """How the form fields of one body struct are read (field names as they appear on the wire)."""

    lists: frozenset[str]
    texts: frozenset[str]  # fields that may hold text: an empty value stays ""
    bools: frozenset[str]


def _kinds(kind: mi.Type) -> list[mi.Type]:
    while isinstance(kind, mi.Metadata):
        kind = kind.type
    if isinstance(kind, mi.UnionType):
        return [k for option in kind.types for k in _kinds(option)]
    return [kind]


@cache
def form_shape(body_type: Any) -> FormShape | None:
    """The form reading of ``body_type``; None when it is not a flat struct (a form gets 415)."""
    try:
        info = mi.type_info(body_type)
    except (TypeError, ValueError):
        return None
    if not isinstance(info, mi.StructType) or info.array_like:
        return None
    lists, texts, bools = set(), set(), set()
    for field in info.fields:
        kinds = _kinds(field.type)
        if any(isinstance(kind, _LISTS) for kind in kinds):
            if not all(isinstance(kind, (*_LISTS, mi.NoneType)) for kind in kinds):
                return None  # "a list or a scalar" has no single form reading
            lists.add(field.encode_name)
            kinds = [item for kind in kinds if isinstance(kind, _LISTS) for item in _kinds(kind.item_type)]
        if not all(isinstance(kind, _SCALARS) for kind in kinds):
            return None
        if any(isinstance(kind, (mi.StrType, mi.LiteralType, mi.EnumType)) for kind in kinds):
            texts.add(field.encode_name)
        if any(isinstance(kind, mi.BoolType) for kind in kinds):
            bools.add(field.encode_name)
    return FormShape(frozenset(lists), frozenset(texts), frozenset(bools))


def _fields(pairs: list[tuple[str, str]], shape: FormShape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise HTTPError(400, NUL_MESSAGE, detail=NUL_FORM)
        if value == "" and key not in shape.texts:
            continue
        if key in shape.bools:  # Go's ParseBool spellings; anything else is left for msgspec to refuse
            value = "true" if value in TRUE_VALUES else "false" if value in FALSE_VALUES else value
        if key in shape.lists:
            out.setdefault(key, []).append(value)
        else:
            out.setdefault(key, value)
    return out


def _urlencoded(raw: bytes, route_error: str) -> list[tuple[str, str]]:
    try:
        text = raw.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):  # bytes or %XX escapes that are not UTF-8, too many fields
        raise HTTPError(400, route_error, detail=INVALID_FORM) from None


async def _multipart(req: Request, content_type: str) -> list[tuple[str, str]]:
    boundary = boundary_of(content_type)
    if boundary is None:
        raise HTTPError(400, "Invalid multipart body", detail="missing boundary")
    limit = req.app.settings.body_limit
    declared = req.header("content-length")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, TOO_LARGE)
    too_large = HTTPError(413, TOO_LARGE)
    stream = MultipartStream(boundary, req.stream(), limit, too_large)
    pairs: list[tuple[str, str]] = []
    while (part := await stream.next_part()) is not None:
        if part.filename is not None:
            await stream.skip_part()
            continue
        if len(pairs) >= MAX_FIELDS:
            raise HTTPError(400, "Invalid multipart body", detail="too many fields")
        raw = await stream.read_part(limit, too_large)
        try:
            pairs.append((part.name, raw.decode("utf-8")))
        except UnicodeDecodeError:
            raise HTTPError(400, "Invalid multipart body", detail="a form field is not UTF-8") from None
    return pairs


def is_form(kind: str) -> bool:
    return kind in FORM_MEDIA_TYPES


def refuse_xml(kind: str) -> None:
    if kind in XML_MEDIA_TYPES:
        raise HTTPError(UNSUPPORTED_MEDIA_TYPE, XML_REFUSED)


async def decode_form(req: Request, kind: str, content_type: str, body_type: Any, route_error: str) -> Any:
    """The body struct from a form; the route's 400 on wrong values, 415 when the struct is not flat."""
    shape = form_shape(body_type)
    if shape is None:
        raise HTTPError(UNSUPPORTED_MEDIA_TYPE, NESTED_FORM)
    if kind == URLENCODED:
        pairs = _urlencoded(await req.body(), route_error)
    else:
        pairs = await _multipart(req, content_type)
    try:
        return msgspec.convert(_fields(pairs, shape), body_type, strict=False)
    except msgspec.ValidationError as exc:
        raise HTTPError(400, route_error, detail=str(exc)) from None
