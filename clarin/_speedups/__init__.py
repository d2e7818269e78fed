"""Optional compiled hot paths with pure-Python twins.

The Cython extensions (``phone``, ``aggregate``) are used when they were built; otherwise, or
when ``CLARIN_PURE_PYTHON=1`` is set, the behaviour-identical pure modules (``phone_pure``,
``aggregate_pure``) are used. ``IMPLEMENTATION`` tells which one is active; ``PURE`` always
exposes the pure functions (for tests and benchmarks).
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from clarin._speedups import aggregate_pure, phone_pure

__all__ = [
    "IMPLEMENTATION",
    "PURE",
    "aggregate_pure",
    "count_by",
    "group_pairs",
    "group_rows",
    "is_phone",
    "normalize_phone",
    "normalize_phones",
    "phone_number",
    "phone_numbers",
    "phone_pure",
]

_TRUTHY = frozenset({"1", "true", "yes", "on"})


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


PURE: SimpleNamespace = SimpleNamespace(
    normalize_phone=phone_pure.normalize_phone,
    normalize_phones=phone_pure.normalize_phones,
    is_phone=phone_pure.is_phone,
    phone_number=phone_pure.phone_number,
    phone_numbers=phone_pure.phone_numbers,
    group_pairs=aggregate_pure.group_pairs,
    group_rows=aggregate_pure.group_rows,
    count_by=aggregate_pure.count_by,
)

IMPLEMENTATION: str
if _env_flag("CLARIN_PURE_PYTHON"):
    from clarin._speedups.aggregate_pure import count_by, group_pairs, group_rows
    from clarin._speedups.phone_pure import (
        is_phone,
        normalize_phone,
        normalize_phones,
        phone_number,
        phone_numbers,
    )

    IMPLEMENTATION = "python"
else:
    try:
        from clarin._speedups.aggregate import count_by, group_pairs, group_rows
        from clarin._speedups.phone import (
            is_phone,
            normalize_phone,
            normalize_phones,
            phone_number,
            phone_numbers,
        )

        IMPLEMENTATION = "cython"
    except ImportError:  # not built (CLARIN_NO_CYTHON=1, no compiler, sdist without build)
        from clarin._speedups.aggregate_pure import count_by, group_pairs, group_rows
        from clarin._speedups.phone_pure import (
            is_phone,
            normalize_phone,
            normalize_phones,
            phone_number,
            phone_numbers,
        )

        IMPLEMENTATION = "python"
