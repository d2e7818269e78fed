# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled phone normalization (spec: integrations.md §A.13, Go ``NormalizePhone``).

Twin of ``phone_pure.py``: results are identical for every str. The work is done directly on
the str's internal code-point array (one specialization per 1-, 2- or 4-byte kind) in two
passes: the first finds the trimmed span, counts the kept characters (and their maximum), the
second writes them into a preallocated result of the exact size and canonical kind. No
intermediate Python objects are created, and an input that is already normalized is returned
as is. ``normalize_phones`` loops over the list in C on borrowed references.

Where the time goes (100k phones): the per-string work is ~10-15 ns; allocating and later
freeing 100k result strings costs more than that (pymalloc plus, on a fresh heap, page faults),
and that part is the same for the pure twin.

Step 6 ("exactly 9 characters") counts code points, like the pure twin. Go's ``len()`` counts
UTF-8 bytes, so for non-ASCII input the results can differ from the Go service
(``"9ñ2345678"`` gets the ``51`` prefix here but not in Go); for ASCII input they agree.
"""

from cpython.list cimport PyList_GET_ITEM, PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport (
    Py_UCS1,
    Py_UCS2,
    PyUnicode_1BYTE_DATA,
    PyUnicode_1BYTE_KIND,
    PyUnicode_2BYTE_KIND,
    PyUnicode_DATA,
    PyUnicode_KIND,
    PyUnicode_New,
    PyUnicode_WRITE,
)

# The same macros on borrowed pointers: the bulk loop never touches the input's refcounts.
cdef extern from "Python.h":
    bint _u_check "PyUnicode_Check"(PyObject *o) nogil
    bint _u_check_exact "PyUnicode_CheckExact"(PyObject *o) nogil
    Py_ssize_t _u_len "PyUnicode_GET_LENGTH"(PyObject *o) nogil
    unsigned int _u_kind "PyUnicode_KIND"(PyObject *o) nogil
    void *_u_data "PyUnicode_DATA"(PyObject *o) nogil

cdef extern from *:
    """
    /* Strings are always "ready" from 3.12 on (and PyUnicode_READY is deprecated there). */
    static CYTHON_INLINE int clarin_unicode_ready(PyObject *o) {
    #if PY_VERSION_HEX < 0x030C0000
        return PyUnicode_READY(o);
    #else
        (void)o;
        return 0;
    #endif
    }
    """
    int clarin_unicode_ready(PyObject *o) except -1

cdef extern from *:
    """
    /* Bulk loop: touch the str objects a few items ahead (they are usually cache misses). */
    #if defined(__GNUC__) || defined(__clang__)
    #define clarin_prefetch(p) do { \
            const char *clarin_pf_ = (const char *)(p); \
            __builtin_prefetch(clarin_pf_); __builtin_prefetch(clarin_pf_ + 64); \
        } while (0)
    #else
    #define clarin_prefetch(p) ((void)(p))
    #endif
    """
    void clarin_prefetch(const void *p) nogil

ctypedef fused wide_t:  # the 1-byte kind has its own function, _normalize_ucs1
    Py_UCS2
    Py_UCS4

cdef enum:
    C_SPACE = 0x20
    C_QUOTE = 0x27
    C_LPAREN = 0x28
    C_RPAREN = 0x29
    C_PLUS = 0x2B
    C_DASH = 0x2D
    C_ONE = 0x31
    C_FIVE = 0x35
    C_NINE = 0x39


cdef inline bint _is_go_space(Py_UCS4 c) noexcept nogil:
    """Go ``unicode.IsSpace`` (Unicode White_Space): not U+001C..U+001F, not U+FEFF."""
    if c < 0x80:
        return c == C_SPACE or (c >= 0x09 and c <= 0x0D)
    if c < 0x1680:
        return c == 0x85 or c == 0xA0
    if c >= 0x2000 and c <= 0x200A:
        return True
    return (
        c == 0x1680 or c == 0x2028 or c == 0x2029 or c == 0x202F or c == 0x205F or c == 0x3000
    )


# 0 for the characters deleted by steps 3/4 (space, '-', '(', ')'), 1 for every other byte
cdef unsigned char _KEEP[256]
for _b in range(256):
    _KEEP[_b] = 0 if _b in (C_SPACE, C_DASH, C_LPAREN, C_RPAREN) else 1
del _b

cdef enum:
    PREFETCH_DISTANCE = 8  # items ahead to prefetch in normalize_phones


cdef inline bint _is_deleted(Py_UCS4 c) noexcept nogil:
    """Steps 3 and 4: every U+0020 space, ``-``, ``(`` and ``)`` is removed."""
    return c == C_SPACE or c == C_DASH or c == C_LPAREN or c == C_RPAREN


cdef str _normalize(PyObject *s, const wide_t *p, Py_ssize_t n):
    """2- and 4-byte kinds (rare for phones): generic reads and writes of code points."""
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t end = n
    cdef Py_ssize_t i, j
    cdef Py_ssize_t kept = 0
    cdef Py_ssize_t first = -1    # index of the 1st kept char
    cdef Py_ssize_t second = -1   # index of the 2nd kept char
    cdef Py_UCS4 c
    cdef Py_UCS4 maxc = 0
    cdef bint plus, prefix
    cdef Py_ssize_t lead, total
    cdef str out
    cdef void *od
    cdef int okind

    # 1. trim Go whitespace at both ends
    while start < end and _is_go_space(p[start]):
        start += 1
    while end > start and _is_go_space(p[end - 1]):
        end -= 1
    # 2. one leading apostrophe
    if start < end and p[start] == C_QUOTE:
        start += 1
    # 3./4. count what survives the deletions
    for i in range(start, end):
        c = p[i]
        if _is_deleted(c):
            continue
        if first < 0:
            first = i
        elif second < 0:
            second = i
        kept += 1
        if c > maxc:
            maxc = c
    # 5. one leading '+' of the remaining text
    plus = kept > 0 and p[first] == C_PLUS
    if plus:
        kept -= 1
        lead = second
    else:
        lead = first
    # 6. exactly 9 code points starting with '9' -> prefix "51"
    prefix = kept == 9 and p[lead] == C_NINE

    if start == 0 and end == n and kept == n and not prefix and _u_check_exact(s):
        return <str>s  # nothing to change (kept == n also rules out a stripped '+')
    total = kept + 2 if prefix else kept
    if total == 0:
        return ""
    if maxc < 0x80:
        maxc = 0x7F  # canonical kind: the "51" prefix is ASCII too

    out = PyUnicode_New(total, maxc)
    okind = PyUnicode_KIND(out)
    od = PyUnicode_DATA(out)
    j = 0
    if prefix:
        PyUnicode_WRITE(okind, od, 0, C_FIVE)
        PyUnicode_WRITE(okind, od, 1, C_ONE)
        j = 2
    for i in range(lead, end):
        c = p[i]
        if not _is_deleted(c):
            PyUnicode_WRITE(okind, od, j, c)
            j += 1
    return out


cdef str _normalize_ucs1(PyObject *s, const Py_UCS1 *p, Py_ssize_t n):
    """Fast path for 1-byte (Latin-1/ASCII) strings; same result as ``_normalize``.

    Both passes are branch-free per character: the first only counts (``_KEEP`` table), the
    second always stores and advances only past kept characters, writing straight into the
    result (which has room for the terminating NUL, restored at the end).
    """
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t end = n
    cdef Py_ssize_t i, first, kept, total
    cdef Py_ssize_t j = 0
    cdef Py_UCS1 c
    cdef Py_UCS1 acc = 0
    cdef bint prefix
    cdef str out
    cdef Py_UCS1 *o

    while start < end and _is_go_space(p[start]):
        start += 1
    while end > start and _is_go_space(p[end - 1]):
        end -= 1
    if start < end and p[start] == C_QUOTE:
        start += 1
    kept = 0
    for i in range(start, end):
        c = p[i]
        kept += _KEEP[c]
        acc |= c
    if kept == 0:
        return ""
    first = start
    while not _KEEP[p[first]]:
        first += 1
    if p[first] == C_PLUS:  # step 5: drop it, the text starts after it
        first += 1
        kept -= 1
        if kept == 0:
            return ""
        while not _KEEP[p[first]]:
            first += 1
    prefix = kept == 9 and p[first] == C_NINE
    if kept == n and not prefix and _u_check_exact(s):
        return <str>s  # nothing trimmed, deleted or stripped
    total = kept + 2 if prefix else kept
    out = PyUnicode_New(total, 0xFF if acc & 0x80 else 0x7F)
    o = PyUnicode_1BYTE_DATA(out)
    if prefix:
        o[0] = C_FIVE
        o[1] = C_ONE
        o += 2
    for i in range(first, end):
        c = p[i]
        o[j] = c
        j += _KEEP[c]
    o[j] = 0  # j == kept: the NUL terminator slot may have received a deleted char
    return out


cdef inline str _dispatch(PyObject *s):
    """``s`` must be a (borrowed) str or str subclass."""
    clarin_unicode_ready(s)
    cdef Py_ssize_t n = _u_len(s)
    cdef unsigned int kind = _u_kind(s)
    cdef void *data = _u_data(s)
    if kind == PyUnicode_1BYTE_KIND:
        return _normalize_ucs1(s, <const Py_UCS1 *>data, n)
    if kind == PyUnicode_2BYTE_KIND:
        return _normalize(s, <const Py_UCS2 *>data, n)
    return _normalize(s, <const Py_UCS4 *>data, n)


def normalize_phone(s) -> str:
    """Normalize a phone number exactly like the Go service's ``NormalizePhone`` (§A.13)."""
    if not isinstance(s, str):  # str subclasses are accepted; the result is always an exact str
        raise TypeError(f"normalize_phone() argument must be str, not {type(s).__name__}")
    return _dispatch(<PyObject *>s)


