# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled batch grouping helpers (twin of ``aggregate_pure.py``; identical results).

All three functions work in passes over the input list with typed index loops:

1. one ``PyDict_GetItemWithError`` per element maps its key to a group number (new keys are
   inserted in first-seen order) and the group sizes are counted in a C array;
2. each group gets its list allocated at its exact final size (no ``append`` regrowth);
3. the values are stored with ``PyList_SET_ITEM``; no Python code runs in this pass.

``count_by`` stops after step 1 and stores the counts.
"""

from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsSsize_t
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF

from clarin._speedups.aggregate_pure import _check_fields


cdef inline list _as_list(object seq):
    return seq if type(seq) is list else list(seq)


cdef inline int _check_size(list seq, Py_ssize_t n) except -1:
    # A key's __hash__/__eq__ (or a row's __getitem__) may run Python code that mutates the
    # input list; never read past its end.
    if PyList_GET_SIZE(seq) != n:
        raise RuntimeError("input list changed size during grouping")
    return 0


cdef class _Groups:
    """Key -> group number for ``n`` elements, in first-seen order, plus per-group sizes."""

    cdef dict index         # key -> group number (int); becomes the result dict
    cdef Py_ssize_t n
    cdef Py_ssize_t ngroups
    cdef Py_ssize_t *group  # group number of each element (NULL when not recorded)
    cdef Py_ssize_t *size   # element count of each group

    def __cinit__(self, Py_ssize_t n, bint record=True):
        cdef size_t nbytes = (n if n > 0 else 1) * sizeof(Py_ssize_t)
        self.index = {}
        self.n = n
        self.ngroups = 0
        self.group = <Py_ssize_t *>PyMem_Malloc(nbytes) if record else NULL
        self.size = <Py_ssize_t *>PyMem_Malloc(nbytes)
        if self.size is NULL or (record and self.group is NULL):
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.group)
        PyMem_Free(self.size)

    cdef inline int add(self, Py_ssize_t i, object key) except -1:
        cdef PyObject *slot = PyDict_GetItemWithError(self.index, key)
        cdef Py_ssize_t g
        if slot is NULL:
            g = self.ngroups
            PyDict_SetItem(self.index, key, g)
            self.size[g] = 1
            self.ngroups = g + 1
        else:
            g = PyLong_AsSsize_t(<object>slot)
            self.size[g] += 1
        if self.group is not NULL:
            self.group[i] = g
        return 0

    cdef dict fill(self, list values):
        """Steps 2 and 3: the result dict with the ``values`` (len ``n``) split by group."""
        cdef PyObject **lists
        cdef PyObject *pkey
        cdef PyObject *pval
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t g, i
        cdef object lst, v
        if self.n == 0:
            return self.index
        assert self.group is not NULL
        lists = <PyObject **>PyMem_Malloc(self.ngroups * sizeof(PyObject *))
        if lists is NULL:
            raise MemoryError()
        try:
            # Replacing values of existing keys while iterating is allowed by PyDict_Next.
            while PyDict_Next(self.index, &pos, &pkey, &pval):
                g = PyLong_AsSsize_t(<object>pval)
                lst = PyList_New(self.size[g])  # NULL slots, all filled below
                lists[g] = <PyObject *>lst       # borrowed: the dict owns it
                PyDict_SetItem(self.index, <object>pkey, lst)
                self.size[g] = 0                 # from here on: next free slot
            # PyList_New may run the GC (and so finalizers); nothing below runs Python code
            _check_size(values, self.n)
            for i in range(self.n):
                g = self.group[i]
                v = <object>PyList_GET_ITEM(values, i)
                Py_INCREF(v)  # PyList_SET_ITEM steals a reference
                PyList_SET_ITEM(<object>lists[g], self.size[g], v)
                self.size[g] += 1
        finally:
            PyMem_Free(lists)
        return self.index


def group_pairs(keys, values) -> dict:
    """``{key: [values...]}`` from two parallel sequences; ``ValueError`` if lengths differ."""
    cdef list ks = _as_list(keys)
    cdef list vs = _as_list(values)
    cdef Py_ssize_t n = len(ks)
    cdef Py_ssize_t i
    if n != len(vs):
        raise ValueError(f"keys and values differ in length ({n} != {len(vs)})")
    cdef _Groups groups = _Groups(n)
    cdef object k
    for i in range(n):
        _check_size(ks, n)
        k = <object>PyList_GET_ITEM(ks, i)  # own a reference: hashing may run Python code
        groups.add(i, k)
    return groups.fill(vs)


def group_rows(rows, key, fields=None) -> dict:
    """Group mapping rows by ``row[key]``; items are the rows, or new dicts of ``fields``."""
    cdef tuple flds = _check_fields(fields)
    cdef list rs = _as_list(rows)
    cdef Py_ssize_t n = len(rs)
    cdef Py_ssize_t i
    cdef list items
    cdef dict sub
    cdef object row, f
    cdef bint exact
    cdef _Groups groups = _Groups(n)
    # [None] * n, not PyList_New(n): row/key code may run here and must never see NULL slots
    items = rs if flds is None else [None] * n
    for i in range(n):
        _check_size(rs, n)
        row = <object>PyList_GET_ITEM(rs, i)
        exact = type(row) is dict
        groups.add(i, (<dict>row)[key] if exact else row[key])
        if flds is not None:
            sub = {}
            for f in flds:
                PyDict_SetItem(sub, f, (<dict>row)[f] if exact else row[f])
            items[i] = sub
    return groups.fill(items)


def count_by(keys) -> dict:
    """``{key: count}`` in first-seen order."""
    cdef list ks = _as_list(keys)
    cdef Py_ssize_t n = len(ks)
    cdef Py_ssize_t i
    cdef Py_ssize_t pos = 0
    cdef PyObject *pkey
    cdef PyObject *pval
    cdef _Groups groups = _Groups(n, False)
    cdef object k
    for i in range(n):
        _check_size(ks, n)
        k = <object>PyList_GET_ITEM(ks, i)  # own a reference: hashing may run Python code
        groups.add(i, k)
    # Replacing values of existing keys while iterating is allowed by PyDict_Next.
    while PyDict_Next(groups.index, &pos, &pkey, &pval):
        PyDict_SetItem(groups.index, <object>pkey, groups.size[PyLong_AsSsize_t(<object>pval)])
    return groups.index
