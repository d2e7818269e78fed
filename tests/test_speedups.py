"""Tests for clarin._speedups: spec table (§A.13) and compiled == pure equivalence.

The compiled extensions are required: if they are not built these tests FAIL (build with
``python setup.py build_ext --inplace`` or ``pip install -e .``). Only with ``CLARIN_NO_CYTHON=1``
are the compiled variants left out (the pure twins are still tested).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clarin._speedups as speedups
from clarin._speedups import aggregate_pure, phone_pure

_TRUTHY = {"1", "true", "yes", "on"}
NO_CYTHON = os.environ.get("CLARIN_NO_CYTHON", "").strip().lower() in _TRUTHY
PURE_FORCED = os.environ.get("CLARIN_PURE_PYTHON", "").strip().lower() in _TRUTHY

_compiled_error: ImportError | None = None
phone_c: ModuleType | None = None
aggregate_c: ModuleType | None = None
if not NO_CYTHON:
    try:
        from clarin._speedups import aggregate as aggregate_c
        from clarin._speedups import phone as phone_c
    except ImportError as exc:  # reported as a failure by the fixtures below, never a skip
        _compiled_error = exc

IMPLS = ["python"] if NO_CYTHON else ["python", "cython"]
needs_compiled = pytest.mark.skipif(NO_CYTHON, reason="CLARIN_NO_CYTHON=1: no compiled extensions")


def _require_compiled() -> tuple[ModuleType, ModuleType]:
    if phone_c is None or aggregate_c is None:
        pytest.fail(
            "compiled clarin._speedups extensions are missing "
            f"({_compiled_error}); run `python setup.py build_ext --inplace` "
            "or set CLARIN_NO_CYTHON=1 to test only the pure-Python twins"
        )
    return phone_c, aggregate_c


@pytest.fixture(params=IMPLS)
def phone(request: pytest.FixtureRequest) -> ModuleType:
    return phone_pure if request.param == "python" else _require_compiled()[0]


@pytest.fixture(params=IMPLS)
def aggregate(request: pytest.FixtureRequest) -> ModuleType:
    return aggregate_pure if request.param == "python" else _require_compiled()[1]


# --------------------------------------------------------------------------- spec table §A.13

A13_TABLE = [
    ("987654321", "51987654321"),
    ("912345678", "51912345678"),
    ("51987654321", "51987654321"),
    ("+51987654321", "51987654321"),
    ("+51 987 654 321", "51987654321"),
    ("+51-987-654-321", "51987654321"),
    ("(+51) 987-654-321", "51987654321"),
    ("+(51)987654321", "51987654321"),
    ("'+51987654321", "51987654321"),
    ("'987654321", "51987654321"),
    ("  +51 987-654-321  ", "51987654321"),
    ("' 987654321", "51987654321"),
    ("+ 987654321", "51987654321"),
    ("-987654321", "51987654321"),
    ("9 8 7 6 5 4 3 2 1", "51987654321"),
    ("987654321\t", "51987654321"),
    ("987654321\u00a0", "51987654321"),
    ("987\t654321", "987\t654321"),
    ("''987654321", "'987654321"),
    ("++51987654321", "+51987654321"),
    ("987654321'", "987654321'"),
    ("812345678", "812345678"),
    ("98765432", "98765432"),
    ("9876543210", "9876543210"),
    ("012345678", "012345678"),
    ("(01) 234-5678", "012345678"),
    ("+1 (555) 123-4567", "15551234567"),
    ("0051987654321", "0051987654321"),
    ("987.654.321", "987.654.321"),
    ("987654321 ext 2", "987654321ext2"),
    ("+51 (1) 234-5678", "5112345678"),
    ("abc", "abc"),
    ("", ""),
    # non-idempotent edge cases (the lead JID is normalized twice, §A.10.3)
    ("++987654321", "+987654321"),
]


@pytest.mark.parametrize(("raw", "expected"), A13_TABLE)
def test_a13_table(phone: ModuleType, raw: str, expected: str) -> None:
    assert phone.normalize_phone(raw) == expected


def test_a13_table_bulk(phone: ModuleType) -> None:
    raws = [raw for raw, _ in A13_TABLE]
    assert phone.normalize_phones(raws) == [exp for _, exp in A13_TABLE]
    assert phone.normalize_phones(tuple(raws)) == [exp for _, exp in A13_TABLE]
    assert phone.normalize_phones([]) == []


@pytest.mark.parametrize(
    ("raw", "once", "twice"),
    [
        ("987654321", "51987654321", "51987654321"),
        ("''987654321", "'987654321", "51987654321"),
        ("++987654321", "+987654321", "51987654321"),
    ],
)
def test_a13_non_idempotent(phone: ModuleType, raw: str, once: str, twice: str) -> None:
    assert phone.normalize_phone(raw) == once
    assert phone.normalize_phone(once) == twice


# Go unicode.IsSpace / strings.TrimSpace set (Unicode White_Space).
GO_SPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)}
GO_SPACE |= {0x2028, 0x2029, 0x202F, 0x205F, 0x3000}


def test_go_space_set_is_python_isspace_minus_info_separators() -> None:
    python_space = {c for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert python_space - GO_SPACE == {0x1C, 0x1D, 0x1E, 0x1F}
    assert GO_SPACE < python_space
    assert set(map(ord, phone_pure.GO_WHITESPACE)) == GO_SPACE


def test_trim_set_exact(phone: ModuleType) -> None:
    # every code point that could be Unicode White_Space is below U+3100 (checked above)
    for cp in range(0x3100):
        ch = chr(cp)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        for raw in (ch + "x9", "x9" + ch, ch * 2 + "x9" + ch):
            got = phone.normalize_phone(raw)
            removable = cp in GO_SPACE or ch in " -()" or (ch in "'+" and raw == ch + "x9")
            assert (got == "x9") == removable, (hex(cp), raw, got)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1c987654321\x1f", "\x1c987654321\x1f"),  # not Go whitespace: kept, length 11
        ("\ufeff987654321", "\ufeff987654321"),  # BOM is not whitespace
        ("\u2003'+51 987 654 321\u3000", "51987654321"),
        ("\u0085987654321\u2029", "51987654321"),
        ("987\u00a0654321", "987\u00a0654321"),  # inner NBSP stays
        ("\t' 9", "9"),
        ("'", ""),
        ("+", ""),
        ("'+", ""),
        ("  ", ""),
        ("-()", ""),
        ("'+9", "9"),
        ("+9", "9"),
        # step 6 counts code points, not UTF-8 bytes like Go (documented deviation)
        ("9ñ2345678", "519ñ2345678"),
        ("9ñ234567", "9ñ234567"),
        ("9\u20ac2345678", "519\u20ac2345678"),
        ("9\U0001f4de2345678", "519\U0001f4de2345678"),
        ("\u3000+\U0001f4de (1)", "\U0001f4de1"),
        ("ÿ(ÿ)", "ÿÿ"),
    ],
)
def test_edge_cases(phone: ModuleType, raw: str, expected: str) -> None:
    assert phone.normalize_phone(raw) == expected
    assert phone.normalize_phones([raw]) == [expected]


def test_result_is_canonical_exact_str(phone: ModuleType) -> None:
    class S(str):
        pass

    for raw in ("987654321", "51987654321", "\u20ac9", "\U0001f4de", "ÿ-ÿ", "x\u20ac-"):
        for value in (raw, S(raw)):
            out = phone.normalize_phone(value)
            assert type(out) is str
            # a non-canonical (too wide) string would compare unequal to the literal
            assert out == phone_pure.normalize_phone(str(raw))
            assert hash(out) == hash(str(out))
    assert phone.normalize_phone("x\u20ac-") == "x\u20ac"
    assert phone.normalize_phone("\u20ac-").encode() == "\u20ac".encode()
    assert phone.normalize_phone("x \U0001f4de") == "x\U0001f4de"


def test_type_errors(phone: ModuleType) -> None:
    with pytest.raises(TypeError):
        phone.normalize_phone(987654321)
    with pytest.raises(TypeError):
        phone.normalize_phone(None)
    with pytest.raises(TypeError):
        phone.normalize_phone(b"987654321")
    with pytest.raises(TypeError):
        phone.normalize_phones(["987654321", 5])


# --------------------------------------------------------------------------- compiled == pure

PHONEISH = [*"0123456789+-()' \t\u00a0", "\u3000", "\u2003", "\x1c", "\ufeff", ".", "ñ", "\U0001f4de"]
phoneish_text = st.text(alphabet=st.one_of(st.sampled_from(PHONEISH), st.characters()), max_size=24)
any_text = st.text()


@needs_compiled
@given(st.one_of(any_text, phoneish_text))
def test_normalize_phone_compiled_equals_pure(s: str) -> None:
    phone_mod, _ = _require_compiled()
    assert phone_mod.normalize_phone(s) == phone_pure.normalize_phone(s)


@needs_compiled
@settings(max_examples=300)
@given(st.lists(st.one_of(any_text, phoneish_text), max_size=40))
def test_normalize_phones_compiled_equals_pure(items: list[str]) -> None:
    phone_mod, _ = _require_compiled()
    expected = [phone_pure.normalize_phone(s) for s in items]
    assert phone_mod.normalize_phones(items) == expected
    assert phone_pure.normalize_phones(items) == expected


# --------------------------------------------------------------------------- the phone rule (7-15 ASCII digits)

HOSTILE_PHONES = [
    "📞5491155551234", "５４９１１５５５５１２３４", "٥٤٩١١٥٥٥٥١٢٣٤", "۵۴۹۱۱۵۵۵۵۱۲۳۴", "\u200f5491155551234",
    "5491155551234\u200e", "+-+-+-", "1e10", "../../etc/passwd", "5491155551234\x00", "¹²³⁴⁵⁶⁷⁸", "549115555123４",
    "123456", "1234567890123456", "+", "''", "", "  ", "9ñ2345678", "51.987.654.321", "987\t654321", "\ufeff51987654321",
]


@pytest.mark.parametrize("raw", HOSTILE_PHONES)
def test_phone_rule_rejects_hostile_input(phone: ModuleType, raw: str) -> None:
    assert phone.phone_number(raw) == ""
    assert phone.phone_numbers([raw, "51987654321"]) == ["", "51987654321"]
    assert phone.is_phone(phone.normalize_phone(raw)) is False


@pytest.mark.parametrize(("raw", "expected"), A13_TABLE)
def test_phone_rule_keeps_every_a13_result_that_is_a_phone(phone: ModuleType, raw: str, expected: str) -> None:
    """The Go original's output is kept for every input whose output is 7-15 ASCII digits."""
    is_phone = expected.isascii() and expected.isdigit() and 7 <= len(expected) <= 15
    assert phone.phone_number(raw) == (expected if is_phone else "")


