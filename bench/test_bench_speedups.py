"""Benchmarks: compiled (Cython) vs pure-Python twins of clarin._speedups.

Run: ``pytest bench/test_bench_speedups.py --benchmark-only``. The compiled extensions must be
built (the module fails to import otherwise); with ``CLARIN_NO_CYTHON=1`` only the pure
variants run.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from clarin._speedups import aggregate_pure, phone_pure

if os.environ.get("CLARIN_NO_CYTHON", "").strip().lower() in {"1", "true", "yes", "on"}:
    IMPLS: dict[str, tuple[ModuleType, ModuleType]] = {"python": (phone_pure, aggregate_pure)}
else:
    from clarin._speedups import aggregate as aggregate_c
    from clarin._speedups import phone as phone_c

    IMPLS = {"cython": (phone_c, aggregate_c), "python": (phone_pure, aggregate_pure)}

impl = pytest.mark.parametrize("impl", list(IMPLS))


def _phones(n: int, seed: int = 1) -> list[str]:
    """Kommo-style phone values: "+51 987-654-321", "'987654321", "987654321" (random digits)."""
    rnd = random.Random(seed)
    formats: list[Callable[[str], str]] = [
        lambda d: f"+51 {d[:3]}-{d[3:6]}-{d[6:]}",
        lambda d: f"'{d}",
        lambda d: d,
    ]
    return [rnd.choice(formats)(f"9{rnd.randrange(10**8):08d}") for _ in range(n)]


PHONES_100K = _phones(100_000)
_rnd = random.Random(7)
_TAGS = [f"tag-{i}" for i in range(50)]
LEAD_IDS_300K = [_rnd.randrange(30_000) for _ in range(300_000)]
TAGS_300K = [_rnd.choice(_TAGS) for _ in range(300_000)]
ROWS_100K = [
    {"lead_id": lead, "tag": tag, "color": "#fff"}
    for lead, tag in zip(LEAD_IDS_300K[:100_000], TAGS_300K[:100_000], strict=True)
]


@impl
def test_normalize_phone_single(benchmark: Any, impl: str) -> None:
    benchmark.group = "normalize_phone (single)"
    fn = IMPLS[impl][0].normalize_phone
    assert benchmark(fn, "+51 987-654-321") == "51987654321"


@impl
def test_normalize_phones_100k(benchmark: Any, impl: str) -> None:
    benchmark.group = "normalize_phones (100k)"
    out = benchmark(IMPLS[impl][0].normalize_phones, PHONES_100K)
    assert len(out) == len(PHONES_100K)


@impl
def test_group_pairs_300k(benchmark: Any, impl: str) -> None:
    benchmark.group = "group_pairs (300k lead/tag pairs)"
    out = benchmark(IMPLS[impl][1].group_pairs, LEAD_IDS_300K, TAGS_300K)
    assert sum(map(len, out.values())) == 300_000


@impl
def test_group_rows_100k(benchmark: Any, impl: str) -> None:
    benchmark.group = "group_rows (100k rows, 1 field)"
    out = benchmark(IMPLS[impl][1].group_rows, ROWS_100K, "lead_id", ("tag",))
    assert sum(map(len, out.values())) == 100_000


@impl
def test_count_by_300k(benchmark: Any, impl: str) -> None:
    benchmark.group = "count_by (300k keys)"
    out = benchmark(IMPLS[impl][1].count_by, TAGS_300K)
    assert sum(out.values()) == 300_000
