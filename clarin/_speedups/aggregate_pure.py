"""Pure-Python batch grouping helpers (twin of ``aggregate.pyx``).

Used when folding joined DB rows (e.g. lead x tag) into per-key lists. All results keep the
first-seen order of keys and the input order of values.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

__all__ = ["count_by", "group_pairs", "group_rows"]


def group_pairs(keys: Iterable[Hashable], values: Iterable[Any]) -> dict[Any, list[Any]]:
    """``{key: [values...]}`` from two parallel sequences; ``ValueError`` if lengths differ."""
    if not isinstance(keys, (list, tuple)):
        keys = list(keys)
    if not isinstance(values, (list, tuple)):
        values = list(values)
    if len(keys) != len(values):
        raise ValueError(f"keys and values differ in length ({len(keys)} != {len(values)})")
    out: dict[Any, list[Any]] = {}
    get = out.get
    for k, v in zip(keys, values, strict=True):
        bucket = get(k)
        if bucket is None:
            out[k] = [v]
        else:
            bucket.append(v)
    return out


def _check_fields(fields: Iterable[str] | None) -> tuple[str, ...] | None:
    if fields is None:
        return None
    if isinstance(fields, str):
        raise TypeError("fields must be a tuple of field names, not a str")
    return tuple(fields)


def group_rows(
    rows: Iterable[Mapping[str, Any]],
    key: str,
    fields: tuple[str, ...] | None = None,
) -> dict[Any, list[Any]]:
    """Group mapping rows by ``row[key]``.

    Each group item is the row itself when ``fields`` is None, else a new dict holding only
    ``fields`` (in that order). A missing key or field raises ``KeyError``.
    """
    flds = _check_fields(fields)
    out: dict[Any, list[Any]] = {}
    get = out.get
    for row in rows:
        k = row[key]
        item = row if flds is None else {f: row[f] for f in flds}
        bucket = get(k)
        if bucket is None:
            out[k] = [item]
        else:
            bucket.append(item)
    return out


def count_by(keys: Iterable[Hashable]) -> dict[Any, int]:
    """``{key: count}`` in first-seen order."""
    out: dict[Any, int] = {}
    get = out.get
    for k in keys:
        out[k] = get(k, 0) + 1
    return out
