"""Compiled ``Space.decode_random``: one trial's uniform draws -> its configuration.

:class:`RandomDecoder` is built once per space from ``Space._random_plan`` (name,
index, kind, constants and condition per parameter, in topological order) and then
turns a stream of ``rng`` (or given uniforms) into the configuration dict with the
same floating-point operations as the plan's Python loop
(``Space._decode_random_floats``): the products are kept apart from the sums
(``hp_rc_mul`` goes through a volatile, so no compiler fuses them into an FMA), the
exponential is libm's ``exp`` (the one ``math.exp`` calls), conditions compare with
Python's ``==``, and clamped values return the plan's own bound objects.  Parameters
the plan cannot describe in C (kind 4: any other distribution) call their ``decode``.
A test checks the result against ``Space.decode_random`` bit for bit.
"""
from cpython.dict cimport PyDict_SetItem, PyDict_GetItem
from cpython.ref cimport PyObject
from libc.math cimport exp
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t, int64_t

from hpcore._kernels.rng cimport Rng, rng_init, rng_uniform

cdef extern from *:
    """
    static double hp_rc_mul(double a, double b) {
        volatile double p = a * b;   /* never contracted with the following sum */
        return p;
    }
    """
    double hp_rc_mul(double a, double b) noexcept nogil

cdef enum:
    STACK = 32

cdef inline double _clamp01(double x) noexcept nogil:
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


cdef bint _holds(tuple cond, dict config) except -1:
    """``Space._cond_holds``: every parent present with a value ``==`` an allowed one."""
    cdef PyObject* p
    for pair in cond:
        parent, allowed = pair
        p = PyDict_GetItem(config, parent)
        if p is NULL:
            return False
        val = <object>p
        for v in allowed:
            if val == v:
                break
        else:
            return False
    return True


