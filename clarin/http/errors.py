"""Client-facing HTTP errors. Anything else that escapes a handler becomes a logged, generic 500."""

from __future__ import annotations


class HTTPError(Exception):
    def __init__(
        self, status: int, message: str, *, headers: list[tuple[str, str]] | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.detail = detail


def bad_request(message: str = "Invalid request", detail: str | None = None) -> HTTPError:
    return HTTPError(400, message, detail=detail)


def not_found(message: str) -> HTTPError:
    return HTTPError(404, message)


def conflict(message: str) -> HTTPError:
    return HTTPError(409, message)
