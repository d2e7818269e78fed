"""Campaign ``settings``: defaults, validation and the worker's reading of them (spec C.1, api.md §4.10).

Numeric keys are read as the original did: only JSON numbers count (strings such as ``"10"`` and booleans
are ignored), floats are truncated toward zero, aliases are tried in order, otherwise the default.
Unlike the original, ``daily_limit`` and the active hours are enforced (see :class:`Pacing`):

- ``daily_limit`` (number > 0): at most that many recipients processed (sent or failed) per calendar
  day of the campaign's time zone; absent or ≤ 0 → no limit.
- ``active_hours_start`` / ``active_hours_end`` (``"HH:MM"``): sends only while the local time is in
  ``[start, end)``; ``start > end`` is a window across midnight; equal or absent → any time.
- the time zone is the account's (``accounts.timezone``, default ``America/Lima``), unless the
  campaign's settings carry a ``timezone`` (IANA name).

``batch_size`` < 1 counts as 1 (the original sent nothing, forever); negative delays count as 0.
``randomize_message`` and ``simulate_typing`` are stored and not used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clarin.http.errors import HTTPError

DEFAULT_SETTINGS: dict[str, Any] = {
    "min_delay_seconds": 8,
    "max_delay_seconds": 15,
    "batch_size": 25,
    "batch_pause_minutes": 2,
    "daily_limit": 1000,
    "active_hours_start": "07:00",
    "active_hours_end": "22:00",
    "randomize_message": True,
    "simulate_typing": True,
}
DEFAULT_TIMEZONE = "America/Lima"
# The numeric pacing keys the worker reads (delays, batch sizes, limits) and the range it accepts: PostgreSQL
# integer, so a delay or LIMIT built from one never overflows in the worker.
PACING_KEYS = ("min_delay_seconds", "min_delay", "max_delay_seconds", "max_delay", "batch_size",
               "batch_pause_minutes", "batch_pause", "daily_limit")
PACING_MAX = 2**31 - 1


def _number(settings: dict[str, Any], keys: tuple[str, ...], default: int) -> int:
    for key in keys:
        value = settings.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        return int(value)  # truncates toward zero, like Go's int(float64)
    return default


def parse_hhmm(value: Any) -> time | None:
    if not isinstance(value, str):
        return None
    parts = value.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() and len(p) in (1, 2) for p in parts):
        return None
    hour, minute = int(parts[0]), int(parts[1])
    if hour > 23 or minute > 59:
        if (hour, minute) == (24, 0):
            return time(23, 59, 59, 999999)
        return None
    return time(hour, minute)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def validate(settings: dict[str, Any]) -> dict[str, Any]:
    """400 for values the worker could not honour; everything else is stored as given (spec C.1)."""
    for key in PACING_KEYS:
        value = settings.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > PACING_MAX:
            raise HTTPError(400, f"settings.{key} is out of range (max {PACING_MAX})")
    for key in ("active_hours_start", "active_hours_end"):
        if key in settings and settings[key] not in (None, "") and parse_hhmm(settings[key]) is None:
            raise HTTPError(400, f"settings.{key} must be a time HH:MM")
    tz = settings.get("timezone")
    if tz not in (None, ""):
        if not isinstance(tz, str):
            raise HTTPError(400, "settings.timezone must be an IANA time zone name")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise HTTPError(400, f"settings.timezone: unknown time zone {tz!r}") from None
    return settings


@dataclass(frozen=True, slots=True)
class Pacing:
    min_delay: int  # seconds
    max_delay: int
    batch_size: int
    batch_pause: int  # minutes
    daily_limit: int  # 0 = none
    start: time | None
    end: time | None
    tz: ZoneInfo

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None, account_tz: str | None) -> Pacing:
        s = settings if isinstance(settings, dict) else {}
        min_delay = max(0, _number(s, ("min_delay_seconds", "min_delay"), 8))
        max_delay = max(0, _number(s, ("max_delay_seconds", "max_delay"), 15))
        if min_delay > max_delay:
            min_delay = max_delay
        tz_name = s.get("timezone") if isinstance(s.get("timezone"), str) and s.get("timezone") else account_tz
        return cls(
            min_delay=min_delay,
            max_delay=max_delay,
            batch_size=max(1, _number(s, ("batch_size",), 25)),
            batch_pause=max(0, _number(s, ("batch_pause_minutes", "batch_pause"), 2)),
            daily_limit=max(0, _number(s, ("daily_limit",), 0)),
            start=parse_hhmm(s.get("active_hours_start")),
            end=parse_hhmm(s.get("active_hours_end")),
            tz=zone(tz_name),
        )

    def local(self, now: datetime) -> datetime:
        return now.astimezone(self.tz)

    def in_active_hours(self, now: datetime) -> bool:
        if self.start is None or self.end is None or self.start == self.end:
            return True
        current = self.local(now).time()
        if self.start < self.end:
            return self.start <= current < self.end
        return current >= self.start or current < self.end  # across midnight

    def day_start(self, now: datetime) -> datetime:
        """Midnight of the campaign's local day containing ``now`` (aware, in UTC)."""
        local = self.local(now)
        midnight = datetime(local.year, local.month, local.day, tzinfo=self.tz)
        return midnight.astimezone(UTC)

    def next_day_start(self, now: datetime) -> datetime:
        local = self.local(now)
        tomorrow = (datetime(local.year, local.month, local.day) + timedelta(days=1)).replace(tzinfo=self.tz)
        return tomorrow.astimezone(UTC)