def test_phone_rule_bounds_and_types(phone: ModuleType) -> None:
    assert [phone.is_phone("1" * n) for n in (6, 7, 15, 16)] == [False, True, True, False]
    assert phone.phone_number("+51 987-654-321") == "51987654321"
    assert phone.phone_number("987654321") == "51987654321"  # 9 digits starting with 9: Peru, then 11 digits

    class S(str):
        pass

    assert phone.is_phone(S("5491155551234")) is True
    assert type(phone.phone_number(S("5491155551234"))) is str
    for bad in (5491155551234, None, b"5491155551234"):
        with pytest.raises(TypeError):
            phone.phone_number(bad)
        with pytest.raises(TypeError):
            phone.is_phone(bad)
    with pytest.raises(TypeError):
        phone.phone_numbers(["5491155551234", 5])


digitish_text = st.text(alphabet=st.one_of(st.sampled_from([*PHONEISH, "٣", "５", "\u200f", "e"]),
                                           st.characters(categories=["Nd"])), min_size=5, max_size=18)


@needs_compiled
@settings(max_examples=500)
@given(st.one_of(any_text, phoneish_text, digitish_text, st.sampled_from(HOSTILE_PHONES)))
def test_phone_rule_compiled_equals_pure(s: str) -> None:
    phone_mod, _ = _require_compiled()
    expected = phone_pure.phone_number(s)
    assert phone_mod.phone_number(s) == expected
    assert phone_mod.is_phone(s) is phone_pure.is_phone(s)
    assert expected == "" or (expected.isascii() and expected.isdigit() and 7 <= len(expected) <= 15)
    assert expected in ("", phone_pure.normalize_phone(s))


