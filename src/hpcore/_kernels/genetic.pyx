"""Genetic operators and NSGA-II ranking.

Every operator works on rows (individuals, or pairs of parents) in parallel; row ``i``
draws from its own counter-based stream ``stream_offset + i`` of ``seed``, so the
output does not depend on the thread count.  Inputs are validated by the Python
wrappers in ``hpcore.kernels._genetic``; here they are assumed C-contiguous, finite,
with ``lower <= x <= upper``.

References
----------
K. Deb, R. B. Agrawal, "Simulated binary crossover for continuous search space",
Complex Systems 9 (1995); K. Deb, M. Goyal, "A combined genetic adaptive search
(GeneAS)", 1996 (polynomial mutation); the bounded forms are those of Deb's NSGA-II
reference code (revision 1.1.6).  L. Eshelman, J. D. Schaffer, "Real-coded genetic
algorithms and interval-schemata" (BLX-alpha), 1993.  K. Deb, A. Pratap, S. Agarwal,
T. Meyarivan, "A fast and elitist multiobjective genetic algorithm: NSGA-II", IEEE TEC
6(2), 2002.  X. Zhang, Y. Tian, R. Cheng, Y. Jin, "An efficient approach to
nondominated sorting for evolutionary multiobjective optimization" (ENS-BS), IEEE TEC
19(2), 2015.
"""
import math

import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport pow, fabs, floor, exp, log, log1p, sqrt, INFINITY
from libc.math cimport isfinite as _isfinite
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject
from libc.stdlib cimport malloc, calloc, free, realloc
from libc.string cimport memcpy, memmove
from libc.stdint cimport uint64_t, int64_t

from hpcore._kernels._openmp cimport effective_n_threads
from hpcore._kernels.rng cimport Rng, rng_init, rng_next, rng_uniform, rng_normal, rng_integer

cnp.import_array()

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define HP_PREFETCH(p) __builtin_prefetch((const void*)(p))
    #else
    #define HP_PREFETCH(p) ((void)0)
    #endif
    """
    void HP_PREFETCH(const void* p) noexcept nogil

cdef extern from *:
    """
    #include <math.h>
    #if defined(__SSE2__) || defined(_M_X64)
    #include <emmintrin.h>
    #endif
    /* v[k] = sqrt(v[k]) for v[k] >= 0; packed where SSE2 is there (a plain loop would
       not vectorize: sqrt may set errno) */
    static inline void hp_sqrt_n(double* v, Py_ssize_t n) {
        Py_ssize_t k = 0;
    #if defined(__SSE2__) || defined(_M_X64)
        for (; k + 2 <= n; k += 2)
            _mm_storeu_pd(v + k, _mm_sqrt_pd(_mm_loadu_pd(v + k)));
    #endif
        for (; k < n; k++)
            v[k] = sqrt(v[k]);
    }
    """
    void hp_sqrt_n(double* v, Py_ssize_t n) noexcept nogil

cdef double _EPS = 1e-14


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------
cdef inline double _finish(double c, double lo, double hi, unsigned char is_int) noexcept nogil:
    """Round an integer gene, then clip to the bounds."""
    if is_int:
        c = floor(c + 0.5)
    if c < lo:
        c = lo
    elif c > hi:
        c = hi
    return c


def first_outside(const double[:, ::1] X, const double[::1] lower, const double[::1] upper):
    """Flat index of the first entry of ``X`` that is not in ``[lower[j], upper[j]]``
    (NaN and infinities included, the bounds being finite), or -1: the wrappers' input
    check in one pass."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, j
    cdef const double* row
    cdef int ok = 1
    cdef double v
    cdef Py_ssize_t k = -1
    if d == 0:
        return -1
    with nogil:
        for i in range(n):
            row = &X[i, 0]
            for j in range(d):
                v = row[j]
                ok = ok & (v >= lower[j]) & (v <= upper[j])
            if not ok:
                for j in range(d):
                    v = row[j]
                    if not (v >= lower[j] and v <= upper[j]):
                        k = i * d + j
                        break
                break
    return k


# ---------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------
cdef int64_t _tournament_one(const double* fit, Py_ssize_t n, Py_ssize_t k,
                             uint64_t seed, uint64_t stream) noexcept nogil:
    cdef Rng r
    cdef Py_ssize_t t, c, best
    rng_init(&r, seed, stream)
    best = rng_integer(&r, n)
    for t in range(1, k):
        c = rng_integer(&r, n)
        if fit[c] < fit[best] or (fit[c] == fit[best] and c < best):
            best = c
    return best


def tournament_select(const double[::1] fitness, Py_ssize_t n_select, Py_ssize_t k,
                      uint64_t seed, uint64_t stream_offset, n_threads):
    """Indices of ``n_select`` tournament winners (size ``k``, with replacement, lower
    fitness wins, ties to the lower index)."""
    cdef Py_ssize_t n = fitness.shape[0], i
    out = np.empty(n_select, dtype=np.int64)
    cdef int64_t[::1] o = out
    cdef int nt = effective_n_threads(n_threads)
    for i in prange(n_select, nogil=True, schedule="static", num_threads=nt):
        o[i] = _tournament_one(&fitness[0], n, k, seed, stream_offset + <uint64_t>i)
    return out


cdef void _argsort_key(const double* key, int64_t* idx, int64_t* tmp, Py_ssize_t n) noexcept nogil:
    """Sort ``idx`` by (key[idx], idx), stable: the one-column case of ``_lexsort``
    (callers pass NaN-free keys)."""
    _lexsort(key, 1, idx, tmp, n)


def elite_indices(const double[::1] fitness, Py_ssize_t n_elite):
    """Indices of the ``n_elite`` lowest fitness values, best first (ties: lower index)."""
    cdef Py_ssize_t n = fitness.shape[0], i
    order = np.arange(n, dtype=np.int64)
    tmp = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = order
    cdef int64_t[::1] t = tmp
    if n > 0:
        with nogil:
            _argsort_key(&fitness[0], &o[0], &t[0], n)
    return order[:n_elite].copy()


# ---------------------------------------------------------------------------------
# crossover
# ---------------------------------------------------------------------------------
cdef inline double _ipow(double x, int k) noexcept nogil:
    """x ** k for an integer k >= 0 by repeated squaring."""
    cdef double r = 1.0
    while k:
        if k & 1:
            r *= x
        x *= x
        k >>= 1
    return r


cdef inline Py_ssize_t _next_gene(Rng* r, Py_ssize_t j, double log_q, double prob) noexcept nogil:
    """Index of the next gene after ``j`` hit by a Bernoulli(prob) process: the gap is
    geometric, so one draw per hit instead of one per gene.  ``log_q = log(1 - prob)``."""
    cdef double gap
    if prob >= 1.0:
        return j + 1
    gap = floor(log(1.0 - rng_uniform(r)) / log_q)
    if gap > 1e15:          # far beyond any genome: no further hit
        gap = 1e15
    return j + 1 + <Py_ssize_t>gap


cdef enum:
    _SBX_BLOCK = 64


cdef inline void _finish_row(const double* p, double* c, const double* lo, const double* hi,
                             const unsigned char* isint, Py_ssize_t n) noexcept nogil:
    """c[j] = _finish(p[j], ...) for j < n; ``isint`` NULL when no gene is an integer
    (then a straight clip loop, which vectorizes: min/max as the compiler emits them
    keep _finish's result bit for bit)."""
    cdef Py_ssize_t j
    cdef double v
    if isint == NULL:
        for j in range(n):
            v = p[j]
            v = lo[j] if v < lo[j] else v
            c[j] = hi[j] if v > hi[j] else v
    else:
        for j in range(n):
            c[j] = _finish(p[j], lo[j], hi[j], isint[j])


