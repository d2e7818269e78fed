"""Database errors translated from the driver's messages into types the services can act on.

psqlpy reports server errors as text only (no SQLSTATE attribute), so the constraint name is read
from PostgreSQL's standard message. Services catch these to answer 409/404 with a clear message.
"""

from __future__ import annotations

import logging
import re
import time

import psqlpy.exceptions as pg_errors

_UNIQUE_RE = re.compile(r'violates unique constraint "([^"]+)"')
_FK_RE = re.compile(r'violates foreign key constraint "([^"]+)"')
_CHECK_RE = re.compile(r'violates (?:check|not-null) constraint "?([^"\s]*)"?')
_UNAVAILABLE_HINTS = (
    "connection refused",
    "connection closed",
    "closed connection",
    "error connecting",
    "timed out",
    "terminating connection",
    "the database system is",
    "broken pipe",
    "connection reset",
    "error communicating with the server",
    "unexpected eof",
    "no connection",
    "pool",
)


class DatabaseError(Exception):
    """Base for translated database errors; the original message stays in ``detail`` for logs only."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UniqueViolation(DatabaseError):
    def __init__(self, detail: str, constraint: str) -> None:
        super().__init__(detail)
        self.constraint = constraint


class ForeignKeyViolation(DatabaseError):
    def __init__(self, detail: str, constraint: str) -> None:
        super().__init__(detail)
        self.constraint = constraint


class ConstraintViolation(DatabaseError):
    """NOT NULL / CHECK failures and bad values the database rejected."""


class DatabaseUnavailable(DatabaseError):
    """The pool could not reach PostgreSQL: answered as 503, never as a hang."""


def translate(exc: BaseException) -> DatabaseError:
    message = str(exc)
    if match := _UNIQUE_RE.search(message):
        return UniqueViolation(message, match.group(1))
    if match := _FK_RE.search(message):
        return ForeignKeyViolation(message, match.group(1))
    if _CHECK_RE.search(message) or "invalid input" in message or "out of range" in message:
        return ConstraintViolation(message)
    lowered = message.lower()
    if isinstance(exc, pg_errors.BaseConnectionPoolError | pg_errors.ConnectionClosedError) or any(
        hint in lowered for hint in _UNAVAILABLE_HINTS
    ):
        return DatabaseUnavailable(message)
    return DatabaseError(message)


class OutageLog:
    """Log lines of an outage, not of every request it fails: the first failure is logged at once, then at
    most one line per ``interval`` seconds, counting the failures that were not logged in between.

    A PostgreSQL restart under load fails hundreds of requests a second with the same cause; each still
    answers 503 (and is counted in the request metrics), but the log gets a handful of lines.
    """

    def __init__(self, logger: logging.Logger, interval: float = 5.0, level: int = logging.ERROR) -> None:
        self._log = logger
        self.interval = interval
        self.level = level
        self._last = -interval
        self._suppressed = 0

    def report(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (and %d more like it since the previous report)"
            args = (*args, self._suppressed)
        self._last, self._suppressed = now, 0
        self._log.log(self.level, message, *args)