@needs_compiled
@given(st.lists(st.one_of(any_text, digitish_text), max_size=30))
def test_phone_numbers_compiled_equals_pure(items: list[str]) -> None:
    phone_mod, _ = _require_compiled()
    assert phone_mod.phone_numbers(items) == phone_pure.phone_numbers(items) == [
        phone_pure.phone_number(s) for s in items]


keys_st = st.one_of(st.integers(-3, 6), st.text(alphabet="abc", max_size=2))
values_st = st.one_of(st.integers(), st.text(max_size=5), st.none())


@needs_compiled
@given(st.lists(st.tuples(keys_st, values_st), max_size=60))
def test_group_pairs_compiled_equals_pure(pairs: list[tuple[Any, Any]]) -> None:
    _, agg = _require_compiled()
    keys = [k for k, _ in pairs]
    values = [v for _, v in pairs]
    got = agg.group_pairs(keys, values)
    want = aggregate_pure.group_pairs(keys, values)
    assert got == want
    assert list(got) == list(want)  # same key order


@needs_compiled
@given(st.lists(keys_st, max_size=80))
def test_count_by_compiled_equals_pure(keys: list[Any]) -> None:
    _, agg = _require_compiled()
    got = agg.count_by(keys)
    want = aggregate_pure.count_by(keys)
    assert got == want
    assert list(got.items()) == list(want.items())