cdef void _sbx_pair(const double* p1, const double* p2, double* c1, double* c2,
                    const double* lo, const double* hi, const unsigned char* isint,
                    Py_ssize_t d, double eta, double prob, double prob_var,
                    uint64_t seed, uint64_t stream) noexcept nogil:
    """One draw decides whether the pair crosses; then one 64-bit draw per gene gives
    its Bernoulli(prob_var) decision (top 31 bits), the swap (bit 32) and the uniform u
    (low 32 bits, midpoint of its cell).  The genes that cross are gathered first
    (branch-free), so the arithmetic runs as straight loops over small arrays: the
    lower-side values of the block's ``n`` crossing genes in ``[0, n)`` of the work
    arrays, the upper-side ones in ``[n, 2n)``.  ``isint`` is NULL when no gene is an
    integer."""
    cdef Rng r
    cdef Py_ssize_t j, j0, j1, k, n, n2
    cdef uint64_t x
    cdef double y1, y2, a, b, t, e1 = eta + 1.0, inv_e1 = 1.0 / (eta + 1.0)
    cdef int ie = <int>e1 if (e1 == floor(e1) and eta <= 63.0) else -1
    cdef int nsq = 0, q
    cdef uint64_t thr = <uint64_t>(prob_var * 2147483648.0)    # prob_var * 2**31
    cdef double* dst[2]
    cdef const unsigned char* ib
    cdef int idx[_SBX_BLOCK]
    cdef uint64_t bits[_SBX_BLOCK]
    cdef double sm[_SBX_BLOCK]          # y1 + y2
    cdef double dv[2 * _SBX_BLOCK]      # y2 - y1, twice
    cdef double uv[2 * _SBX_BLOCK]      # u, twice
    cdef double sv[2 * _SBX_BLOCK]
    cdef double gv[2 * _SBX_BLOCK]
    if ie >= 2 and (ie & (ie - 1)) == 0:
        while (1 << nsq) < ie:
            nsq += 1
    rng_init(&r, seed, stream)
    if not (rng_uniform(&r) < prob):
        _finish_row(p1, c1, lo, hi, isint, d)
        _finish_row(p2, c2, lo, hi, isint, d)
        return
    dst[0] = c1
    dst[1] = c2
    j0 = 0
    while j0 < d:
        j1 = j0 + _SBX_BLOCK
        if j1 > d:
            j1 = d
        n = 0
        for j in range(j0, j1):
            x = rng_next(&r)
            idx[n] = <int>j
            bits[n] = x
            n += ((x >> 33) < thr) & (fabs(p1[j] - p2[j]) > _EPS)
        # every gene as its parent's; the crossing ones are overwritten below
        ib = NULL
        if isint != NULL:
            ib = isint + j0
        _finish_row(p1 + j0, c1 + j0, lo + j0, hi + j0, ib, j1 - j0)
        _finish_row(p2 + j0, c2 + j0, lo + j0, hi + j0, ib, j1 - j0)
        if n == 0:
            j0 = j1
            continue
        n2 = 2 * n
        # beta = 1 + 2 (y1 - lo) / (y2 - y1) = ((y1 - lo) + (y2 - lo)) / (y2 - y1) on the
        # lower side, ((hi - y1) + (hi - y2)) / (y2 - y1) on the upper one: one division
        # gives 1 / beta in (0, 1]
        for k in range(n):
            j = idx[k]
            a = p1[j]
            b = p2[j]
            y1 = a if a < b else b
            y2 = b if a < b else a
            sm[k] = y1 + y2
            dv[k] = y2 - y1
            dv[n + k] = y2 - y1
            sv[k] = (y1 - lo[j]) + (y2 - lo[j])
            sv[n + k] = (hi[j] - y1) + (hi[j] - y2)
            t = (<double>(bits[k] & <uint64_t>0xFFFFFFFFU) + 0.5) * (1.0 / 4294967296.0)
            uv[k] = t
            uv[n + k] = t
        if nsq > 0:                     # beta ** -(eta + 1), eta + 1 = 2**nsq
            for k in range(n2):
                gv[k] = dv[k] / sv[k]
            for q in range(nsq):
                for k in range(n2):
                    gv[k] *= gv[k]
        elif ie >= 0:                   # by squaring
            for k in range(n2):
                sv[k] = dv[k] / sv[k]
                gv[k] = 1.0
            q = ie
            while q:
                if q & 1:
                    for k in range(n2):
                        gv[k] *= sv[k]
                q >>= 1
                if q:
                    for k in range(n2):
                        sv[k] *= sv[k]
        else:
            for k in range(n2):
                sv[k] = dv[k] / sv[k]
            for k in range(n2):
                gv[k] = exp(e1 * log(sv[k]))
        # alpha = 2 - beta ** -(eta + 1); beta_q = (u alpha) ** (1/(eta+1)) if u alpha <= 1,
        # else (1 / (2 - u alpha)) ** (1/(eta+1)); 2 - u alpha >= 2**-33
        if nsq > 0:         # 1/(eta+1) = 2**-nsq: repeated square roots (exact steps)
            # two loops, so that the division is not put under a branch (2 - t > 0)
            for k in range(n2):
                gv[k] = uv[k] * (2.0 - gv[k])
                sv[k] = 1.0 / (2.0 - gv[k])
            for k in range(n2):
                sv[k] = gv[k] if gv[k] <= 1.0 else sv[k]
            for q in range(nsq):
                hp_sqrt_n(sv, n2)
        else:
            for k in range(n2):
                t = uv[k] * (2.0 - gv[k])
                sv[k] = exp((inv_e1 if t <= 1.0 else -inv_e1) * log(t if t <= 1.0 else 2.0 - t))
        # children 0.5 ((y1 + y2) -+ beta_q (y2 - y1)), swapped by bit 32
        for k in range(n):
            sv[k] = 0.5 * (sm[k] - sv[k] * dv[k])
            sv[n + k] = 0.5 * (sm[k] + sv[n + k] * dv[k])
        if isint == NULL:
            for k in range(n):
                j = idx[k]
                q = <int>((bits[k] >> 32) & 1)
                a = sv[k]
                b = sv[n + k]
                a = lo[j] if a < lo[j] else a
                a = hi[j] if a > hi[j] else a
                b = lo[j] if b < lo[j] else b
                b = hi[j] if b > hi[j] else b
                dst[q][j] = a
                dst[q ^ 1][j] = b
        else:
            for k in range(n):
                j = idx[k]
                q = <int>((bits[k] >> 32) & 1)
                dst[q][j] = _finish(sv[k], lo[j], hi[j], isint[j])
                dst[q ^ 1][j] = _finish(sv[n + k], lo[j], hi[j], isint[j])
        j0 = j1


cdef inline const unsigned char* _int_mask_or_null(const unsigned char* isint,
                                                    Py_ssize_t d) noexcept nogil:
    """``isint``, or NULL when no gene is an integer (the kernels' fast path)."""
    cdef Py_ssize_t j
    for j in range(d):
        if isint[j]:
            return isint
    return NULL


def sbx_crossover(const double[:, ::1] pa, const double[:, ::1] pb,
                  const double[::1] lower, const double[::1] upper,
                  const unsigned char[::1] integer, double eta, double prob, double prob_var,
                  uint64_t seed, uint64_t stream_offset, n_threads, ca=None, cb=None):
    """Bounded simulated binary crossover; pair ``i`` uses stream ``stream_offset + i``.
    Children go to ``ca``/``cb`` when given ((m, d) C-contiguous float64)."""
    cdef Py_ssize_t m = pa.shape[0], d = pa.shape[1], i
    if ca is None:
        ca = np.empty((m, d), dtype=np.float64)
    if cb is None:
        cb = np.empty((m, d), dtype=np.float64)
    cdef double[:, ::1] a = ca
    cdef double[:, ::1] b = cb
    cdef int nt = effective_n_threads(n_threads)
    cdef const unsigned char* im
    if m == 0 or d == 0:
        return ca, cb
    im = _int_mask_or_null(&integer[0], d)
    for i in prange(m, nogil=True, schedule="static", num_threads=nt):
        _sbx_pair(&pa[i, 0], &pb[i, 0], &a[i, 0], &b[i, 0], &lower[0], &upper[0], im,
                  d, eta, prob, prob_var, seed, stream_offset + <uint64_t>i)
    return ca, cb


cdef enum:
    _AHEAD = 4


