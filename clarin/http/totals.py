"""Capped totals of filtered lists (issue 17, goal 2), shared by the list routes.

Unfiltered totals are exact and O(1) (per-account counters, 0009_account_counters.sql). A filtered total (search,
tags, device, unread, archived...) is counted exactly up to ``COUNT_CAP`` matching rows: the statement counts
``(SELECT 1 ... LIMIT cap + 1)``, never the whole account. When more rows match, the response says
``"total": COUNT_CAP, "total_capped": true``; otherwise ``total`` is exact and ``total_capped`` false.

The cap is ``TOTAL_COUNT_CAP`` from the environment (default 300, as the leads total cap; measured: at 100k leads / 30k contacts / 5k chats a
capped count of a common term costs about what the whole count costs at 10k leads; see bench/RESULTS.md).
"""

from __future__ import annotations

import os

DEFAULT_COUNT_CAP = 300


def _cap_from_env() -> int:
    raw = (os.environ.get("TOTAL_COUNT_CAP") or "").strip()
    try:
        return max(1, int(raw)) if raw else DEFAULT_COUNT_CAP
    except ValueError:
        return DEFAULT_COUNT_CAP


COUNT_CAP = _cap_from_env()


def capped(counted: int, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """``(total, total_capped)`` from a count of at most ``cap + 1`` rows."""
    return (cap, True) if counted > cap else (counted, False)