def normalize_phones(items) -> list:
    """Element-wise :func:`normalize_phone` over a list (or any iterable) of str."""
    cdef list seq = items if type(items) is list else list(items)
    cdef Py_ssize_t i
    cdef Py_ssize_t n = len(seq)
    cdef list out = PyList_New(n)  # NULL slots; safe to drop on error (list_dealloc uses XDECREF)
    cdef PyObject *item
    cdef str res
    cdef Py_ssize_t ahead
    # Items are used as borrowed references: nothing in the loop runs Python code, so `seq`
    # cannot change under us, and not touching their refcounts keeps the inputs' cache lines clean.
    for i in range(n):
        ahead = i + PREFETCH_DISTANCE
        if ahead < n:
            clarin_prefetch(<const void *>PyList_GET_ITEM(seq, ahead))
        item = PyList_GET_ITEM(seq, i)
        if not _u_check(item):
            raise TypeError(
                f"normalize_phones() items must be str, not {type(<object>item).__name__} (index {i})"
            )
        res = _dispatch(item)
        Py_INCREF(res)  # PyList_SET_ITEM steals a reference
        PyList_SET_ITEM(out, i, res)
    return out


# -- the phone rule: normalised, then 7-15 ASCII digits (twin: phone_pure.is_phone / phone_number) ------------
PHONE_MIN_DIGITS = 7
PHONE_MAX_DIGITS = 15