rows_st = st.lists(
    st.fixed_dictionaries({"lead_id": keys_st, "tag": values_st, "name": st.text(max_size=3)}),
    max_size=40,
)


@needs_compiled
@given(rows_st, st.sampled_from([None, ("tag",), ("name", "tag"), ()]))
def test_group_rows_compiled_equals_pure(rows: list[dict[str, Any]], fields: tuple[str, ...] | None) -> None:
    _, agg = _require_compiled()
    got = agg.group_rows(rows, "lead_id", fields)
    want = aggregate_pure.group_rows(rows, "lead_id", fields)
    assert got == want
    assert list(got) == list(want)
    if fields is None:
        assert all(a is b for k in got for a, b in zip(got[k], want[k], strict=True))


# --------------------------------------------------------------------------- aggregate behaviour


def test_group_pairs(aggregate: ModuleType) -> None:
    out = aggregate.group_pairs([3, 1, 3, 2, 1], ["a", "b", "c", "d", "e"])
    assert out == {3: ["a", "c"], 1: ["b", "e"], 2: ["d"]}
    assert list(out) == [3, 1, 2]
    assert aggregate.group_pairs([], []) == {}
    assert aggregate.group_pairs((1, 1), iter("xy")) == {1: ["x", "y"]}
    with pytest.raises(ValueError):
        aggregate.group_pairs([1, 2], ["a"])
    with pytest.raises(TypeError):
        aggregate.group_pairs([[1]], ["unhashable key"])


