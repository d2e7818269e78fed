"""Streaming ``multipart/form-data`` reading on top of ``python_multipart``'s push parser.

The request body is fed to the parser chunk by chunk as the handler pulls events, so a file part can be
piped straight into object storage without ever holding the whole body in memory. Size limits are
enforced on the raw body while it streams (413 as soon as it is exceeded).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from clarin.http.errors import HTTPError
from clarin.http.json import NUL_MESSAGE

INVALID_MULTIPART = "Invalid multipart body"


class PartHeaders:
    __slots__ = ("content_type", "filename", "name")

    def __init__(self, name: str, filename: str | None, content_type: str) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type


def boundary_of(content_type: str) -> bytes | None:
    try:
        kind, params = parse_options_header(content_type)
    except UnicodeEncodeError:  # a character outside latin-1 in the header: no usable boundary
        return None
    if kind != b"multipart/form-data":
        return None
    return params.get(b"boundary") or None


class MultipartStream:
    """Pull-style events: ``await next_part()`` → headers of the next part (None at the end);
    ``part_data()`` → async iterator over that part's bytes (must be consumed or ``skip_part()``-ed)."""

    def __init__(self, boundary: bytes, body: AsyncIterable[bytes], body_limit: int, too_large: HTTPError) -> None:
        self._body = body.__aiter__()
        self._limit = body_limit
        self._too_large = too_large
        self._received = 0
        self._eof = False
        self._ended = False
        self._events: deque[tuple[str, Any]] = deque()
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    @property
    def received(self) -> int:
        return self._received

    # -- parser callbacks (run synchronously inside parser.write) -------------------------------
    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = params.get(b"filename")
        filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        content_type = self._headers.get(b"content-type", b"").decode("latin-1").strip()
        self._events.append(("headers", PartHeaders(name, filename, content_type)))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append(("data", bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(("end", None))

    def _on_end(self) -> None:
        self._ended = True

    # -- pulling ------------------------------------------------------------------------------
    async def _next_event(self) -> tuple[str, Any] | None:
        while not self._events:
            if self._eof:
                return None
            try:
                chunk = await self._body.__anext__()
            except StopAsyncIteration:
                self._eof = True
                if not self._ended:
                    raise HTTPError(400, INVALID_MULTIPART) from None
                continue
            self._received += len(chunk)
            if self._received > self._limit:
                raise self._too_large
            try:
                self._parser.write(chunk)
            except MultipartParseError:
                raise HTTPError(400, INVALID_MULTIPART) from None
        return self._events.popleft()

    async def next_part(self) -> PartHeaders | None:
        while True:
            event = await self._next_event()
            if event is None:
                return None
            if event[0] == "headers":
                return event[1]
            # stray data/end of a part the caller did not consume: skip it

    async def part_data(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next_event()
            if event is None or event[0] == "end":
                return
            if event[0] == "data":
                yield event[1]

    async def read_part(self, max_bytes: int, error: HTTPError) -> bytes:
        out = bytearray()
        async for chunk in self.part_data():
            out += chunk
            if len(out) > max_bytes:
                raise error
        return bytes(out)

    async def read_text(self, max_bytes: int, error: HTTPError) -> str:
        """A text form field, under the JSON-body rule: a NUL character is a 400 (PostgreSQL text refuses it)."""
        value = (await self.read_part(max_bytes, error)).decode("utf-8", "replace")
        if "\x00" in value:
            raise HTTPError(400, NUL_MESSAGE, detail="NUL character in a form field")
        return value

    async def skip_part(self) -> None:
        async for _ in self.part_data():
            pass
