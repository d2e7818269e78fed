"""Progress of long one-shot work (``clarin bench-seed``, ``clarin migrate``), printed to stderr.

On a terminal: one line redrawn in place with ``\\r`` (bar, percent, count, elapsed), at most ten times a
second, ended with a newline by ``close()``. Anywhere else (CI logs, ``| tee``, docker logs), where a ``\\r``
line would either pile up or never show: a plain line each time another ``every_percent`` of the total is
done or ``every_seconds`` have passed, whichever comes first, and one final line. A dependency such as tqdm
would do the terminal half; the plain-line half (what operators read in logs) is the part that matters and
is a few lines here.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 24
TTY_REDRAW_INTERVAL = 0.1  # seconds between redraws of the terminal line


class Progress:
    def __init__(self, label: str, total: int, *, unit: str = "", stream: TextIO | None = None,
                 tty: bool | None = None, every_percent: float = 10.0, every_seconds: float = 5.0) -> None:
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.tty = _isatty(self.stream) if tty is None else tty
        self.every_percent = every_percent
        self.every_seconds = every_seconds
        self.done = 0
        self.note = ""
        self.started = time.monotonic()
        self._last_print = self.started
        self._last_percent = 0.0
        self._width = 0  # of the terminal line drawn last, so a shorter one blanks the rest
        self._closed = False
        self._last_line: tuple[int, str] | None = None

    def advance(self, n: int = 1, note: str = "") -> None:
        self.update(self.done + n, note)

    def update(self, done: int, note: str = "") -> None:
        self.done = min(done, self.total) if self.total else done
        if note:
            self.note = note
        now = time.monotonic()
        if self.tty:
            if now - self._last_print >= TTY_REDRAW_INTERVAL or self.done == self.total:
                self._draw(now)
            return
        percent = self._percent()
        if percent - self._last_percent >= self.every_percent or now - self._last_print >= self.every_seconds:
            self._line(now)

    def close(self, note: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        if note:
            self.note = note
        now = time.monotonic()
        if self.tty:
            self._draw(now)
            self.stream.write("\n")
            self.stream.flush()
        elif (self.done, self.note) != self._last_line:  # the 100 % line may already say it all
            self._line(now)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close("interrupted" if exc_type is not None else "")

    def _percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    def _counts(self, now: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        text = f"{self._percent():3.0f}% {self.done:,}/{self.total:,}{unit} {now - self.started:.1f} s"
        return f"{text} {self.note}" if self.note else text

    def _draw(self, now: float) -> None:
        filled = round(BAR_WIDTH * self._percent() / 100)
        line = f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._counts(now)}"
        self.stream.write("\r" + line + " " * max(0, self._width - len(line)))
        self.stream.flush()
        self._width = len(line)
        self._last_print = now

    def _line(self, now: float) -> None:
        self.stream.write(f"{self.label}: {self._counts(now)}\n")
        self.stream.flush()
        self._last_print = now
        self._last_percent = self._percent()
        self._last_line = (self.done, self.note)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False
