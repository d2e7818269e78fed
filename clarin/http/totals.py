"""Capped totals of filtered lists (issue 17, goal 2), shared by the list routes.

Unfiltered totals are exact and O(1) (per-account counters, 0009_account_counters.sql). A filtered total (search,
tags, device, unread, archived...) is counted exactly up to ``cap`` matching rows: the statement counts
``(SELECT 1 ... LIMIT cap + 1)``, never the whole account. When more rows match, the response says
``"total": cap, "total_capped": true``; otherwise ``total`` is exact and ``total_capped`` false.

The cap is ``Settings.total_count_cap`` (``TOTAL_COUNT_CAP``, default 300, clarin.config), handed to the list
services through ``state.settings``; measured: at 100k leads / 30k contacts / 5k chats a capped count of a common
term costs about what the whole count costs at 10k leads (bench/RESULTS.md).
"""

from __future__ import annotations


def capped(counted: int, cap: int) -> tuple[int, bool]:
    """``(total, total_capped)`` from a count of at most ``cap + 1`` rows."""
    return (cap, True) if counted > cap else (counted, False)