cdef inline void _prefetch_row(const double* p, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t j = 0
    while j < d:
        HP_PREFETCH(p + j)
        j += 8
    HP_PREFETCH(p + d - 1)


def sbx_crossover_indexed(const double[:, ::1] X, const int64_t[:, ::1] pairs,
                          const double[::1] lower, const double[::1] upper,
                          const unsigned char[::1] integer, double eta, double prob,
                          double prob_var, uint64_t seed, uint64_t stream_offset, n_threads,
                          out=None, double pm_eta=20.0, double pm_prob_var=0.0,
                          uint64_t pm_seed=0, uint64_t pm_stream_offset=0):
    """SBX of rows ``X[pairs[i, 0]]`` and ``X[pairs[i, 1]]`` read in place; children of
    pair ``i`` go to rows ``i`` and ``m + i`` of an ``(2m, d)`` array (``out`` if given).
    Pair ``i`` uses stream ``stream_offset + i``: the same children as
    ``sbx_crossover`` of the gathered parents.  With ``pm_prob_var > 0`` the two
    children are then mutated while still in cache: exactly ``polynomial_mutation`` of
    the whole output with ``pm_eta``, ``pm_prob_var``, ``pm_seed``, ``pm_stream_offset``."""
    cdef Py_ssize_t m = pairs.shape[0], d = X.shape[1], i
    if out is None:
        out = np.empty((2 * m, d), dtype=np.float64)
    cdef double[:, ::1] o = out
    cdef int nt = effective_n_threads(n_threads)
    cdef const unsigned char* im
    cdef double[::1] cut
    cdef double log_q = _log_q(pm_prob_var)
    if m == 0 or d == 0:
        return out
    im = _int_mask_or_null(&integer[0], d)
    cut = _pm_cut_table(d, pm_prob_var)
    for i in prange(m, nogil=True, schedule="static", num_threads=nt):
        if i + _AHEAD < m:      # the parents are random rows: fetch a few pairs ahead
            _prefetch_row(&X[pairs[i + _AHEAD, 0], 0], d)
            _prefetch_row(&X[pairs[i + _AHEAD, 1], 0], d)
        _sbx_pair(&X[pairs[i, 0], 0], &X[pairs[i, 1], 0], &o[i, 0], &o[m + i, 0], &lower[0],
                  &upper[0], im, d, eta, prob, prob_var, seed,
                  stream_offset + <uint64_t>i)
        if pm_prob_var > 0.0:
            _polynomial_row(&o[i, 0], &lower[0], &upper[0], &integer[0], d, pm_eta,
                            pm_prob_var, log_q, &cut[0], pm_seed,
                            pm_stream_offset + <uint64_t>i)
            _polynomial_row(&o[m + i, 0], &lower[0], &upper[0], &integer[0], d, pm_eta,
                            pm_prob_var, log_q, &cut[0], pm_seed,
                            pm_stream_offset + <uint64_t>(m + i))
    return out


cdef void _uniform_pair(const double* p1, const double* p2, double* c1, double* c2,
                        Py_ssize_t d, double prob, double prob_var,
                        uint64_t seed, uint64_t stream) noexcept nogil:
    cdef Rng r
    cdef Py_ssize_t j
    cdef bint cross
    rng_init(&r, seed, stream)
    cross = rng_uniform(&r) < prob
    for j in range(d):
        if cross and rng_uniform(&r) < prob_var:
            c1[j] = p2[j]
            c2[j] = p1[j]
        else:
            c1[j] = p1[j]
            c2[j] = p2[j]


def uniform_crossover(const double[:, ::1] pa, const double[:, ::1] pb, double prob,
                      double prob_var, uint64_t seed, uint64_t stream_offset, n_threads):
    """Uniform crossover: each gene is swapped with probability ``prob_var``."""
    cdef Py_ssize_t m = pa.shape[0], d = pa.shape[1], i
    ca = np.empty((m, d), dtype=np.float64)
    cb = np.empty((m, d), dtype=np.float64)
    cdef double[:, ::1] a = ca
    cdef double[:, ::1] b = cb
    cdef int nt = effective_n_threads(n_threads)
    if m == 0 or d == 0:
        return ca, cb
    for i in prange(m, nogil=True, schedule="static", num_threads=nt):
        _uniform_pair(&pa[i, 0], &pb[i, 0], &a[i, 0], &b[i, 0], d, prob, prob_var,
                      seed, stream_offset + <uint64_t>i)
    return ca, cb


cdef void _blend_pair(const double* p1, const double* p2, double* c1, double* c2,
                      const double* lo, const double* hi, const unsigned char* isint,
                      Py_ssize_t d, double alpha, double prob,
                      uint64_t seed, uint64_t stream) noexcept nogil:
    cdef Rng r
    cdef Py_ssize_t j
    cdef double x1, x2, s, a, b
    cdef bint cross
    rng_init(&r, seed, stream)
    cross = rng_uniform(&r) < prob
    for j in range(d):
        a = p1[j]
        b = p2[j]
        if cross:
            x1 = a if a < b else b
            x2 = b if a < b else a
            s = alpha * (x2 - x1)
            a = x1 - s + rng_uniform(&r) * (x2 - x1 + 2.0 * s)
            b = x1 - s + rng_uniform(&r) * (x2 - x1 + 2.0 * s)
        c1[j] = _finish(a, lo[j], hi[j], isint[j])
        c2[j] = _finish(b, lo[j], hi[j], isint[j])


def blend_crossover(const double[:, ::1] pa, const double[:, ::1] pb,
                    const double[::1] lower, const double[::1] upper,
                    const unsigned char[::1] integer, double alpha, double prob,
                    uint64_t seed, uint64_t stream_offset, n_threads):
    """BLX-alpha: each child gene uniform on the parents' interval widened by alpha."""
    cdef Py_ssize_t m = pa.shape[0], d = pa.shape[1], i
    ca = np.empty((m, d), dtype=np.float64)
    cb = np.empty((m, d), dtype=np.float64)
    cdef double[:, ::1] a = ca
    cdef double[:, ::1] b = cb
    cdef int nt = effective_n_threads(n_threads)
    if m == 0 or d == 0:
        return ca, cb
    for i in prange(m, nogil=True, schedule="static", num_threads=nt):
        _blend_pair(&pa[i, 0], &pb[i, 0], &a[i, 0], &b[i, 0], &lower[0], &upper[0], &integer[0],
                    d, alpha, prob, seed, stream_offset + <uint64_t>i)
    return ca, cb


# ---------------------------------------------------------------------------------
# mutation
# ---------------------------------------------------------------------------------
cdef inline double _pow_e1(double x, double e1, int ie) noexcept nogil:
    """x ** e1 for x >= 0: by squaring when e1 is a small integer (ie >= 0)."""
    if ie >= 0:
        return _ipow(x, ie)
    return exp(e1 * log(x))


cdef inline Py_ssize_t _next_gene_cut(Rng* r, Py_ssize_t j, double log_q, double prob,
                                       const double* cut, Py_ssize_t d) noexcept nogil:
    """``_next_gene`` (the same draw, the same result while below ``d``), returning ``d``
    without the log when ``1 - u < cut[d - 1 - j]``: see ``_pm_cut_table``."""
    cdef double v, gap
    if prob >= 1.0:
        return j + 1
    v = 1.0 - rng_uniform(r)
    if v < cut[d - 1 - j]:
        return d
    gap = floor(log(v) / log_q)
    if gap > 1e15:
        gap = 1e15
    return j + 1 + <Py_ssize_t>gap


cdef object _pm_cut_table(Py_ssize_t d, double prob_var):
    """``cut[k] = (1 - prob_var) ** k * (1 - 1e-9)`` for ``k <= d``: ``1 - u`` below it
    gives ``log(1 - u) / log(1 - prob_var) >= k`` (the margin is far above the rounding
    of either side), a gap that reaches past the genome.  Zeros (never taken) unless
    ``0 < prob_var < 1``."""
    cut = np.zeros(d + 1, dtype=np.float64)
    cdef double[::1] c = cut
    cdef double log_q
    cdef Py_ssize_t k
    if 0.0 < prob_var < 1.0:
        log_q = log1p(-prob_var)
        for k in range(d + 1):
            c[k] = exp(<double>k * log_q) * (1.0 - 1e-9)
    return cut


cdef inline double _log_q(double prob) noexcept nogil:
    """log(1 - prob), the scale of ``_next_gene``'s geometric gaps (unused for prob >= 1)."""
    return log1p(-prob) if prob < 1.0 else 0.0


cdef void _polynomial_row(double* x, const double* lo, const double* hi,
                          const unsigned char* isint, Py_ssize_t d, double eta,
                          double prob_var, double log_q, const double* cut, uint64_t seed,
                          uint64_t stream) noexcept nogil:
    """``log_q``: ``_log_q(prob_var)``; ``cut``: ``_pm_cut_table(d, prob_var)``."""
    cdef Rng r
    cdef Py_ssize_t j = -1
    cdef double y, yl, yu, u, xy, val, dq, mpow = 1.0 / (eta + 1.0)
    cdef double e1 = eta + 1.0
    cdef int ie = <int>e1 if (e1 == floor(e1) and eta <= 63.0) else -1
    if prob_var <= 0.0:
        return
    rng_init(&r, seed, stream)
    while True:
        j = _next_gene_cut(&r, j, log_q, prob_var, cut, d)
        if j >= d:
            break
        yl = lo[j]
        yu = hi[j]
        if yu - yl <= 0.0:
            continue
        y = x[j]
        u = rng_uniform(&r)
        # the power by squaring (or exp(y log x)); delta_1 = (y - yl) / (yu - yl) below
        # u = 1/2, delta_2 = (yu - y) / (yu - yl) above
        if u <= 0.5:
            xy = 1.0 - (y - yl) / (yu - yl)
            val = 2.0 * u + (1.0 - 2.0 * u) * _pow_e1(xy, e1, ie)
            dq = exp(mpow * log(val)) - 1.0
        else:
            xy = 1.0 - (yu - y) / (yu - yl)
            val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * _pow_e1(xy, e1, ie)
            dq = 1.0 - exp(mpow * log(val))
        x[j] = _finish(y + dq * (yu - yl), yl, yu, isint[j])


def polynomial_mutation(double[:, ::1] x, const double[::1] lower, const double[::1] upper,
                        const unsigned char[::1] integer, double eta, double prob_var,
                        uint64_t seed, uint64_t stream_offset, n_threads):
    """Bounded polynomial mutation of ``x`` in place; row ``i`` uses stream
    ``stream_offset + i``."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i
    cdef int nt = effective_n_threads(n_threads)
    if n == 0 or d == 0:
        return
    cdef double[::1] cut = _pm_cut_table(d, prob_var)
    cdef double log_q = _log_q(prob_var)
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        _polynomial_row(&x[i, 0], &lower[0], &upper[0], &integer[0], d, eta, prob_var,
                        log_q, &cut[0], seed, stream_offset + <uint64_t>i)


cdef void _gaussian_row(double* x, const double* lo, const double* hi,
                        const unsigned char* isint, Py_ssize_t d, double sigma,
                        double prob_var, uint64_t seed, uint64_t stream) noexcept nogil:
    cdef Rng r
    cdef Py_ssize_t j = -1
    cdef double log_q = log1p(-prob_var) if prob_var < 1.0 else 0.0
    if prob_var <= 0.0:
        return
    rng_init(&r, seed, stream)
    while True:
        j = _next_gene(&r, j, log_q, prob_var)
        if j >= d:
            break
        x[j] = _finish(x[j] + sigma * (hi[j] - lo[j]) * rng_normal(&r), lo[j], hi[j], isint[j])


def gaussian_mutation(double[:, ::1] x, const double[::1] lower, const double[::1] upper,
                      const unsigned char[::1] integer, double sigma, double prob_var,
                      uint64_t seed, uint64_t stream_offset, n_threads):
    """Gaussian mutation in place: step ``sigma * (upper - lower)``, clipped."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i
    cdef int nt = effective_n_threads(n_threads)
    if n == 0 or d == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        _gaussian_row(&x[i, 0], &lower[0], &upper[0], &integer[0], d, sigma, prob_var,
                      seed, stream_offset + <uint64_t>i)


cdef void _categorical_row(double* x, const int64_t* ncat, Py_ssize_t d, double prob,
                           uint64_t seed, uint64_t stream) noexcept nogil:
    cdef Rng r
    cdef Py_ssize_t j, k, cur
    rng_init(&r, seed, stream)
    for j in range(d):
        if ncat[j] < 2:
            continue
        if rng_uniform(&r) < prob:
            cur = <Py_ssize_t>x[j]
            k = rng_integer(&r, ncat[j] - 1)
            if k >= cur:
                k += 1
            x[j] = <double>k


def categorical_mutation(double[:, ::1] x, const int64_t[::1] n_categories, double prob,
                         uint64_t seed, uint64_t stream_offset, n_threads):
    """Reset categorical genes (``n_categories[j] >= 2``) to another category, in place."""
    cdef Py_ssize_t n = x.shape[0], d = x.shape[1], i
    cdef int nt = effective_n_threads(n_threads)
    if n == 0 or d == 0:
        return
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        _categorical_row(&x[i, 0], &n_categories[0], d, prob, seed, stream_offset + <uint64_t>i)


# ---------------------------------------------------------------------------------
# one child, fused (GeneticSampler's per-ask path)
# ---------------------------------------------------------------------------------
def breed_child(const double[:, ::1] X, Py_ssize_t ia, Py_ssize_t ib,
                const double[::1] lower, const double[::1] upper,
                const unsigned char[::1] integer, const int64_t[::1] num_idx,
                const int64_t[::1] cat_idx, const int64_t[::1] n_categories,
                int crossover, double cross_param, double cross_prob,
                int mutation, double mut_param, double mut_prob, const double[::1] cut,
                uint64_t seed_cross, uint64_t seed_cat_cross, uint64_t seed_mutate,
                uint64_t seed_cat_mutate, uint64_t mating, int side, uint64_t number):
    """The child that ``GeneticSampler.breed`` composes from the row kernels, in one
    call and bit for bit the same (the same streams and operations): crossover of rows
    ``ia`` and ``ib`` of ``X`` (0 SBX with eta ``cross_param``, 1 BLX with alpha, 2
    uniform; stream ``mating`` of ``seed_cross``), child ``side`` of the pair; with
    categorical genes (``cat_idx`` not empty) those take the uniform crossover of
    ``seed_cat_cross``; the numeric genes ``num_idx`` mutate (0 polynomial with eta
    ``mut_param`` and ``cut`` = the cut table of ``len(num_idx)`` genes, 1 Gaussian with
    sigma; bounds and integer flags are those of the numeric genes), then categorical
    reset mutation (``seed_cat_mutate``); mutations use stream ``number``."""
    cdef Py_ssize_t g = X.shape[1], dn = num_idx.shape[0], dc = cat_idx.shape[0], j
    if not (0 <= ia < X.shape[0] and 0 <= ib < X.shape[0]):
        raise IndexError("breed_child: parent index out of range")
    if crossover < 0 or crossover > 2 or mutation < 0 or mutation > 1:
        raise ValueError("breed_child: crossover must be 0-2 and mutation 0-1")
    if (lower.shape[0] != g or upper.shape[0] != g or integer.shape[0] != g
            or n_categories.shape[0] != g or (mutation == 0 and cut.shape[0] < dn + 1)):
        raise ValueError("breed_child: gene arrays do not match X")
    for j in range(dn):
        if not 0 <= num_idx[j] < g:
            raise IndexError("breed_child: num_idx out of range")
    for j in range(dc):
        if not 0 <= cat_idx[j] < g:
            raise IndexError("breed_child: cat_idx out of range")
    out = np.empty(g, dtype=np.float64)
    cdef double[::1] child = out
    cdef double* w = <double*>malloc((2 * g + 3 * dn + 1) * sizeof(double))
    cdef unsigned char* im = <unsigned char*>malloc((dn + 1) * sizeof(unsigned char))
    if w == NULL or im == NULL:
        free(w)
        free(im)
        raise MemoryError()
    cdef double* other = w + g
    cdef double* xs = w + 2 * g
    cdef double* lo = xs + dn
    cdef double* hi = lo + dn
    cdef double* mine         # the pair's first child (c1), then the categorical one
    cdef double* theirs       # its second (c2)
    cdef const double* pa = &X[ia, 0]
    cdef const double* pb = &X[ib, 0]
    with nogil:
        mine = &child[0] if side == 0 else other
        theirs = other if side == 0 else &child[0]
        if crossover == 0:
            _sbx_pair(pa, pb, mine, theirs, &lower[0], &upper[0],
                      _int_mask_or_null(&integer[0], g), g, cross_param, cross_prob, 0.5,
                      seed_cross, mating)
        elif crossover == 1:
            _blend_pair(pa, pb, mine, theirs, &lower[0], &upper[0], &integer[0], g,
                        cross_param, cross_prob, seed_cross, mating)
        else:
            _uniform_pair(pa, pb, mine, theirs, g, cross_prob, 0.5, seed_cross, mating)
        if dc > 0:
            # the categorical crossover's pair into (w, other): child `side` is w or other
            _uniform_pair(pa, pb, w, other, g, cross_prob, 0.5, seed_cat_cross, mating)
            mine = w if side == 0 else other
            for j in range(dc):
                child[cat_idx[j]] = mine[cat_idx[j]]
        for j in range(dn):
            xs[j] = child[num_idx[j]]
            lo[j] = lower[num_idx[j]]
            hi[j] = upper[num_idx[j]]
            im[j] = integer[num_idx[j]]
        if dn > 0:
            if mutation == 0:
                _polynomial_row(xs, lo, hi, im, dn, mut_param, mut_prob, _log_q(mut_prob),
                                &cut[0], seed_mutate, number)
            else:
                _gaussian_row(xs, lo, hi, im, dn, mut_param, mut_prob, seed_mutate, number)
        for j in range(dn):
            child[num_idx[j]] = xs[j]
        if dc > 0:
            _categorical_row(&child[0], &n_categories[0], g, mut_prob, seed_cat_mutate, number)
    free(w)
    free(im)
    return out


def pm_cut_table(Py_ssize_t d, double prob_var):
    """The polynomial mutation's cut table for ``d`` genes (for :func:`breed_child`)."""
    return np.asarray(_pm_cut_table(d, prob_var))


# ---------------------------------------------------------------------------------
# non-dominated sorting
# ---------------------------------------------------------------------------------
cdef inline bint _lex_less(const double* f, Py_ssize_t m, int64_t a, int64_t b) noexcept nogil:
    cdef Py_ssize_t k
    cdef double fa, fb
    for k in range(m):
        fa = f[a * m + k]
        fb = f[b * m + k]
        if fa < fb:
            return True
        if fa > fb:
            return False
    return a < b


cdef void _lexsort(const double* f, Py_ssize_t m, int64_t* idx, int64_t* tmp,
                   Py_ssize_t n) noexcept nogil:
    """Stable bottom-up merge sort of ``idx`` in lexicographic order of the rows of f."""
    cdef Py_ssize_t width = 1, lo, mid, hi, a, b, t
    cdef int64_t* src = idx
    cdef int64_t* dst = tmp
    cdef int64_t* sw
    while width < n:
        lo = 0
        while lo < n:
            mid = lo + width
            if mid > n:
                mid = n
            hi = lo + 2 * width
            if hi > n:
                hi = n
            a = lo
            b = mid
            t = lo
            while a < mid and b < hi:
                if _lex_less(f, m, src[b], src[a]):
                    dst[t] = src[b]
                    b += 1
                else:
                    dst[t] = src[a]
                    a += 1
                t += 1
            while a < mid:
                dst[t] = src[a]
                a += 1
                t += 1
            while b < hi:
                dst[t] = src[b]
                b += 1
                t += 1
            lo += 2 * width
        sw = src
        src = dst
        dst = sw
        width *= 2
    if src != idx:
        memcpy(idx, src, n * sizeof(int64_t))


cdef inline bint _dominates(const double* f, Py_ssize_t m, int64_t q, int64_t p) noexcept nogil:
    """q dominates p (minimization): no worse in all objectives, better in one."""
    cdef Py_ssize_t k
    cdef bint better = False
    cdef double a, b
    for k in range(m):
        a = f[q * m + k]
        b = f[p * m + k]
        if a > b:
            return False
        if a < b:
            better = True
    return better


cdef inline bint _dom2(double q1, double q2, double p1, double p2) noexcept nogil:
    """A front whose last member is (q1, q2) dominates p (points in lexicographic order)."""
    return (q2 < p2) | ((q2 == p2) & (q1 < p1))


cdef enum:
    _BATCH = 64


cdef Py_ssize_t _nds_2d(const double* f, const int64_t* order, int64_t* rank,
                        Py_ssize_t n, double* last1, double* last2) noexcept nogil:
    """Two objectives, points in lexicographic order: each front is summarized by its
    last member (the one with the smallest f2), and "front k dominates p" holds for a
    prefix of k, found by binary search.  O(n log n).  Returns the number of fronts.

    A lone binary search is a chain of dependent loads.  So points go in batches: the
    searches of a batch run in lockstep (branch-free, so the CPU overlaps them) against
    the fronts as they were when the batch started; a sequential pass then corrects each
    result.  Adding a point to a front only turns "front k dominates p" from false to
    true, so the true answer is the stale one or a few fronts above it (at most the
    number of fronts changed in the batch)."""
    cdef Py_ssize_t i, j, nb, start, nf = 0, nf0, hi, mid, lo
    cdef Py_ssize_t pos[_BATCH]
    cdef double q1[_BATCH]
    cdef double q2[_BATCH]
    start = 0
    while start < n:
        nb = n - start
        if nb > _BATCH:
            nb = _BATCH
        nf0 = nf
        for j in range(nb):
            i = order[start + j]
            q1[j] = f[2 * i]
            q2[j] = f[2 * i + 1]
            pos[j] = 0
        if nf0 > 0:
            hi = nf0
            while hi > 1:
                mid = hi >> 1
                for j in range(nb):
                    pos[j] += mid * _dom2(last1[pos[j] + mid], last2[pos[j] + mid], q1[j], q2[j])
                hi -= mid
            for j in range(nb):
                pos[j] += _dom2(last1[pos[j]], last2[pos[j]], q1[j], q2[j])
        for j in range(nb):
            lo = pos[j]
            while lo < nf and _dom2(last1[lo], last2[lo], q1[j], q2[j]):
                lo += 1
            rank[order[start + j]] = lo
            last1[lo] = q1[j]
            last2[lo] = q2[j]
            if lo == nf:
                nf += 1
        start += nb
    return nf


cdef bint _front_dominates(const double* f, Py_ssize_t m, int64_t head, const int64_t* nxt,
                           int64_t p) noexcept nogil:
    cdef int64_t q = head
    while q >= 0:
        if _dominates(f, m, q, p):
            return True
        q = nxt[q]
    return False


cdef Py_ssize_t _nds_ens(const double* f, Py_ssize_t m, const int64_t* order, int64_t* rank,
                         Py_ssize_t n, int64_t* head, int64_t* nxt) noexcept nogil:
    """Efficient non-dominated sort with binary search (ENS-BS), any number of
    objectives.  A point can only be dominated by points before it in lexicographic
    order, which are all placed already.  Fronts are linked lists, newest first."""
    cdef Py_ssize_t i, nf = 0, lo, hi, mid
    cdef int64_t p
    for i in range(n):
        p = order[i]
        lo = 0
        hi = nf
        while lo < hi:
            mid = (lo + hi) // 2
            if _front_dominates(f, m, head[mid], nxt, p):
                lo = mid + 1
            else:
                hi = mid
        rank[p] = lo
        if lo == nf:
            head[lo] = -1
            nf += 1
        nxt[p] = head[lo]
        head[lo] = p
    return nf


cdef inline uint64_t _dkey(double x) noexcept nogil:
    """Order-preserving map of a double to an unsigned integer (-0.0 == 0.0)."""
    cdef double y = x + 0.0
    cdef uint64_t u
    memcpy(&u, &y, sizeof(double))
    if u >> 63:
        return ~u
    return u | ((<uint64_t>1) << 63)


cdef void _lex_order(const double* f, Py_ssize_t m, Py_ssize_t n, int64_t* idx, int64_t* tmp,
                     uint64_t* keys, uint64_t* ktmp) noexcept nogil:
    """Indices in lexicographic order of the rows of f, ties by index: a stable LSD radix
    sort on the high 33 bits of the first objective (three 11-bit digits, histograms in
    one pass), then a merge sort of each run of rows whose first objectives agree in
    those bits."""
    cdef Py_ssize_t i, d, b, pos, total, start, shift
    cdef Py_ssize_t* count = <Py_ssize_t*>calloc(3 * 2048, sizeof(Py_ssize_t))
    cdef Py_ssize_t* c
    cdef int64_t* src = idx
    cdef int64_t* dst = tmp
    cdef uint64_t* ks = keys
    cdef uint64_t* kd = ktmp
    cdef int64_t* sw
    cdef uint64_t* kw
    cdef uint64_t key
    if count == NULL:               # no memory for the histograms: merge sort it all
        for i in range(n):
            idx[i] = i
        _lexsort(f, m, idx, tmp, n)
        return
    for i in range(n):
        idx[i] = i
        key = _dkey(f[i * m])
        keys[i] = key
        count[(key >> 31) & 2047] += 1
        count[2048 + ((key >> 42) & 2047)] += 1
        count[4096 + (key >> 53)] += 1
    # runs of equal top bits (rare, and exact ties) are then merge-sorted on the full rows
    for d in range(3):
        shift = 31 + 11 * d
        c = &count[2048 * d]
        if c[(ks[0] >> shift) & 2047] == n:     # one bucket: nothing to do
            continue
        total = 0
        for b in range(2048):
            pos = c[b]
            c[b] = total
            total += pos
        for i in range(n):
            b = (ks[i] >> shift) & 2047
            pos = c[b]
            c[b] += 1
            dst[pos] = src[i]
            kd[pos] = ks[i]
        sw = src
        src = dst
        dst = sw
        kw = ks
        ks = kd
        kd = kw
    free(count)
    if src != idx:
        memcpy(idx, src, n * sizeof(int64_t))
        memcpy(keys, ks, n * sizeof(uint64_t))
    start = 0
    for i in range(1, n + 1):
        if i == n or (keys[i] >> 31) != (keys[start] >> 31):
            if i - start > 1:
                _lexsort(f, m, &idx[start], tmp, i - start)
            start = i


cdef int _stair_insert(double** s0, double** s1, double** s2, Py_ssize_t* sz, Py_ssize_t* cap,
                       Py_ssize_t* nf, Py_ssize_t k, double p0, double p1,
                       double p2) noexcept nogil:
    """Add point p to front k (a new front when k == nf): insert its (f1, f2) projection
    into the staircase, dropping the projections it covers.  Returns 1 if out of memory."""
    cdef Py_ssize_t pos, start, end
    if k == nf[0]:
        cap[k] = 16
        sz[k] = 0
        s0[k] = <double*>malloc(16 * sizeof(double))
        s1[k] = <double*>malloc(16 * sizeof(double))
        s2[k] = <double*>malloc(16 * sizeof(double))
        nf[0] += 1
        if s0[k] == NULL or s1[k] == NULL or s2[k] == NULL:
            return 1
    pos = _upper(s1[k], sz[k], p1)          # first index with s1 > p1
    if pos > 0 and s2[k][pos - 1] <= p2:
        return 0                            # an equal point is already there
    start = pos
    if pos > 0 and s1[k][pos - 1] == p1:
        start = pos - 1
    end = start
    while end < sz[k] and s2[k][end] >= p2:
        end += 1
    if end == start:                        # make room for one
        if sz[k] == cap[k]:
            cap[k] *= 2
            if not (_grow(&s0[k], cap[k]) and _grow(&s1[k], cap[k]) and _grow(&s2[k], cap[k])):
                return 1
        memmove(&s0[k][start + 1], &s0[k][start], (sz[k] - start) * sizeof(double))
        memmove(&s1[k][start + 1], &s1[k][start], (sz[k] - start) * sizeof(double))
        memmove(&s2[k][start + 1], &s2[k][start], (sz[k] - start) * sizeof(double))
        sz[k] += 1
    elif end > start + 1:                   # p replaces [start, end)
        memmove(&s0[k][start + 1], &s0[k][end], (sz[k] - end) * sizeof(double))
        memmove(&s1[k][start + 1], &s1[k][end], (sz[k] - end) * sizeof(double))
        memmove(&s2[k][start + 1], &s2[k][end], (sz[k] - end) * sizeof(double))
        sz[k] -= end - start - 1
    s0[k][start] = p0
    s1[k][start] = p1
    s2[k][start] = p2
    return 0


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    static inline int hp_msb(uint64_t x) { return 63 - __builtin_clzll(x); }
    static inline int hp_lsb(uint64_t x) { return __builtin_ctzll(x); }
    #else
    static inline int hp_msb(uint64_t x) { int k = 63; while (!(x >> k)) k--; return k; }
    static inline int hp_lsb(uint64_t x) { int k = 0; while (!((x >> k) & 1)) k++; return k; }
    #endif
    """
    int hp_msb(uint64_t x) noexcept nogil
    int hp_lsb(uint64_t x) noexcept nogil


cdef struct _Word:
    uint64_t bits       # members of a front among 64 consecutive f2 ranks
    double below        # least f3 of the front's members in the words before


cdef inline bint _block_dom(const _Word* front, const double* g3, Py_ssize_t rp,
                            double p3) noexcept nogil:
    """A front dominates the (distinct) point of f2 rank rp and third objective p3: some
    member with a smaller f2 rank has f3 <= p3.  Members in the words before p's are
    summed up by ``below``; within p's word, the nearest member below p has the least
    f3 there (the word is a staircase).  Branch-free."""
    cdef const _Word* wd = &front[rp >> 6]
    cdef uint64_t m = wd.bits & (((<uint64_t>1) << (rp & 63)) - 1)
    cdef double u = g3[((rp >> 6) << 6) + hp_msb(m | 1)]
    return (wd.below <= p3) | ((m != 0) & (u <= p3))


cdef Py_ssize_t _nds_bits_budget = <Py_ssize_t>64 << 20     # bytes of per-front tables


def _set_nds_bits_budget(Py_ssize_t nbytes):
    """Set the memory cap of the 3-objective bit-set path (tests use a tiny one to
    exercise the fallback); returns the previous value."""
    global _nds_bits_budget
    old = _nds_bits_budget
    _nds_bits_budget = nbytes
    return old


cdef Py_ssize_t _nds_3d_bits(const double* f, const int64_t* order, int64_t* rank,
                             Py_ssize_t n, int64_t* tmp, uint64_t* keys, uint64_t* ktmp,
                             double* g3, int64_t* byr, int64_t* r2) noexcept nogil:
    """Three objectives, fronts as bit sets over the f2 ranks.

    Points come in lexicographic order; a copy of the previous point shares its front,
    so every point placed is distinct from those before it, and an earlier point q
    dominates p iff q's f2 rank is below p's and q3 <= p3.  Every point gets its rank
    r2 in the order of (f2, lexicographic position).  Front k is a bit set over r2 plus,
    per 64-rank word, the least f3 of its members in the words before; inside a word,
    members covered by a later one are dropped, so the nearest member below p has the
    least f3 there.  "Front k dominates p" is then one word, one bit scan and two loads.
    Fronts are found by binary search (the fronts dominating p form a prefix); the
    searches of a batch of points run in lockstep as in ``_nds_2d``.

    Scratch (n entries each): g3, byr, r2.  Returns the number of fronts, -1 if out of
    memory, -2 if the tables would take too much memory (the caller then uses
    ``_nds_3d``)."""
    cdef Py_ssize_t nw = (n + 63) >> 6
    cdef Py_ssize_t i, j, k, nb, start, hi, mid, q, rp, w, cap = 16, nf = 0, budget
    cdef double p3
    cdef const double* fp
    cdef const double* fq
    cdef _Word* table                                   # front k: table[k * nw : (k + 1) * nw]
    cdef _Word* grown
    cdef _Word* fk
    cdef uint64_t m
    cdef int err = 0
    cdef Py_ssize_t at[_BATCH]
    cdef Py_ssize_t rpv[_BATCH]
    cdef double p3v[_BATCH]
    budget = _nds_bits_budget // (nw * sizeof(_Word))   # fronts within the budget
    if cap > n:
        cap = n
    table = <_Word*>malloc(cap * nw * sizeof(_Word))
    if table == NULL:
        return -1
    for i in range(n):                                  # f2 in lexicographic order
        g3[i] = f[3 * order[i] + 1]
    _lex_order(g3, 1, n, byr, tmp, keys, ktmp)          # lex positions by (f2, position)
    for q in range(n):
        i = byr[q]
        r2[i] = q
        g3[q] = f[3 * order[i] + 2]
    start = 0
    while start < n and not err:
        nb = n - start
        if nb > _BATCH:
            nb = _BATCH
        for j in range(nb):
            at[j] = 0
            rpv[j] = r2[start + j]
            p3v[j] = g3[rpv[j]]
        if nf > 0:                                      # stale searches, in lockstep
            hi = nf
            while hi > 1:
                mid = hi >> 1
                for j in range(nb):
                    k = at[j] + mid
                    at[j] += mid * _block_dom(&table[k * nw], g3, rpv[j], p3v[j])
                hi -= mid
            for j in range(nb):
                at[j] += _block_dom(&table[at[j] * nw], g3, rpv[j], p3v[j])
        for j in range(nb):
            i = start + j
            fp = &f[3 * order[i]]
            if i > 0:
                fq = &f[3 * order[i - 1]]
                if fp[0] == fq[0] and fp[1] == fq[1] and fp[2] == fq[2]:
                    rank[order[i]] = rank[order[i - 1]]
                    continue
            rp = rpv[j]
            p3 = p3v[j]
            k = at[j]
            while k < nf and _block_dom(&table[k * nw], g3, rp, p3):
                k += 1
            rank[order[i]] = k
            if k == nf:
                if nf >= budget:
                    err = -2
                    break
                if nf == cap:
                    cap = 2 * cap if 2 * cap < n else n
                    grown = <_Word*>realloc(table, cap * nw * sizeof(_Word))
                    if grown == NULL:
                        err = -1
                        break
                    table = grown
                fk = &table[k * nw]
                for w in range(nw):
                    fk[w].bits = 0
                    fk[w].below = INFINITY
                nf += 1
            fk = &table[k * nw]
            # add p; drop the members after it in its word that it covers (f3 >= p3:
            # they form a prefix of those members, the word being a staircase)
            w = rp >> 6
            fk[w].bits |= (<uint64_t>1) << (rp & 63)
            m = fk[w].bits & ~(((<uint64_t>2) << (rp & 63)) - 1)
            while m:
                q = (w << 6) + hp_lsb(m)
                if g3[q] < p3:
                    break
                fk[w].bits &= ~((<uint64_t>1) << (q & 63))
                m &= m - 1
            # p lowers the least f3 before every later word, up to one already lower
            w += 1
            while w < nw and fk[w].below > p3:
                fk[w].below = p3
                w += 1
        start += nb
    free(table)
    return err if err else nf


cdef Py_ssize_t _nds_3d(const double* f, const int64_t* order, int64_t* rank, Py_ssize_t n) noexcept nogil:
    """Three objectives.  Points come in lexicographic order, so an earlier point q
    dominates p iff q's (f1, f2) is <= p's and q != p.  Each front keeps the staircase
    of its members' (f1, f2) projections (f1 increasing, f2 strictly decreasing): the
    dominance test is one binary search.  Returns the number of fronts, -1 if out of
    memory."""
    cdef double** s0 = <double**>malloc(n * sizeof(double*))
    cdef double** s1 = <double**>malloc(n * sizeof(double*))
    cdef double** s2 = <double**>malloc(n * sizeof(double*))
    cdef Py_ssize_t* sz = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    cdef Py_ssize_t* cap = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    cdef Py_ssize_t j, nb, nf = 0, nf0, hi, mid, k, start
    cdef int err = 0
    cdef int64_t p
    cdef Py_ssize_t at[_BATCH]
    cdef double q0[_BATCH]
    cdef double q1[_BATCH]
    cdef double q2[_BATCH]
    if s0 == NULL or s1 == NULL or s2 == NULL or sz == NULL or cap == NULL:
        free(s0)
        free(s1)
        free(s2)
        free(sz)
        free(cap)
        return -1
    start = 0
    while start < n and not err:
        nb = n - start
        if nb > _BATCH:
            nb = _BATCH
        nf0 = nf
        for j in range(nb):
            p = order[start + j]
            q0[j] = f[3 * p]
            q1[j] = f[3 * p + 1]
            q2[j] = f[3 * p + 2]
            at[j] = 0
        # lockstep stale searches against the fronts as of the batch start (see _nds_2d)
        if nf0 > 0:
            hi = nf0
            while hi > 1:
                mid = hi >> 1
                for j in range(nb):
                    k = at[j] + mid
                    at[j] += mid * _stair_dominated(s0[k], s1[k], s2[k], sz[k], q0[j], q1[j], q2[j])
                hi -= mid
            for j in range(nb):
                k = at[j]
                at[j] += _stair_dominated(s0[k], s1[k], s2[k], sz[k], q0[j], q1[j], q2[j])
        for j in range(nb):
            k = at[j]
            while k < nf and _stair_dominated(s0[k], s1[k], s2[k], sz[k], q0[j], q1[j], q2[j]):
                k += 1
            rank[order[start + j]] = k
            if _stair_insert(s0, s1, s2, sz, cap, &nf, k, q0[j], q1[j], q2[j]):
                err = 1
                break
        start += nb
    for k in range(nf):
        free(s0[k])
        free(s1[k])
        free(s2[k])
    free(s0)
    free(s1)
    free(s2)
    free(sz)
    free(cap)
    return -1 if err else nf


cdef inline bint _grow(double** a, Py_ssize_t cap) noexcept nogil:
    cdef double* b = <double*>realloc(a[0], cap * sizeof(double))
    if b == NULL:
        return False
    a[0] = b
    return True


cdef inline Py_ssize_t _upper(const double* a, Py_ssize_t n, double x) noexcept nogil:
    """Number of a[i] <= x (a sorted ascending); branch-free halving."""
    cdef const double* base = a
    cdef Py_ssize_t half
    if n == 0:
        return 0
    while n > 1:
        half = n >> 1
        base += half * (base[half] <= x)
        n -= half
    return (base - a) + (base[0] <= x)


cdef inline bint _stair_dominated(const double* s0, const double* s1, const double* s2,
                                  Py_ssize_t n, double p0, double p1, double p2) noexcept nogil:
    """Some member of a front (staircase of n >= 1 projections) dominates p: the member
    with the largest f1 <= p1 has f2 <= p2 and is not p itself (branch-free)."""
    cdef Py_ssize_t q = _upper(s1, n, p1) - 1
    cdef Py_ssize_t r = q if q > 0 else 0
    return (q >= 0) & (s2[r] <= p2) & ((s0[r] != p0) | (s1[r] != p1) | (s2[r] != p2))


# One scratch block is kept between calls: a sort of 10,000 points needs about 0.7 MB of
# scratch, and fresh pages for it cost more than a third of the sort (page faults).
cdef char* _scratch = NULL
cdef size_t _scratch_bytes = 0
cdef bint _scratch_busy = False
cdef size_t _SCRATCH_KEEP = <size_t>64 << 20       # larger blocks are freed after use


cdef char* _scratch_take(size_t nbytes, bint* own):
    """Scratch of nbytes: the kept block if no other call holds it (the GIL makes the
    check atomic), else a private one (own = True).  NULL if out of memory."""
    global _scratch, _scratch_bytes, _scratch_busy
    if _scratch_busy:
        own[0] = True
        return <char*>malloc(nbytes)
    own[0] = False
    if _scratch_bytes < nbytes:
        free(_scratch)
        _scratch = <char*>malloc(nbytes)
        _scratch_bytes = nbytes if _scratch != NULL else 0
        if _scratch == NULL:
            return NULL
    _scratch_busy = True
    return _scratch


cdef void _scratch_give(char* block, bint own):
    global _scratch, _scratch_bytes, _scratch_busy
    if own:
        free(block)
        return
    _scratch_busy = False
    if _scratch_bytes > _SCRATCH_KEEP:
        free(_scratch)
        _scratch = NULL
        _scratch_bytes = 0


def nondominated_sort(const double[:, ::1] F):
    """Front index (0 = non-dominated) of every row of ``F`` (minimization)."""
    cdef Py_ssize_t n = F.shape[0], m = F.shape[1], nf = 0
    rank = np.zeros(n, dtype=np.int64)
    if n == 0:
        return rank
    cdef int64_t[::1] r = rank
    cdef bint own
    cdef char* block = _scratch_take(7 * n * sizeof(int64_t), &own)
    if block == NULL:
        raise MemoryError("nondominated_sort: out of memory")
    cdef int64_t* o = <int64_t*>block                 # lexicographic order
    cdef int64_t* t = o + n
    cdef uint64_t* ks = <uint64_t*>(o + 2 * n)
    cdef uint64_t* kt = <uint64_t*>(o + 3 * n)
    cdef double* extra = <double*>(o + 4 * n)          # 3n entries for the m-specific paths
    with nogil:
        _lex_order(&F[0, 0], m, n, o, t, ks, kt)
        if m == 1:
            _rank_1d(&F[0, 0], o, &r[0], n)
        elif m == 2:
            _nds_2d(&F[0, 0], o, &r[0], n, extra, extra + n)
        elif m == 3:
            nf = _nds_3d_bits(&F[0, 0], o, &r[0], n, t, ks, kt, extra,
                              <int64_t*>(extra + n), <int64_t*>(extra + 2 * n))
            if nf == -2:
                nf = _nds_3d(&F[0, 0], o, &r[0], n)
        else:
            _nds_ens(&F[0, 0], m, o, &r[0], n, <int64_t*>extra, t)
    _scratch_give(block, own)
    if nf < 0:
        raise MemoryError("nondominated_sort: out of memory")
    return rank


def nondominated_sort_ens(const double[:, ::1] F):
    """The general ENS-BS path for any number of objectives (tests compare the 2- and
    3-objective fast paths with it)."""
    cdef Py_ssize_t n = F.shape[0], m = F.shape[1]
    rank = np.zeros(n, dtype=np.int64)
    if n == 0:
        return rank
    work = np.empty((5, n), dtype=np.int64)
    cdef int64_t[:, ::1] wk = work
    cdef int64_t[::1] r = rank
    with nogil:
        _lex_order(&F[0, 0], m, n, &wk[0, 0], &wk[1, 0], <uint64_t*>&wk[2, 0],
                   <uint64_t*>&wk[3, 0])
        _nds_ens(&F[0, 0], m, &wk[0, 0], &r[0], n, &wk[4, 0], &wk[1, 0])
    return rank


cdef void _rank_1d(const double* f, const int64_t* order, int64_t* rank, Py_ssize_t n) noexcept nogil:
    """One objective: the front of a point is the number of distinct smaller values."""
    cdef Py_ssize_t i, k = 0
    rank[order[0]] = 0
    for i in range(1, n):
        if f[order[i]] > f[order[i - 1]]:
            k += 1
        rank[order[i]] = k


# ---------------------------------------------------------------------------------
# crowding distance
# ---------------------------------------------------------------------------------
cdef void _crowding_front(const double* f, Py_ssize_t m, const int64_t* members, Py_ssize_t s,
                          double* dist) noexcept nogil:
    """Crowding distance of one front (``members`` in increasing index order)."""
    cdef int64_t* idx
    cdef int64_t* tmp
    cdef double* key
    cdef Py_ssize_t k, i, lo_i
    cdef double span
    for i in range(s):
        dist[members[i]] = 0.0
    if s <= 2:
        for i in range(s):
            dist[members[i]] = INFINITY
        return
    idx = <int64_t*>malloc(s * sizeof(int64_t))
    tmp = <int64_t*>malloc(s * sizeof(int64_t))
    key = <double*>malloc(s * sizeof(double))
    if idx == NULL or tmp == NULL or key == NULL:
        free(idx)
        free(tmp)
        free(key)
        for i in range(s):
            dist[members[i]] = -1.0    # signals allocation failure to the caller
        return
    for k in range(m):
        for i in range(s):
            idx[i] = i
            key[i] = f[members[i] * m + k]
        _argsort_key(key, idx, tmp, s)
        dist[members[idx[0]]] = INFINITY
        dist[members[idx[s - 1]]] = INFINITY
        span = key[idx[s - 1]] - key[idx[0]]
        if span <= 0.0:
            continue
        for i in range(1, s - 1):
            lo_i = members[idx[i]]
            dist[lo_i] += (key[idx[i + 1]] - key[idx[i - 1]]) / span
    free(idx)
    free(tmp)
    free(key)


def crowding_distance(const double[:, ::1] F, const int64_t[::1] rank, Py_ssize_t n_fronts,
                      n_threads):
    """NSGA-II crowding distance of every row of ``F`` within its front; the fronts are
    processed in parallel."""
    cdef Py_ssize_t n = F.shape[0], m = F.shape[1], i, fr
    dist = np.zeros(n, dtype=np.float64)
    if n == 0:
        return dist
    # members grouped by front, in increasing index order (counting sort)
    counts = np.bincount(np.asarray(rank), minlength=n_fronts).astype(np.int64)
    starts = np.zeros(n_fronts + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    members = np.argsort(np.asarray(rank), kind="stable").astype(np.int64)
    cdef double[::1] d = dist
    cdef int64_t[::1] st = starts
    cdef int64_t[::1] mem = members
    cdef int nt = effective_n_threads(n_threads)
    for fr in prange(n_fronts, nogil=True, schedule="static", num_threads=nt):
        if st[fr + 1] > st[fr]:
            _crowding_front(&F[0, 0], m, &mem[st[fr]], st[fr + 1] - st[fr], &d[0])
    if (dist < 0).any():
        raise MemoryError("crowding_distance: out of memory")
    return dist


def lex_order(const double[:, ::1] F):
    """Row indices in lexicographic order of ``F`` (ties by index)."""
    cdef Py_ssize_t n = F.shape[0], m = F.shape[1]
    order = np.empty(n, dtype=np.int64)
    if n == 0:
        return order
    tmp = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=np.uint64)
    ktmp = np.empty(n, dtype=np.uint64)
    cdef int64_t[::1] o = order
    cdef int64_t[::1] t = tmp
    cdef uint64_t[::1] ks = keys
    cdef uint64_t[::1] kt = ktmp
    with nogil:
        _lex_order(&F[0, 0], m, n, &o[0], &t[0], &ks[0], &kt[0])
    return order


# ---------------------------------------------------------------------------------
# NSGA-II crowded tournament (the GeneticSampler's per-ask contest)
# ---------------------------------------------------------------------------------
cdef inline bint _dominates_row(const double* a, const double* b, Py_ssize_t m) noexcept nogil:
    """a Pareto-dominates b (minimization); NaN never dominates (as numpy's comparisons)."""
    cdef bint strict = False
    cdef Py_ssize_t k
    cdef double x, y
    for k in range(m):
        x = a[k]
        y = b[k]
        if x > y or x != x or y != y:
            return False
        if x < y:
            strict = True
    return strict


def crowded_pair(const int64_t[::1] draws, Py_ssize_t k, const double[:, ::1] F,
                 const double[::1] crowd):
    """The two winners of NSGA-II's crowded tournament (Deb's reference code, pymoo):
    winner ``j`` of contestants ``draws[j * k:(j + 1) * k]`` (rows of ``F``, objectives
    minimized): a contestant replaces the current winner when it dominates it, or when
    neither dominates the other and its crowding distance is strictly larger (so ties
    go to the first drawn)."""
    cdef Py_ssize_t n = F.shape[0], m = F.shape[1], j, i
    cdef int64_t w, c
    cdef int64_t win[2]
    if k < 1 or draws.shape[0] < 2 * k:
        raise ValueError(f"crowded_pair: need 2 * k = {2 * k} draws, got {draws.shape[0]}")
    if crowd.shape[0] != n:
        raise ValueError("crowded_pair: crowd must have one entry per row of F")
    for i in range(2 * k):
        if not 0 <= draws[i] < n:
            raise IndexError("crowded_pair: draw out of range")
    for j in range(2):
        w = draws[j * k]
        for i in range(j * k + 1, (j + 1) * k):
            c = draws[i]
            if (_dominates_row(&F[c, 0], &F[w, 0], m)
                    or (not _dominates_row(&F[w, 0], &F[c, 0], m) and crowd[c] > crowd[w])):
                w = c
        win[j] = w
    return int(win[0]), int(win[1])


# ---------------------------------------------------------------------------------
# genome encoding (GeneticSampler: a finished trial's params -> its genes)
# ---------------------------------------------------------------------------------


cdef class GeneEncoder:
    """``_Genome.encode`` compiled: a configuration -> genes, with the same operations.

    Per gene: ``kind`` 0 real (unit coordinate clamped to [0, 1]), 1 integer
    (``floor(unit * levels)`` clamped to ``[0, upper]``), 2 categorical (the choice's
    index, from the Python encoder); the unit coordinate comes from ``enc`` 0 (linear
    Float: ``(v - c0) / c1``), 1 (log Float: ``(log(v) - c0) / c1``), 2 (linear Int:
    ``((v - i0) // i1 + 0.5) / i2``) or 3 (the Python encoder ``fn``), each used in C
    only for a plain ``float`` (``int``) value inside its domain; any other value goes
    through ``fn`` and the Python expression, so errors and corner cases stay Python's.
    """
    cdef Py_ssize_t g
    cdef list names, fns
    cdef int* kind
    cdef int* enc
    cdef double* c0
    cdef double* c1
    cdef double* upper
    cdef double* levels
    cdef int64_t* i0
    cdef int64_t* i1
    cdef int64_t* i2

    def __cinit__(self, list names, list kinds, list encs, list c0, list c1, list ints,
                  list levels, list upper, list fns):
        cdef Py_ssize_t i, g = len(names)
        if not (len(kinds) == len(encs) == len(c0) == len(c1) == len(ints) == len(levels)
                == len(upper) == len(fns) == g):
            raise ValueError("GeneEncoder: one entry per gene in every list")
        self.g = g
        self.names, self.fns = list(names), list(fns)
        self.kind = <int*>malloc(max(1, g) * sizeof(int))
        self.enc = <int*>malloc(max(1, g) * sizeof(int))
        self.c0 = <double*>malloc(max(1, g) * sizeof(double))
        self.c1 = <double*>malloc(max(1, g) * sizeof(double))
        self.upper = <double*>malloc(max(1, g) * sizeof(double))
        self.levels = <double*>malloc(max(1, g) * sizeof(double))
        self.i0 = <int64_t*>malloc(max(1, g) * sizeof(int64_t))
        self.i1 = <int64_t*>malloc(max(1, g) * sizeof(int64_t))
        self.i2 = <int64_t*>malloc(max(1, g) * sizeof(int64_t))
        if (self.kind is NULL or self.enc is NULL or self.c0 is NULL or self.c1 is NULL
                or self.upper is NULL or self.levels is NULL or self.i0 is NULL
                or self.i1 is NULL or self.i2 is NULL):
            raise MemoryError()
        for i in range(g):
            self.kind[i] = kinds[i]
            self.enc[i] = encs[i]
            self.c0[i] = c0[i]
            self.c1[i] = c1[i]
            lo, st, nl = ints[i]
            if self.enc[i] == 2 and not (abs(lo) < 2 ** 62 and 0 < st < 2 ** 62 and 0 < nl < 2 ** 53):
                self.enc[i] = 3
                lo, st, nl = 0, 1, 1
            self.i0[i], self.i1[i], self.i2[i] = lo, st, nl
            self.levels[i] = levels[i]
            self.upper[i] = upper[i]

    def __dealloc__(self):
        free(self.kind)
        free(self.enc)
        free(self.c0)
        free(self.c1)
        free(self.upper)
        free(self.levels)
        free(self.i0)
        free(self.i1)
        free(self.i2)

    cdef object _unit(self, Py_ssize_t i, object v):
        """The gene's unit coordinate (a C double inside a Python float, or whatever
        the Python encoder returns)."""
        cdef int e = self.enc[i]
        cdef double x
        cdef int64_t iv
        if e == 0 and type(v) is float:
            return (<double>v - self.c0[i]) / self.c1[i]
        if e == 1 and type(v) is float:
            x = <double>v
            if x > 0.0 and _isfinite(x):
                return (log(x) - self.c0[i]) / self.c1[i]
        elif e == 2 and type(v) is int and -2 ** 62 < v < 2 ** 62:
            iv = <int64_t>v
            if iv >= self.i0[i]:
                return ((<double>((iv - self.i0[i]) // self.i1[i])) + 0.5) / <double>self.i2[i]
        return self.fns[i](v)

    def encode(self, dict params, fill):
        """Genes of ``params``; inactive genes take ``fill`` (uniforms in [0, 1), an array
        or a function returning one, called only when a gene is inactive), scaled to
        ``floor(u * (upper + 1))`` for integer genes."""
        out = np.empty(self.g, dtype=np.float64)
        cdef double[::1] o = out
        cdef double[::1] fl
        cdef bint have_fill = False
        cdef Py_ssize_t i
        cdef int k
        cdef double d
        cdef object v, e
        cdef PyObject* p
        for i in range(self.g):
            k = self.kind[i]
            p = PyDict_GetItem(params, self.names[i])
            if p is NULL:
                if not have_fill:
                    fl = np.ascontiguousarray(fill() if callable(fill) else fill,
                                              dtype=np.float64)
                    have_fill = True
                o[i] = floor(fl[i] * (self.upper[i] + 1.0)) if k else fl[i]
                continue
            v = <object>p
            if k == 2:
                o[i] = self.fns[i](v)                  # the choice's index
                continue
            e = self._unit(i, v)
            if type(e) is not float or not _isfinite(<double>e):
                # Python's expression, with its errors (math.floor of NaN / inf)
                if k == 1:
                    e = math.floor(e * self.levels[i])
                    o[i] = min(max(e, 0), self.upper[i])
                else:
                    o[i] = min(max(e, 0.0), 1.0)
                continue
            d = <double>e
            if k == 1:
                d = floor(d * self.levels[i])
                if 0.0 > d:
                    d = 0.0
                if self.upper[i] < d:
                    d = self.upper[i]
            else:
                if 0.0 > d:
                    d = 0.0
                if 1.0 < d:
                    d = 1.0
            o[i] = d
        return out
