"""The request object handed to handlers: lazy query/cookie parsing, size-capped body reading."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from clarin.http.errors import HTTPError
from clarin.http.json import NUL_MESSAGE

if TYPE_CHECKING:
    from clarin.auth.tokens import AuthContext
    from clarin.state import AppState

TOO_LARGE = "Request Entity Too Large"
NUL_QUERY = "NUL character (%00) in a query parameter"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
TRUE_VALUES = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_VALUES = frozenset({"0", "f", "F", "FALSE", "false", "False"})
BODY_UNREAD, BODY_STARTED, BODY_DONE = 0, 1, 2


class Request:
    __slots__ = (
        "_body", "_cookies", "_query", "app", "auth", "body_state", "client_ip", "headers", "method", "params",
        "path", "protocol", "query_string", "request_id", "route",
    )

    def __init__(self, app: AppState, scope: Any, protocol: Any, client_ip: str, request_id: str) -> None:
        self.app = app
        self.protocol = protocol
        self.method: str = scope.method
        self.path: str = scope.path
        self.query_string: str = scope.query_string
        self.headers = scope.headers
        self.client_ip = client_ip
        self.request_id = request_id
        self.params: dict[str, str] = {}
        self.auth: AuthContext | None = None
        self.route: Any = None
        self._query: dict[str, list[str]] | None = None
        self._cookies: dict[str, str] | None = None
        self._body: bytes | None = None
        # How far the body has been read: granian lets it be read once, so the server can discard what a
        # handler left unread only if nothing was read (clarin.http.server, "finish the body").
        self.body_state = BODY_UNREAD

    # -- query string -------------------------------------------------------------------------
    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            query = parse_qs(self.query_string, keep_blank_values=True) if self.query_string else {}
            # The JSON-body rule for query text (PostgreSQL text cannot hold NUL): a 400 wherever it is read.
            if "%00" in self.query_string or "\x00" in self.query_string:
                for key, values in query.items():
                    if "\x00" in key or any("\x00" in value for value in values):
                        raise HTTPError(400, NUL_MESSAGE, detail=NUL_QUERY)
            self._query = query
        return self._query

    def query_str(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def query_int(self, name: str, default: int) -> int:
        """Go-style lenient ints: a missing or non-numeric value gives the default."""
        raw = self.query_str(name)
        try:
            value = int(raw)
        except ValueError:
            return default
        # Go's Atoi fails on values outside int64: they get the default too (and never reach the driver).
        return value if INT64_MIN <= value <= INT64_MAX else default

    def query_bool(self, name: str, default: bool) -> bool:
        raw = self.query_str(name)
        if raw in TRUE_VALUES:
            return True
        if raw in FALSE_VALUES:
            return False
        return default

    def query_list(self, name: str) -> list[str]:
        """Values given as repeated parameters or comma-separated, blanks dropped."""
        out: list[str] = []
        for value in self.query.get(name, ()):
            out.extend(part.strip() for part in value.split(",") if part.strip())
        return out

    # -- headers and cookies ------------------------------------------------------------------
    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default) or default

    def cookie(self, name: str) -> str:
        if self._cookies is None:
            jar = SimpleCookie()
            try:
                jar.load(self.header("cookie"))
            except Exception:
                jar = SimpleCookie()
            self._cookies = {key: morsel.value for key, morsel in jar.items()}
        return self._cookies.get(name, "")

    # -- body ---------------------------------------------------------------------------------
    async def body(self) -> bytes:
        if self._body is None:
            limit = self.app.settings.body_limit
            declared = self.header("content-length")
            if declared.isdigit() and int(declared) > limit:
                raise HTTPError(413, TOO_LARGE)
            chunks: list[bytes] = []
            size = 0
            self.body_state = BODY_STARTED
            async for chunk in self.protocol:
                size += len(chunk)
                if size > limit:
                    raise HTTPError(413, TOO_LARGE)
                chunks.append(chunk)
            self._body = b"".join(chunks)
            self.body_state = BODY_DONE
        return self._body

    def stream(self) -> Any:
        """The raw body as an async iterable of chunks, for handlers that enforce their own size limit
        while streaming (``async for chunk in req.stream()``)."""
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        self.body_state = BODY_STARTED
        async for chunk in self.protocol:
            yield chunk
        self.body_state = BODY_DONE

    # -- helpers ------------------------------------------------------------------------------
    @property
    def account_id(self) -> uuid.UUID:
        assert self.auth is not None, "route is public"
        return self.auth.account_id

    @property
    def user_id(self) -> uuid.UUID:
        assert self.auth is not None, "route is public"
        return self.auth.user_id

    def path_uuid(self, name: str, message: str) -> uuid.UUID:
        return parse_uuid(self.params.get(name, ""), message)


def parse_uuid(raw: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        raise HTTPError(400, message) from None