cdef enum:
    C_ZERO = 0x30
    MIN_DIGITS = 7
    MAX_DIGITS = 15


cdef inline bint _is_phone(PyObject *s) noexcept:
    """``s`` (a borrowed str) is 7-15 code points, each an ASCII digit (ASCII strs are the 1-byte kind)."""
    cdef Py_ssize_t n = _u_len(s)
    cdef Py_ssize_t i
    cdef const Py_UCS1 *p
    if n < MIN_DIGITS or n > MAX_DIGITS or _u_kind(s) != PyUnicode_1BYTE_KIND:
        return False
    p = <const Py_UCS1 *>_u_data(s)
    for i in range(n):
        if p[i] < C_ZERO or p[i] > C_NINE:
            return False
    return True


def is_phone(s) -> bool:
    """Whether an already normalised ``s`` is a phone number: 7 to 15 ASCII digits, nothing else."""
    if not isinstance(s, str):
        raise TypeError(f"is_phone() argument must be str, not {type(s).__name__}")
    clarin_unicode_ready(<PyObject *>s)
    return _is_phone(<PyObject *>s)


def phone_number(s) -> str:
    """``normalize_phone(s)`` when that is a phone number (7-15 ASCII digits), else ``""``."""
    if not isinstance(s, str):
        raise TypeError(f"phone_number() argument must be str, not {type(s).__name__}")
    cdef str res = _dispatch(<PyObject *>s)
    return res if _is_phone(<PyObject *>res) else ""


def phone_numbers(items) -> list:
    """Element-wise :func:`phone_number` over a list (or any iterable) of str."""
    cdef list seq = items if type(items) is list else list(items)
    cdef Py_ssize_t i
    cdef Py_ssize_t n = len(seq)
    cdef list out = PyList_New(n)
    cdef PyObject *item
    cdef str res
    for i in range(n):
        item = PyList_GET_ITEM(seq, i)
        if not _u_check(item):
            raise TypeError(
                f"phone_numbers() items must be str, not {type(<object>item).__name__} (index {i})"
            )
        res = _dispatch(item)
        if not _is_phone(<PyObject *>res):
            res = ""
        Py_INCREF(res)  # PyList_SET_ITEM steals a reference
        PyList_SET_ITEM(out, i, res)
    return out