cdef class RandomDecoder:
    """``Space.decode_random`` for one space's plan (``Space._random_plan``).

    Parameters
    ----------
    plan : list of tuple
        ``(name, index, kind, a, b, c, condition)`` per parameter, topological order.
    n : int
        Number of parameters (uniforms per trial).
    keys : list of str or None
        The space's parameter order when it differs from the plan's (the result is
        reordered to it), else ``None``.
    """
    cdef Py_ssize_t n, rows
    cdef int* kind
    cdef Py_ssize_t* index
    cdef double* fa
    cdef double* fb
    cdef double* fc
    cdef double* fd
    cdef int64_t* ia
    cdef int64_t* ic
    cdef Py_ssize_t* levels
    cdef list names, oa, ob, oc, conds
    cdef object keys, args

    def __cinit__(self, list plan, Py_ssize_t n, keys=None):
        self.args = (plan, n, keys)
        self.rows = len(plan)
        self.n = n
        self.kind = <int*>malloc(max(1, self.rows) * sizeof(int))
        self.index = <Py_ssize_t*>malloc(max(1, self.rows) * sizeof(Py_ssize_t))
        self.levels = <Py_ssize_t*>malloc(max(1, self.rows) * sizeof(Py_ssize_t))
        self.fa = <double*>malloc(max(1, self.rows) * sizeof(double))
        self.fb = <double*>malloc(max(1, self.rows) * sizeof(double))
        self.fc = <double*>malloc(max(1, self.rows) * sizeof(double))
        self.fd = <double*>malloc(max(1, self.rows) * sizeof(double))
        self.ia = <int64_t*>malloc(max(1, self.rows) * sizeof(int64_t))
        self.ic = <int64_t*>malloc(max(1, self.rows) * sizeof(int64_t))
        if (self.kind is NULL or self.index is NULL or self.levels is NULL or self.fa is NULL
                or self.fb is NULL or self.fc is NULL or self.fd is NULL or self.ia is NULL or self.ic is NULL):
            raise MemoryError()
        self.names, self.oa, self.ob, self.oc, self.conds = [], [], [], [], []
        self.keys = None if keys is None else list(keys)
        cdef Py_ssize_t r
        cdef int k
        for r, row in enumerate(plan):
            name, i, k, a, b, c, cond = row
            if not 0 <= i < n:
                raise ValueError(f"plan: index {i} of {name!r} outside [0, {n})")
            self.index[r] = i
            self.levels[r] = 0
            self.fa[r] = self.fb[r] = self.fc[r] = self.fd[r] = 0.0
            self.ia[r] = self.ic[r] = 0
            if k == 0 and type(a) is float and type(b) is float and type(c) is float:
                self.fa[r], self.fb[r], self.fc[r] = a, b, c
            elif (k == 1 and type(a) is float and type(c) is float and type(b) is tuple
                    and len(b) == 2 and type(b[0]) is float and type(b[1]) is float):
                self.fa[r], self.fc[r] = a, c
                self.fb[r], self.fd[r] = b[0], b[1]
            elif k == 2 and type(b) is int and b >= 1 and len(a) == b:
                self.levels[r] = b
            elif (k == 3 and type(a) is int and type(b) is int and type(c) is int and b >= 1
                    and abs(a) < 2 ** 61 and 0 < c < 2 ** 61 and abs(a) + b * c < 2 ** 62):
                self.ia[r], self.levels[r], self.ic[r] = a, b, c
            else:
                k = 4                       # as the plan's fallback: the distribution's own code
                if row[2] != 4:
                    a = _fallback(row)
            self.kind[r] = k
            self.names.append(name)
            self.oa.append(a)
            self.ob.append(b)
            self.oc.append(c)
            self.conds.append(cond)

    def __dealloc__(self):
        free(self.kind)
        free(self.index)
        free(self.levels)
        free(self.fa)
        free(self.fb)
        free(self.fc)
        free(self.fd)
        free(self.ia)
        free(self.ic)

    def __reduce__(self):
        return RandomDecoder, self.args   # pickled with its space: rebuilt from the plan

    @property
    def n_params(self):
        return self.n

    def sample(self, uint64_t seed, uint64_t stream):
        """The configuration of ``decode_random(uniform_row(seed, stream, n))``."""
        cdef double stack[STACK]
        cdef double* u = stack
        cdef Rng g
        cdef Py_ssize_t j
        if self.n > STACK:
            u = <double*>malloc(self.n * sizeof(double))
            if u is NULL:
                raise MemoryError()
        try:
            rng_init(&g, seed, stream)
            for j in range(self.n):
                u[j] = rng_uniform(&g)
            return self._decode(u)
        finally:
            if u is not stack:
                free(u)

    def decode(self, double[::1] u):
        """The configuration of ``decode_random(u)`` for ``n`` given uniforms."""
        if u.shape[0] != self.n:
            raise ValueError(f"u must have {self.n} entries, got {u.shape[0]}")
        if self.n == 0:
            return self._decode(NULL)
        return self._decode(&u[0])

    def decode_cells(self, double[::1] x, const int64_t[::1] levels):
        """``decode`` of ``u = (x + 0.5) / levels`` where ``levels > 0`` (an integer gene:
        the middle of its level's cell), else ``u = x``."""
        cdef double stack[STACK]
        cdef double* u = stack
        cdef Py_ssize_t j
        if x.shape[0] != self.n or levels.shape[0] != self.n:
            raise ValueError(f"x and levels must have {self.n} entries, got "
                             f"{x.shape[0]} and {levels.shape[0]}")
        if self.n > STACK:
            u = <double*>malloc(self.n * sizeof(double))
            if u is NULL:
                raise MemoryError()
        try:
            for j in range(self.n):
                u[j] = (x[j] + 0.5) / <double>levels[j] if levels[j] != 0 else x[j]
            return self._decode(u)
        finally:
            if u is not stack:
                free(u)

    cdef dict _decode(self, double* u):
        cdef dict out = {}
        cdef Py_ssize_t r, k, nb
        cdef int kind
        cdef double x, v
        cdef object cond
        for r in range(self.rows):
            cond = self.conds[r]
            if cond is not None and not _holds(<tuple>cond, out):
                continue
            x = u[self.index[r]]
            kind = self.kind[r]
            if kind == 0:                       # Float, linear
                x = _clamp01(x)
                v = self.fa[r] + hp_rc_mul(x, self.fc[r])
                if v < self.fa[r]:
                    PyDict_SetItem(out, self.names[r], self.oa[r])
                elif v > self.fb[r]:
                    PyDict_SetItem(out, self.names[r], self.ob[r])
                else:
                    PyDict_SetItem(out, self.names[r], v)
            elif kind == 1:                     # Float, log: a, c in logs, b = (low, high)
                x = _clamp01(x)
                v = exp(self.fa[r] + hp_rc_mul(x, self.fc[r]))
                if v < self.fb[r]:
                    PyDict_SetItem(out, self.names[r], (<tuple>self.ob[r])[0])
                elif v > self.fd[r]:
                    PyDict_SetItem(out, self.names[r], (<tuple>self.ob[r])[1])
                else:
                    PyDict_SetItem(out, self.names[r], v)
            elif kind == 2:                     # Categorical: a = choices
                nb = self.levels[r]
                k = <Py_ssize_t>(x * nb)
                PyDict_SetItem(out, self.names[r], self.oa[r][k if k < nb else nb - 1])
            elif kind == 3:                     # Int, linear: low + level * step
                x = _clamp01(x)
                nb = self.levels[r]
                k = <Py_ssize_t>(x * nb)
                PyDict_SetItem(out, self.names[r],
                               self.ia[r] + <int64_t>(k if k < nb else nb - 1) * self.ic[r])
            else:
                PyDict_SetItem(out, self.names[r], self.oa[r](x))
        if self.keys is None:
            return out
        return {name: out[name] for name in self.keys if name in out}


def _fallback(row):
    """A plan row the C code does not handle (unexpected constants): decode it as the
    Python loop does, through a closure of the same operations."""
    import math

    name, i, kind, a, b, c, cond = row
    if kind == 0:
        def f(x, a=a, b=b, c=c):
            x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
            v = a + x * c
            return a if v < a else (b if v > b else v)
    elif kind == 1:
        def f(x, a=a, b=b, c=c):
            x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
            v = math.exp(a + x * c)
            lo, hi = b
            return lo if v < lo else (hi if v > hi else v)
    elif kind == 2:
        def f(x, a=a, b=b):
            k = int(x * b)
            return a[k if k < b else b - 1]
    elif kind == 3:
        def f(x, a=a, b=b, c=c):
            x = 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
            k = int(x * b)
            return a + (k if k < b else b - 1) * c
    else:
        f = a
    return f
