"""Response objects: each knows how to send itself on a granian RSGI protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

from clarin.http.json import encode

JSON_TYPE = ("content-type", "application/json")


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes = b"", status: int = 200, headers: list[tuple[str, str]] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = headers if headers is not None else []

    def send(self, protocol: Any, extra_headers: list[tuple[str, str]]) -> None:
        headers = self.headers + extra_headers
        if self.body:
            protocol.response_bytes(self.status, headers, self.body)
        else:
            protocol.response_empty(self.status, headers)


class JSONResponse(Response):
    __slots__ = ()

    def __init__(self, content: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(encode(content), status, [JSON_TYPE, *(headers or [])])


class RawJSONResponse(Response):
    """Pre-encoded JSON bytes (for example a cached body served byte-identical)."""

    __slots__ = ()

    def __init__(self, body: bytes, status: int = 200, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(body, status, [JSON_TYPE, *(headers or [])])


class FileResponse(Response):
    """A file on local disk, optionally one byte range of it (inclusive ``start``..``end``).

    granian's ``response_file_range(status, headers, path, start, end)`` takes an END-EXCLUSIVE ``end``
    (checked against granian 2.8: ``0, 10`` sends bytes 0..9), hence ``end + 1`` below. granian sends
    these with chunked encoding unless the caller sets ``content-length``."""

    __slots__ = ("end", "path", "start")

    def __init__(
        self,
        path: str,
        status: int = 200,
        headers: list[tuple[str, str]] | None = None,
        byte_range: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(b"", status, headers)
        self.path = path
        self.start, self.end = byte_range if byte_range else (-1, -1)

    def send(self, protocol: Any, extra_headers: list[tuple[str, str]]) -> None:
        headers = self.headers + extra_headers
        if self.start >= 0:
            protocol.response_file_range(self.status, headers, self.path, self.start, self.end + 1)
        else:
            protocol.response_file(self.status, headers, self.path)


class StreamResponse(Response):
    """A body produced by an async iterator of chunks (for example an object-storage read); ``send``
    returns a coroutine the server awaits."""

    __slots__ = ("chunks",)

    def __init__(
        self, chunks: AsyncIterator[bytes], status: int = 200, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(b"", status, headers)
        self.chunks = chunks

    def send(self, protocol: Any, extra_headers: list[tuple[str, str]]) -> Awaitable[None]:  # type: ignore[override]
        return self._stream(protocol, self.headers + extra_headers)

    async def _stream(self, protocol: Any, headers: list[tuple[str, str]]) -> None:
        transport = protocol.response_stream(self.status, headers)
        async for chunk in self.chunks:
            await transport.send_bytes(bytes(chunk))


def error_body(message: str, detail: str | None = None) -> bytes:
    payload: dict[str, Any] = {"success": False, "error": message}
    if detail:
        payload["detail"] = detail
    return encode(payload)


def error_response(status: int, message: str, headers: list[tuple[str, str]] | None = None,
                   detail: str | None = None) -> Response:
    return RawJSONResponse(error_body(message, detail), status, headers)