def test_group_rows(aggregate: ModuleType) -> None:
    rows = [
        {"lead_id": "L2", "tag": "vip", "color": "red"},
        {"lead_id": "L1", "tag": "new", "color": "blue"},
        {"lead_id": "L2", "tag": "hot", "color": "green"},
    ]
    out = aggregate.group_rows(rows, "lead_id")
    assert list(out) == ["L2", "L1"]
    assert out["L2"][0] is rows[0] and out["L2"][1] is rows[2]
    sub = aggregate.group_rows(rows, "lead_id", ("tag",))
    assert sub == {"L2": [{"tag": "vip"}, {"tag": "hot"}], "L1": [{"tag": "new"}]}
    assert sub["L2"][0] is not rows[0]
    assert aggregate.group_rows(iter(rows), "lead_id", ["color", "tag"])["L1"] == [
        {"color": "blue", "tag": "new"}
    ]
    assert aggregate.group_rows([], "lead_id") == {}
    # non-dict mappings (e.g. defaultdict with __missing__) behave like row[key]
    dd: defaultdict[str, Any] = defaultdict(lambda: "dflt", {"tag": "x"})
    assert aggregate.group_rows([dd], "lead_id", ("tag", "other")) == {
        "dflt": [{"tag": "x", "other": "dflt"}]
    }
    with pytest.raises(KeyError):
        aggregate.group_rows([{"tag": "x"}], "lead_id")
    with pytest.raises(KeyError):
        aggregate.group_rows(rows, "lead_id", ("missing",))
    with pytest.raises(TypeError):
        aggregate.group_rows(rows, "lead_id", "tag")


def test_count_by(aggregate: ModuleType) -> None:
    out = aggregate.count_by(["b", "a", "b", 1, "b", 1])
    assert out == {"b": 3, "a": 1, 1: 2}
    assert list(out) == ["b", "a", 1]
    assert aggregate.count_by([]) == {}
    assert aggregate.count_by(iter("aab")) == {"a": 2, "b": 1}
    big = aggregate.count_by([i % 1000 for i in range(100_000)])
    assert len(big) == 1000 and set(big.values()) == {100}


def test_input_mutated_during_grouping_does_not_crash(aggregate: ModuleType) -> None:
    """A key's __hash__ (or a row's __getitem__) that empties the input must not crash."""
    keys: list[Any] = []
    rows: list[Any] = []

    class Evil:
        def __hash__(self) -> int:
            keys.clear()
            return 1

    class EvilRow(dict):  # a non-exact dict: goes through row[key]
        def __getitem__(self, name: str) -> Any:
            rows.clear()
            return super().__getitem__(name)

    def calls() -> list[Callable[[], Any]]:
        keys[:] = [Evil(), Evil(), Evil()]
        rows[:] = [EvilRow(k=1), EvilRow(k=2), EvilRow(k=1)]
        return [
            lambda: aggregate.count_by(keys),
            lambda: aggregate.group_pairs(keys, [1, 2, 3]),
            lambda: aggregate.group_rows(rows, "k"),
            lambda: aggregate.group_rows(rows, "k", ("k",)),
        ]

    for i in range(4):
        call = calls()[i]
        try:  # compiled: RuntimeError; pure: stops early or zip(strict=True) complains
            call()
        except (RuntimeError, ValueError):
            pass


# --------------------------------------------------------------------------- package facade


def test_facade_exports() -> None:
    for name in ("normalize_phone", "normalize_phones", "is_phone", "phone_number", "phone_numbers", "group_pairs",
                 "group_rows", "count_by"):
        assert callable(getattr(speedups, name))
        assert getattr(speedups.PURE, name) is getattr(
            phone_pure if "phone" in name else aggregate_pure, name
        )
    assert speedups.normalize_phone("+51 987-654-321") == "51987654321"
    assert speedups.IMPLEMENTATION in {"cython", "python"}


def test_facade_implementation() -> None:
    if PURE_FORCED:
        expected = "python"
    elif NO_CYTHON:  # extensions not required; the facade uses them only if they happen to exist
        try:
            from clarin._speedups import phone as _built  # noqa: F401
        except ImportError:
            expected = "python"
        else:
            expected = "cython"
    else:
        _require_compiled()
        expected = "cython"
    assert speedups.IMPLEMENTATION == expected
    if expected == "python":
        assert speedups.normalize_phone is phone_pure.normalize_phone
        assert speedups.count_by is aggregate_pure.count_by
    else:
        assert speedups.normalize_phone is not phone_pure.normalize_phone
        assert speedups.count_by is not aggregate_pure.count_by
