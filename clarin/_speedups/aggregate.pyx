# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled batch grouping helpers (twin of ``aggregate_pure.py``; identical results).

Typed index loops over the input lists, ``PyDict_GetItemWithError`` / ``PyList_Append`` on
the result, and for :func:`count_by` a C array of counters (one dict lookup per element, no
int objects created until the end).
"""

from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_Append, PyList_GET_SIZE
from cpython.long cimport PyLong_AsSsize_t
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject

from clarin._speedups.aggregate_pure import _check_fields


cdef inline list _as_list(object seq):
    return seq if type(seq) is list else list(seq)


cdef inline int _check_size(list seq, Py_ssize_t i) except -1:
    # A key's __hash__/__eq__ could mutate the input list; never read past its end.
    if i >= PyList_GET_SIZE(seq):
        raise RuntimeError("input list changed size during grouping")
    return 0


def group_pairs(keys, values) -> dict:
    """``{key: [values...]}`` from two parallel sequences; ``ValueError`` if lengths differ."""
    cdef list ks = _as_list(keys)
    cdef list vs = _as_list(values)
    cdef Py_ssize_t n = len(ks)
    cdef Py_ssize_t i
    cdef dict out = {}
    cdef PyObject *bucket
    cdef object k
    if n != len(vs):
        raise ValueError(f"keys and values differ in length ({n} != {len(vs)})")
    for i in range(n):
        _check_size(ks, i)
        _check_size(vs, i)
        k = ks[i]
        bucket = PyDict_GetItemWithError(out, k)
        if bucket is NULL:
            PyDict_SetItem(out, k, [vs[i]])
        else:
            PyList_Append(<object>bucket, vs[i])
    return out


def group_rows(rows, key, fields=None) -> dict:
    """Group mapping rows by ``row[key]``; items are the rows, or new dicts of ``fields``."""
    cdef tuple flds = _check_fields(fields)
    cdef list rs = _as_list(rows)
    cdef Py_ssize_t n = len(rs)
    cdef Py_ssize_t i
    cdef dict out = {}
    cdef dict sub
    cdef PyObject *bucket
    cdef object row, k, f, item
    cdef bint exact
    for i in range(n):
        _check_size(rs, i)
        row = rs[i]
        exact = type(row) is dict
        k = (<dict>row)[key] if exact else row[key]
        if flds is None:
            item = row
        else:
            sub = {}
            for f in flds:
                PyDict_SetItem(sub, f, (<dict>row)[f] if exact else row[f])
            item = sub
        bucket = PyDict_GetItemWithError(out, k)
        if bucket is NULL:
            PyDict_SetItem(out, k, [item])
        else:
            PyList_Append(<object>bucket, item)
    return out


def count_by(keys) -> dict:
    """``{key: count}`` in first-seen order."""
    cdef list ks = _as_list(keys)
    cdef Py_ssize_t n = len(ks)
    cdef Py_ssize_t i
    cdef Py_ssize_t nuniq = 0
    cdef Py_ssize_t pos = 0
    cdef dict out = {}  # key -> slot index while counting, key -> count at the end
    cdef PyObject *slot
    cdef PyObject *pkey
    cdef PyObject *pval
    cdef object k
    cdef Py_ssize_t *counts
    if n == 0:
        return out
    counts = <Py_ssize_t *>PyMem_Malloc(n * sizeof(Py_ssize_t))
    if counts is NULL:
        raise MemoryError()
    try:
        for i in range(n):
            _check_size(ks, i)
            k = ks[i]
            slot = PyDict_GetItemWithError(out, k)
            if slot is NULL:
                PyDict_SetItem(out, k, nuniq)
                counts[nuniq] = 1
                nuniq += 1
            else:
                counts[PyLong_AsSsize_t(<object>slot)] += 1
        # Replacing values of existing keys while iterating is allowed by PyDict_Next.
        while PyDict_Next(out, &pos, &pkey, &pval):
            PyDict_SetItem(out, <object>pkey, counts[PyLong_AsSsize_t(<object>pval)])
    finally:
        PyMem_Free(counts)
    return out
