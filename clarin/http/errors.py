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


def check_text(value: str, field: str, max_len: int) -> str:
    """Reject text the database would refuse (too long for its ``varchar(n)``, or holding NUL) as a 400,
    so bad input never surfaces as a driver error (500)."""
    if "\x00" in value:
        raise HTTPError(400, f"{field} contains invalid characters")
    if len(value) > max_len:
        raise HTTPError(400, f"{field} is too long (max {max_len} characters)")
    return value

