"""Acquisition functions on a GP posterior (log-EI, EI, UCB, PI) with gradients, and a
bounded L-BFGS maximizer that runs many starts in parallel without the GIL.

The GP models a quantity to MINIMIZE; ``f_best`` is the incumbent (smallest) value.
log-EI follows Ament et al. (2023), "Unexpected Improvements to Expected Improvement":
``logEI = log h(z) + log sigma``, ``h(z) = phi(z) + z Phi(z)``, ``z = (f_best - mu)/sigma``,
with ``log h`` evaluated without underflow for very negative ``z``.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, parallel
from libc.math cimport exp, sqrt, log, log1p, expm1, erfc, fabs, M_PI, INFINITY, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from hpcore._kernels._openmp cimport effective_n_threads
from hpcore._kernels.gp cimport (GPState, gp_state, posterior_point, posterior_block,
                                 POSTERIOR_WORK, kernel_rows, panel_sqnorms, sq_dist,
                                 k_of_r2)
from hpcore._kernels.gp import kernel_matrix as _kernel_matrix
from scipy.linalg.cython_lapack cimport dtrtrs

cnp.import_array()

cdef double SQRT2 = sqrt(2.0)
cdef double INV_SQRT_2PI = 1.0 / sqrt(2.0 * M_PI)
cdef double C1 = 0.5 * log(2.0 * M_PI)
cdef double C2 = 0.5 * log(0.5 * M_PI)
cdef double LN2 = log(2.0)

# acquisition kinds
cdef enum:
    LOGEI = 0
    EI = 1
    UCB = 2
    PI = 3


cdef double _log1mexp(double u) noexcept nogil:
    """log(1 - exp(u)) for u < 0 (Maechler's switch)."""
    if u > -LN2:
        return log(-expm1(u))
    return log1p(-exp(u))


cdef double log_h(double z, double* dlogh) noexcept nogil:
    """log(phi(z) + z Phi(z)) and its derivative Phi(z) / h(z), stable for all z."""
    cdef double Phi, phi, h, t, ex, z2, iz2, S, R, lh
    if z > -1.0:
        Phi = 0.5 * erfc(-z / SQRT2)
        phi = INV_SQRT_2PI * exp(-0.5 * z * z)
        h = phi + z * Phi
        dlogh[0] = Phi / h
        return log(h)
    if z > -37.0:
        # erfcx(t) = exp(t^2) erfc(t), t = -z / sqrt2 <= 26.2: neither factor over/underflows
        t = -z / SQRT2
        ex = exp(t * t) * erfc(t)
        lh = -0.5 * z * z - C1 + _log1mexp(log(ex * (-z)) + C2)
        dlogh[0] = 0.5 * ex * exp(-0.5 * z * z - lh)
        return lh
    # asymptotic series: h = phi(z)/z^2 * S, Phi = phi(z)/|z| * R (error < 1e-18 here)
    z2 = z * z
    iz2 = 1.0 / z2
    S = 1.0 + iz2 * (-3.0 + iz2 * (15.0 + iz2 * (-105.0 + iz2 * (945.0 + iz2 * (-10395.0
        + iz2 * 135135.0)))))
    R = 1.0 + iz2 * (-1.0 + iz2 * (3.0 + iz2 * (-15.0 + iz2 * (105.0 + iz2 * (-945.0
        + iz2 * 10395.0)))))
    dlogh[0] = -z * R / S
    return -0.5 * z2 - C1 - log(z2) + log(S)


cdef double acq_from_post(int acq, double mu, double var, const double* gmu,
                         const double* gvar, Py_ssize_t d, double f_best, double beta,
                         double* g) noexcept nogil:
    """Acquisition value from the posterior mean and latent variance; its gradient into
    ``g`` (from the posterior gradients ``gmu``, ``gvar``) if g != NULL."""
    cdef Py_ssize_t q
    cdef double sd, z, lh, dlh, val, Phi, phi, h, sb
    sd = sqrt(var)
    z = (f_best - mu) / sd
    if acq == LOGEI:
        lh = log_h(z, &dlh)
        val = lh + log(sd)
        if g != NULL:
            # d/dx = dlh * dz + dsd/sd,  dz = (-dmu - z dsd)/sd,  dsd = dvar/(2 sd)
            for q in range(d):
                g[q] = dlh * (-gmu[q] - z * gvar[q] / (2.0 * sd)) / sd + gvar[q] / (2.0 * var)
    elif acq == EI:
        lh = log_h(z, &dlh)
        h = exp(lh)
        Phi = h * dlh
        val = sd * h
        if g != NULL:
            for q in range(d):
                g[q] = h * gvar[q] / (2.0 * sd) + Phi * (-gmu[q] - z * gvar[q] / (2.0 * sd))
    elif acq == UCB:
        sb = sqrt(beta)
        val = -mu + sb * sd
        if g != NULL:
            for q in range(d):
                g[q] = -gmu[q] + sb * gvar[q] / (2.0 * sd)
    else:
        val = 0.5 * erfc(-z / SQRT2)
        if g != NULL:
            phi = INV_SQRT_2PI * exp(-0.5 * z * z)
            for q in range(d):
                g[q] = phi * (-gmu[q] - z * gvar[q] / (2.0 * sd)) / sd
    return val


cdef double acq_point(int acq, GPState st, const double* x, double f_best, double beta,
                      double* work, double* g) noexcept nogil:
    """Acquisition value at x (to maximize); gradient into g if g != NULL.

    ``work`` holds POSTERIOR_WORK * n + 2 d doubles.
    """
    cdef Py_ssize_t d = st.d
    cdef double mu, var
    cdef double* gmu = NULL
    cdef double* gvar = NULL
    if g != NULL:
        gmu = work + POSTERIOR_WORK * st.n
        gvar = gmu + d
    posterior_point(st, x, work, &mu, &var, gmu, gvar)
    return acq_from_post(acq, mu, var, gmu, gvar, d, f_best, beta, g)


cdef double acq_from_moments(int acq, double mu, double var, double f_best,
                             double beta) noexcept nogil:
    """Acquisition value from the posterior mean and latent variance (no gradient)."""
    cdef double sd = sqrt(var), z, dlh
    z = (f_best - mu) / sd
    if acq == LOGEI:
        return log_h(z, &dlh) + log(sd)
    if acq == EI:
        return sd * exp(log_h(z, &dlh))
    if acq == UCB:
        return -mu + sqrt(beta) * sd
    return 0.5 * erfc(-z / SQRT2)


def acquisition_batch(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
                      const double[::1] inv_l2, double signal, int kind, int acq,
                      double f_best, double beta, const double[:, ::1] Xq, n_threads=None):
    """Acquisition values (no gradient) at many points with one triangular solve for all
    of them (LAPACK dtrtrs, BLAS-3) instead of one dtrsv per point."""
    cdef Py_ssize_t m = Xq.shape[0], n = X.shape[0], d = X.shape[1], i, j
    vals = np.empty(m)
    if m == 0:
        return vals
    Kq = _kernel_matrix(Xq, X, inv_l2, signal, kind, n_threads)   # vectorized rows
    cdef double[:, ::1] K = Kq
    cdef double[::1] v = vals
    cdef int nt = effective_n_threads(n_threads), nn = <int>n, mm = <int>m, info = 0
    cdef double mu, ss, var
    mus = Kq @ np.asarray(alpha)
    cdef double[::1] muv = mus
    with nogil:
        # Fortran view of Kq is (n, m): solve L V = Kq^T in place (L = U^T, U = Fortran L)
        dtrtrs(b"U", b"T", b"N", &nn, &mm, <double*>&L[0, 0], &nn, &K[0, 0], &nn, &info)
    if info != 0:
        raise np.linalg.LinAlgError(f"triangular solve failed (info={info})")
    for i in prange(m, nogil=True, schedule="static", num_threads=nt):
        ss = 0.0
        for j in range(n):
            ss = ss + K[i, j] * K[i, j]
        var = signal - ss
        if var < 1e-14 * signal:
            var = 1e-14 * signal
        v[i] = acq_from_moments(acq, muv[i], var, f_best, beta)
    return vals


# screening of the raw candidates: a candidate's latent variance given all the data is at
# most its variance given any subset of it (conditioning never increases a GP's variance,
# with or without noise); its nearest observations give that bound cheaply: the nearest
# SCREEN_NB1 for every candidate, the nearest SCREEN_NB2 for those the first bound cannot
# rule out.  The bound is widened by SCREEN_REL / SCREEN_ABS (of the signal variance)
# against rounding, far more than the exact variance's rounding error at any condition
# number the factorization admits.
DEF SCREEN_NB1 = 6
DEF SCREEN_NB2 = 24
DEF SCREEN_GROUP = 8
DEF SCREEN_CHUNK = 64
DEF SOLVE_GROUP = 32
cdef Py_ssize_t _BULK_CALLS = 0     # acquisition_top calls that dropped the finer bound
cdef double SCREEN_REL = 1e-6
cdef double SCREEN_ABS = 1e-6


cdef double _subset_var(GPState st, const double* kr, const double* D, double* kv,
                        Py_ssize_t* idx, double* C, Py_ssize_t nb) noexcept nogil:
    """Latent variance at a point given only its ``nb`` nearest observations (largest
    kernel values in its row ``kr``), ``D`` the diagonal of L L^T (kernel plus noise
    and jitter).  The subset's Cholesky factor is built row by row; a pivot that is not
    clearly positive ends it there (a prefix of the subset is a subset too).  Scratch:
    ``kv`` nb, ``idx`` nb, ``C`` nb * nb + nb."""
    cdef Py_ssize_t n = st.n, d = st.d, j, p, cnt = 0, a, b, c
    cdef double kj, t, w, ss = 0.0
    cdef double* wv = C + nb * nb
    for j in range(n):
        kj = kr[j]
        if cnt < nb or kj > kv[cnt - 1]:
            if cnt < nb:
                p = cnt
                cnt += 1
            else:
                p = nb - 1
            while p > 0 and kv[p - 1] < kj:
                kv[p] = kv[p - 1]
                idx[p] = idx[p - 1]
                p -= 1
            kv[p] = kj
            idx[p] = j
    for a in range(cnt):
        for b in range(a + 1):
            if a == b:
                t = D[idx[a]]
            else:
                t = k_of_r2(sq_dist(st.X + idx[a] * d, st.X + idx[b] * d, st.inv_l2, d),
                            st.signal, st.kind)
            for c in range(b):
                t -= C[a * nb + c] * C[b * nb + c]
            if a == b:
                if not (t > 1e-9 * D[idx[a]]):
                    return st.signal - ss
                C[a * nb + a] = sqrt(t)
            else:
                C[a * nb + b] = t / C[b * nb + b]
        w = kv[a]
        for c in range(a):
            w -= C[a * nb + c] * wv[c]
        w /= C[a * nb + a]
        wv[a] = w
        ss += w * w
    return st.signal - ss


cdef int _bounds(GPState st, const double* K, const double* mu, const double* D,
                 const Py_ssize_t* which, Py_ssize_t cnt, Py_ssize_t nb, int acq,
                 double f_best, double beta, double* bnd, int nt) noexcept nogil:
    """Upper bounds of the acquisition at rows ``which[:cnt]`` of K (bnd[row] lowered to
    the bound from their ``nb`` nearest observations).  Returns 0, or -1 when out of
    memory."""
    cdef Py_ssize_t r, i, n = st.n
    cdef double var, vmax = st.signal * (1.0 + SCREEN_REL) + SCREEN_ABS * st.signal, b
    cdef double* scratch = NULL
    cdef int failed = 0
    with parallel(num_threads=nt):
        scratch = <double*>malloc((nb * nb + 2 * nb) * sizeof(double)
                                  + nb * sizeof(Py_ssize_t))
        for r in prange(cnt, schedule="static"):
            if scratch == NULL:
                failed += 1      # a reduction
                continue
            i = which[r]
            var = _subset_var(st, K + i * n, D, scratch,
                              <Py_ssize_t*>(scratch + nb * nb + 2 * nb), scratch + nb, nb)
            if var < 1e-14 * st.signal:
                var = 1e-14 * st.signal
            var = var * (1.0 + SCREEN_REL) + SCREEN_ABS * st.signal
            if var > vmax:
                var = vmax
            if acq == PI and mu[i] < f_best:
                # PI decreases in sigma below the incumbent: bound with the smallest
                # variance there is (the clamp)
                var = 1e-14 * st.signal
            b = acq_from_moments(acq, mu[i], var, f_best, beta)
            if not (b >= bnd[i]):     # the tighter bound (a NaN bound stays NaN)
                bnd[i] = b
        free(scratch)
    return -1 if failed > 0 else 0


cdef int _solve_rows(GPState st, const double* K, const double* mu, const Py_ssize_t* rows,
                     Py_ssize_t g, int acq, double f_best, double beta, double* val,
                     unsigned char* done, double* best, Py_ssize_t kk, Py_ssize_t* n_sel,
                     double* sqn, int nt) noexcept nogil:
    """Exact values at rows ``rows[:g]`` (panel_sqnorms), and the ``kk`` best values so
    far kept in ``best`` (descending, n_sel of them).  Returns 0, or -1 when out of
    memory."""
    cdef Py_ssize_t a, i, p
    cdef double var
    if panel_sqnorms(st.L, st.n, K, rows, g, sqn, nt) != 0:
        return -1
    for a in range(g):
        i = rows[a]
        var = st.signal - sqn[a]
        if var < 1e-14 * st.signal:
            var = 1e-14 * st.signal
        val[i] = acq_from_moments(acq, mu[i], var, f_best, beta)
        done[i] = 1
        if val[i] == val[i]:
            if n_sel[0] < kk:
                p = n_sel[0]
                n_sel[0] += 1
            elif val[i] > best[kk - 1]:
                p = kk - 1
            else:
                p = -1
            if p >= 0:
                while p > 0 and best[p - 1] < val[i]:
                    best[p] = best[p - 1]
                    p -= 1
                best[p] = val[i]
    return 0


def acquisition_top(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
                    const double[::1] inv_l2, double signal, int kind, int acq,
                    double f_best, double beta, const double[:, ::1] Xq, Py_ssize_t k,
                    bint screen=True, n_threads=None):
    """The ``k`` best rows of ``Xq`` by acquisition value (no gradient), best first, ties
    by row index (``np.argsort(-values, kind="stable")[:k]``).

    Every value that is computed comes from the same per-point arithmetic (kernel row,
    mean in order, panel forward solve), so it does not depend on which other rows are
    computed, nor on the thread count.  With ``screen``, the exact mean of every row and
    an upper bound of its variance (its nearest observations only, _subset_var) bound its
    acquisition (log-EI, EI, UCB and PI above the incumbent are nondecreasing in sigma at
    a fixed mean; PI below it is bounded at the smallest variance); rows are solved best
    bound first, in groups, until no remaining bound can reach the k-th value found (a
    row the first, coarse bound cannot rule out gets a tighter one first, unless that
    tighter bound leaves over 15/16 of the first 64 such rows in play, as in a small box
    among many observations: then the rest keep the coarse bound and are solved in
    groups of 32): the result is the same as without screening.

    Returns ``(indices, values, n_solved)``.
    """
    global _BULK_CALLS
    cdef Py_ssize_t m = Xq.shape[0], n = X.shape[0], d = X.shape[1], i, j, a, g
    cdef Py_ssize_t kk = min(k, m), n_sel = 0, pos, cnt, c
    cdef int nt = effective_n_threads(n_threads), rc = 0
    cdef bint scr = screen and kk < m
    cdef double s, thr, tol
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k!r}")
    if Xq.shape[1] != d:
        raise ValueError(f"Xq must have {d} columns, got {Xq.shape[1]}")
    if kk == 0:
        return np.empty(0, dtype=np.intp), np.empty(0), 0
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    cdef GPState st = gp_state(X, L, alpha, inv_l2, signal, kind, XT)
    Ka = np.empty((m, n))
    cdef double[:, ::1] K = Ka
    mua = np.empty(m)
    vala = np.full(m, np.nan)
    bnda = np.full(m, np.inf)
    donea = np.zeros(m, dtype=np.uint8)
    cdef double[::1] mu = mua, val = vala, bnd = bnda
    cdef unsigned char[::1] done = donea
    cdef Py_ssize_t[::1] ordv
    cdef double[::1] Dv
    sqna = np.empty(max(SCREEN_GROUP, SOLVE_GROUP))
    besta = np.empty(kk)
    cdef double[::1] sqn = sqna, best = besta
    with nogil:
        rc = kernel_rows(st, &Xq[0, 0], m, &K[0, 0], nt)
    if rc != 0:
        raise MemoryError("acquisition_top: out of memory for the kernel rows")
    for i in range(m):
        s = 0.0
        for j in range(n):
            s = s + K[i, j] * alpha[j]
        mu[i] = s
    if scr:
        Da = np.empty(n)
        Dv = Da
        orda = np.arange(m, dtype=np.intp)
        ordv = orda
        with nogil:
            for i in range(n):
                s = 0.0
                for j in range(i + 1):
                    s = s + L[i, j] * L[i, j]
                Dv[i] = s
            rc = _bounds(st, &K[0, 0], &mu[0], &Dv[0], &ordv[0], m, SCREEN_NB1, acq,
                         f_best, beta, &bnd[0], nt)
        if rc != 0:
            raise MemoryError("acquisition_top: out of memory for the screening buffers")
        if np.isnan(bnda).any():
            scr = False     # a NaN bound bounds nothing: solve every row
    thr = -INFINITY
    pos = 0
    if not scr:
        ordv = np.arange(m, dtype=np.intp)
        with nogil:
            while pos < m and rc == 0:
                g = min(SOLVE_GROUP, m - pos)
                rc = _solve_rows(st, &K[0, 0], &mu[0], &ordv[pos], g, acq, f_best, beta,
                                 &val[0], &done[0], &best[0], kk, &n_sel, &sqn[0], nt)
                pos += g
    else:
        # the first group by the coarse bound gives a threshold; the rows it cannot rule
        # out get the finer bound; then best bound first until none can reach the k-th
        orda = np.argsort(-bnda, kind="stable")
        ordv = orda
        g = min(max(SCREEN_GROUP, kk), m)
        while pos < g and rc == 0:
            a = min(SCREEN_GROUP, g - pos)
            with nogil:
                rc = _solve_rows(st, &K[0, 0], &mu[0], &ordv[pos], a, acq, f_best, beta,
                                 &val[0], &done[0], &best[0], kk, &n_sel, &sqn[0], nt)
            pos += a
        if rc == 0 and pos < m:
            thr = besta[kk - 1] if n_sel >= kk else -INFINITY
            tol = 1e-9 * fabs(thr) + (0.0 if acq == EI or acq == PI else 1e-12)
            rest = orda[pos:]
            rest = rest[~(bnda[rest] < thr - tol)]
            # the finer bound, first for the SCREEN_CHUNK rows of best coarse bound: when
            # it still leaves over 15/16 of them able to reach the k-th value, it is
            # not worth its cost here, and the other rows keep their coarse bound (then
            # solved in bigger groups); else every row of the rest gets it
            cnt = len(rest)
            fine = True
            pos = 0
            while pos < cnt:
                c = min(SCREEN_CHUNK if pos == 0 else cnt, cnt) - pos
                ordv = np.ascontiguousarray(rest[pos:pos + c])
                with nogil:
                    rc = _bounds(st, &K[0, 0], &mu[0], &Dv[0], &ordv[0], c, SCREEN_NB2,
                                 acq, f_best, beta, &bnd[0], nt)
                if rc != 0:
                    raise MemoryError("acquisition_top: out of memory for the screening "
                                      "buffers")
                pos += c
                if pos == c and pos < cnt and 16 * np.count_nonzero(
                        ~(bnda[rest[:c]] < thr - tol)) > 15 * c:
                    fine = False
                    _BULK_CALLS += 1
                    break
            if cnt:
                rest = rest[np.argsort(-bnda[rest], kind="stable")]
                ordv = np.ascontiguousarray(rest)
                pos = 0
                with nogil:
                    while pos < cnt and rc == 0:
                        if n_sel >= kk:
                            thr = best[kk - 1]
                            tol = 1e-9 * fabs(thr) + (0.0 if acq == EI or acq == PI else 1e-12)
                            if bnd[ordv[pos]] < thr - tol:
                                break       # bounds descend: none after can reach it
                        g = min(SCREEN_GROUP if fine else SOLVE_GROUP, cnt - pos)
                        rc = _solve_rows(st, &K[0, 0], &mu[0], &ordv[pos], g, acq, f_best,
                                         beta, &val[0], &done[0], &best[0], kk, &n_sel,
                                         &sqn[0], nt)
                        pos += g
    if rc != 0:
        raise MemoryError("acquisition_top: out of memory for the panel solve")
    cand = np.flatnonzero(donea)
    top = cand[np.argsort(-vala[cand], kind="stable")[:kk]]
    return top, vala[top], int(cand.size)


def _screen_bulk_calls(bint reset=False):
    """Test hook: acquisition_top calls since the last reset that skipped the finer
    bound for most rows (it could not rule enough of them out)."""
    global _BULK_CALLS
    out = _BULK_CALLS
    if reset:
        _BULK_CALLS = 0
    return out


def log_h_array(const double[::1] z):
    """``log h(z)`` and ``d log h / dz`` elementwise (for tests)."""
    cdef Py_ssize_t i, n = z.shape[0]
    out = np.empty(n)
    dout = np.empty(n)
    cdef double[::1] o = out, do = dout
    for i in range(n):
        o[i] = log_h(z[i], &do[i])
    return out, dout


cdef double _acq_one(int acq, GPState st, const double* x, double f_best, double beta,
                     double* g) noexcept nogil:
    # scratch on this call (private to the calling thread)
    cdef double* work = <double*>malloc((POSTERIOR_WORK * st.n + 2 * st.d) * sizeof(double))
    cdef double v
    if work == NULL:
        return NAN
    v = acq_point(acq, st, x, f_best, beta, work, g)
    free(work)
    return v


def acquisition_values(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
                       const double[::1] inv_l2, double signal, int kind, int acq,
                       double f_best, double beta, const double[:, ::1] Xq,
                       bint return_grad=False, n_threads=None):
    """Acquisition at the rows of ``Xq`` (and gradients, shape ``(m, d)``)."""
    cdef Py_ssize_t m = Xq.shape[0], d = X.shape[1], n = X.shape[0], i
    vals = np.empty(m)
    grads = np.zeros((m, d)) if return_grad else np.zeros((1, d))
    cdef double[::1] v = vals
    cdef double[:, ::1] gv = grads
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    cdef GPState st = gp_state(X, L, alpha, inv_l2, signal, kind, XT)
    cdef int nt = effective_n_threads(n_threads)
    if m > 0:
        for i in prange(m, nogil=True, schedule="static", num_threads=nt):
            if return_grad:
                v[i] = _acq_one(acq, st, &Xq[i, 0], f_best, beta, &gv[i, 0])
            else:
                v[i] = _acq_one(acq, st, &Xq[i, 0], f_best, beta, NULL)
    if return_grad:
        return vals, grads
    return vals


# ---------------------------------------------------------------------------------------
# Maximizer
# ---------------------------------------------------------------------------------------
ctypedef struct Problem:
    GPState st
    int acq
    double f_best
    double beta
    Py_ssize_t d
    const double* lower
    const double* upper
    const int* ctype          # 0 continuous, 1 ordinal (levels), 2 categorical (one-hot)
    const Py_ssize_t* lvl_off # (d + 1,) offsets into levels
    const double* levels      # sorted encoded values of ordinal columns
    const Py_ssize_t* gstart  # one-hot block of each column
    const Py_ssize_t* gstop
    int maxiter
    int n_rounds


DEF M_HIST = 8


cdef inline double _neg(Problem* P, const double* x, double* work, double* g) noexcept nogil:
    cdef double v = acq_point(P.acq, P.st, x, P.f_best, P.beta, work, g)
    cdef Py_ssize_t q
    if g != NULL:
        for q in range(P.d):
            g[q] = -g[q]
    return -v


cdef double _lbfgs(Problem* P, double* x, const double* lo, const double* hi, double* work,
                   double* buf) noexcept nogil:
    """Projected L-BFGS on -acq within [lo, hi] (lo == hi fixes a column).  Returns -f."""
    cdef Py_ssize_t d = P.d, i, j, k, it, ls, idx
    cdef double* g = buf
    cdef double* xn = g + d
    cdef double* gn = xn + d
    cdef double* dv = gn + d
    cdef double* S = dv + d
    cdef double* Y = S + M_HIST * d
    cdef double rho[M_HIST]
    cdef double al[M_HIST]
    cdef int nstore = 0, head = 0, accepted
    cdef double f, fn, pg, gam, b, dg, t, sy, yy, dmax, gs
    cdef bint active
    for i in range(d):
        x[i] = min(max(x[i], lo[i]), hi[i])
    f = _neg(P, x, work, g)
    for it in range(P.maxiter):
        pg = 0.0
        for i in range(d):
            active = (lo[i] >= hi[i]) or (x[i] <= lo[i] and g[i] > 0) or (x[i] >= hi[i] and g[i] < 0)
            dv[i] = 0.0 if active else g[i]
            if fabs(dv[i]) > pg:
                pg = fabs(dv[i])
        if pg < 1e-9:
            break
        # two-loop recursion on the free components
        for k in range(nstore):
            idx = (head - 1 - k + M_HIST) % M_HIST
            b = 0.0
            for i in range(d):
                b += S[idx * d + i] * dv[i]
            al[idx] = rho[idx] * b
            for i in range(d):
                dv[i] -= al[idx] * Y[idx * d + i]
        if nstore > 0:
            idx = (head - 1 + M_HIST) % M_HIST
            sy = 0.0
            yy = 0.0
            for i in range(d):
                sy += S[idx * d + i] * Y[idx * d + i]
                yy += Y[idx * d + i] * Y[idx * d + i]
            gam = sy / yy
        else:
            gam = min(1.0, 0.1 / pg)
        for i in range(d):
            dv[i] *= gam
        for k in range(nstore - 1, -1, -1):
            idx = (head - 1 - k + M_HIST) % M_HIST
            b = 0.0
            for i in range(d):
                b += Y[idx * d + i] * dv[i]
            b *= rho[idx]
            for i in range(d):
                dv[i] += S[idx * d + i] * (al[idx] - b)
        dg = 0.0
        for i in range(d):
            active = (lo[i] >= hi[i]) or (x[i] <= lo[i] and g[i] > 0) or (x[i] >= hi[i] and g[i] < 0)
            dv[i] = 0.0 if active else -dv[i]
            dg += dv[i] * g[i]
        if not (dg < 0):
            # not a descent direction: restart from steepest descent
            nstore = 0
            head = 0
            for i in range(d):
                active = (lo[i] >= hi[i]) or (x[i] <= lo[i] and g[i] > 0) or (x[i] >= hi[i] and g[i] < 0)
                dv[i] = 0.0 if active else -g[i] * min(1.0, 0.1 / pg)
        t = 1.0
        accepted = 0
        for ls in range(30):
            gs = 0.0
            dmax = 0.0
            for i in range(d):
                xn[i] = min(max(x[i] + t * dv[i], lo[i]), hi[i])
                gs += g[i] * (xn[i] - x[i])
                if fabs(xn[i] - x[i]) > dmax:
                    dmax = fabs(xn[i] - x[i])
            if dmax < 1e-12:
                break
            fn = _neg(P, xn, work, gn)
            if fn <= f + 1e-4 * gs and fn == fn:
                accepted = 1
                break
            t *= 0.5
        if not accepted:
            break
        sy = 0.0
        yy = 0.0
        for i in range(d):
            S[head * d + i] = xn[i] - x[i]
            Y[head * d + i] = gn[i] - g[i]
            sy += S[head * d + i] * Y[head * d + i]
            yy += Y[head * d + i] * Y[head * d + i]
        if sy > 1e-10 * yy and sy > 0:
            rho[head] = 1.0 / sy
            head = (head + 1) % M_HIST
            if nstore < M_HIST:
                nstore += 1
        b = f - fn
        f = fn
        for i in range(d):
            x[i] = xn[i]
            g[i] = gn[i]
        if b <= 1e-10 * (fabs(f) + 1e-10):
            break
    return -f


cdef Py_ssize_t _nearest_level(const double* lv, Py_ssize_t nl, double u) noexcept nogil:
    cdef Py_ssize_t a = 0, b = nl - 1, mid
    if u <= lv[0]:
        return 0
    if u >= lv[nl - 1]:
        return nl - 1
    while b - a > 1:
        mid = (a + b) // 2
        if lv[mid] <= u:
            a = mid
        else:
            b = mid
    return a if u - lv[a] <= lv[b] - u else b


cdef void _snap(Problem* P, double* x) noexcept nogil:
    """Round ordinal columns to their nearest level and one-hot categorical blocks."""
    cdef Py_ssize_t j, c, best, nl
    cdef double bv
    j = 0
    while j < P.d:
        if P.ctype[j] == 1:
            nl = P.lvl_off[j + 1] - P.lvl_off[j]
            x[j] = P.levels[P.lvl_off[j] + _nearest_level(P.levels + P.lvl_off[j], nl, x[j])]
            j += 1
        elif P.ctype[j] == 2:
            best = P.gstart[j]
            bv = x[best]
            for c in range(P.gstart[j], P.gstop[j]):
                if x[c] > bv:
                    bv = x[c]
                    best = c
            for c in range(P.gstart[j], P.gstop[j]):
                x[c] = 1.0 if c == best else 0.0
            j = P.gstop[j]
        else:
            j += 1


cdef double _local_search(Problem* P, double* x, double v, double* cand, double* work) noexcept nogil:
    """One sweep over the discrete neighbours of x (ordinal +-1 level, every other
    category); moves x to the best neighbour if it improves.  Returns the new value."""
    cdef Py_ssize_t d = P.d, j, c, cur, nl, k, i, delta
    cdef double bestv = v, cv
    cdef Py_ssize_t bj = -1, bc = -1
    j = 0
    while j < d:
        if P.ctype[j] == 1:
            nl = P.lvl_off[j + 1] - P.lvl_off[j]
            cur = _nearest_level(P.levels + P.lvl_off[j], nl, x[j])
            for delta in range(-1, 2, 2):
                k = cur + delta
                if k < 0 or k >= nl:
                    continue
                memcpy(cand, x, d * sizeof(double))
                cand[j] = P.levels[P.lvl_off[j] + k]
                cv = acq_point(P.acq, P.st, cand, P.f_best, P.beta, work, NULL)
                if cv > bestv:
                    bestv = cv
                    bj = j
                    bc = k
            j += 1
        elif P.ctype[j] == 2:
            for c in range(P.gstart[j], P.gstop[j]):
                if x[c] == 1.0:
                    continue
                memcpy(cand, x, d * sizeof(double))
                for i in range(P.gstart[j], P.gstop[j]):
                    cand[i] = 1.0 if i == c else 0.0
                cv = acq_point(P.acq, P.st, cand, P.f_best, P.beta, work, NULL)
                if cv > bestv:
                    bestv = cv
                    bj = j
                    bc = c
            j = P.gstop[j]
        else:
            j += 1
    if bj >= 0:
        if P.ctype[bj] == 1:
            x[bj] = P.levels[P.lvl_off[bj] + bc]
        else:
            for i in range(P.gstart[bj], P.gstop[bj]):
                x[i] = 1.0 if i == bc else 0.0
    return bestv


cdef double _optimize_start(Problem* P, double* x, bint has_discrete, bint has_cont) noexcept nogil:
    """Relaxed L-BFGS, then round, local search over discrete neighbours and re-optimize
    the continuous columns with the discrete ones fixed.  Returns the acquisition at x."""
    cdef Py_ssize_t d = P.d, n = P.st.n, i, r
    cdef double v, v2
    cdef double* mem = <double*>malloc((POSTERIOR_WORK * n + 2 * d + (4 + 2 * M_HIST) * d + 3 * d)
                                       * sizeof(double))
    if mem == NULL:
        return -INFINITY
    cdef double* work = mem
    cdef double* buf = work + POSTERIOR_WORK * n + 2 * d
    cdef double* lo = buf + (4 + 2 * M_HIST) * d
    cdef double* hi = lo + d
    cdef double* cand = hi + d
    v = _lbfgs(P, x, P.lower, P.upper, work, buf)
    if has_discrete:
        _snap(P, x)
        v = acq_point(P.acq, P.st, x, P.f_best, P.beta, work, NULL)
        for r in range(P.n_rounds):
            if has_cont:
                for i in range(d):
                    if P.ctype[i] == 0:
                        lo[i] = P.lower[i]
                        hi[i] = P.upper[i]
                    else:
                        lo[i] = x[i]
                        hi[i] = x[i]
                memcpy(cand, x, d * sizeof(double))
                v2 = _lbfgs(P, cand, lo, hi, work, buf)
                if v2 > v:
                    v = v2
                    memcpy(x, cand, d * sizeof(double))
            v2 = _local_search(P, x, v, cand, work)
            if not (v2 > v):
                break
            v = v2
    free(mem)
    return v


cdef object _fill_problem(Problem* P, const double[:, ::1] X, const double[:, ::1] L,
                          const double[::1] alpha, const double[::1] inv_l2, double signal,
                          int kind, int acq, double f_best, double beta,
                          const double[::1] lower, const double[::1] upper,
                          const int[::1] ctype, const Py_ssize_t[::1] lvl_off,
                          const double[::1] levels, const Py_ssize_t[::1] gstart,
                          const Py_ssize_t[::1] gstop, int maxiter, int n_rounds):
    """Fill ``P`` for the maximizers.  Returns X transposed (the GP state points into
    it): the caller keeps it alive while ``P`` is in use, as it does the other arrays."""
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    P.st = gp_state(X, L, alpha, inv_l2, signal, kind, XT)
    P.acq = acq
    P.f_best = f_best
    P.beta = beta
    P.d = X.shape[1]
    P.lower = &lower[0]
    P.upper = &upper[0]
    P.ctype = &ctype[0]
    P.lvl_off = &lvl_off[0]
    P.levels = &levels[0]
    P.gstart = &gstart[0]
    P.gstop = &gstop[0]
    P.maxiter = maxiter
    P.n_rounds = n_rounds
    return XTa


def maximize_per_point(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
             const double[::1] inv_l2, double signal, int kind, int acq, double f_best,
             double beta, const double[:, ::1] x0, const double[::1] lower,
             const double[::1] upper, const int[::1] ctype, const Py_ssize_t[::1] lvl_off,
             const double[::1] levels, const Py_ssize_t[::1] gstart,
             const Py_ssize_t[::1] gstop, int maxiter=100, int n_rounds=5, n_threads=None):
    """:func:`maximize` with every start on its own (in parallel over the starts), one
    posterior solve per evaluated point: the reference the lockstep maximizer is
    tested against.

    Returns ``(xs, values)``: the local maximum reached from each start.
    """
    cdef Py_ssize_t s = x0.shape[0], d = X.shape[1], i, j
    xs = np.array(x0, dtype=np.float64, copy=True, order="C")
    vals = np.empty(s)
    cdef double[:, ::1] xv = xs
    cdef double[::1] vv = vals
    cdef Problem P
    cdef bint has_discrete = 0, has_cont = 0
    for j in range(d):
        if ctype[j] == 0:
            has_cont = 1
        else:
            has_discrete = 1
    xt_alive = _fill_problem(&P, X, L, alpha, inv_l2, signal, kind, acq, f_best, beta, lower, upper,
                             ctype, lvl_off, levels, gstart, gstop, maxiter, n_rounds)
    cdef int nt = effective_n_threads(n_threads)
    if s == 0:
        return xs, vals
    for i in prange(s, nogil=True, schedule="static", num_threads=nt):
        vv[i] = _optimize_start(&P, &xv[i, 0], has_discrete, has_cont)
    return xs, vals


# ---------------------------------------------------------------------------------------
# Lockstep maximizer: every start's L-BFGS (and rounding / local search) as a state
# machine that stops at each point it needs evaluated; the driver evaluates the points
# of all starts in one posterior_block (a dtrsm over all of them instead of one dtrsv per
# point), feeds the values back and repeats.  Each start follows exactly the steps of
# _optimize_start / _lbfgs / _local_search above.
# ---------------------------------------------------------------------------------------
cdef enum:
    LB_INIT = 0        # waiting for f, g at the (clipped) start
    LB_LS = 1          # waiting for f, g at a line-search trial point
    LB_DONE = 2

cdef enum:
    PH_RELAX = 0       # relaxed L-BFGS on the box
    PH_SNAP = 1        # waiting for the value at the rounded point
    PH_CONT = 2        # L-BFGS on the continuous columns, discrete ones fixed
    PH_LOCAL = 3       # waiting for the values at the discrete neighbours
    PH_DONE = 4


ctypedef struct LBState:
    double* x            # the point optimized in place
    const double* lo
    const double* hi
    double* g
    double* xn
    double* gn
    double* dv
    double* S
    double* Y
    double rho[M_HIST]
    double al[M_HIST]
    int nstore
    int head
    int it
    int ls
    int state
    double f
    double t
    double gs


ctypedef struct Start:
    LBState lb
    double* x            # the start's row of the result
    double* cand
    double* lo
    double* hi
    double* nb           # discrete neighbours (max_nb x d)
    int n_nb
    int phase
    int r
    double v
    const double* req    # points to evaluate: n_req rows from req
    int n_req
    int req_grad
    Py_ssize_t off       # offset of its results in the evaluated block


cdef long _STATS[3]


def lockstep_stats(bint reset=False):
    """(lockstep steps, points evaluated with gradients, without) since the last reset."""
    out = (_STATS[0], _STATS[1], _STATS[2])
    if reset:
        _STATS[0] = _STATS[1] = _STATS[2] = 0
    return out


cdef inline bint _active(const LBState* s, Py_ssize_t i) noexcept nogil:
    return (s.lo[i] >= s.hi[i]) or (s.x[i] <= s.lo[i] and s.g[i] > 0) or \
        (s.x[i] >= s.hi[i] and s.g[i] < 0)


cdef int _lb_try(LBState* s, Py_ssize_t d) noexcept nogil:
    """Line-search trial t: xn = P(x + t dv).  1: xn is to be evaluated; 0: finished."""
    cdef Py_ssize_t i
    cdef double dmax
    if s.ls >= 30:
        s.state = LB_DONE
        return 0
    s.gs = 0.0
    dmax = 0.0
    for i in range(d):
        s.xn[i] = min(max(s.x[i] + s.t * s.dv[i], s.lo[i]), s.hi[i])
        s.gs += s.g[i] * (s.xn[i] - s.x[i])
        if fabs(s.xn[i] - s.x[i]) > dmax:
            dmax = fabs(s.xn[i] - s.x[i])
    if dmax < 1e-12:
        s.state = LB_DONE
        return 0
    s.state = LB_LS
    return 1


cdef int _lb_top(LBState* s, Py_ssize_t d, int maxiter) noexcept nogil:
    """Top of an L-BFGS iteration (convergence test, two-loop direction); then the first
    line-search trial.  1: a point is to be evaluated; 0: finished."""
    cdef Py_ssize_t i, k, idx
    cdef double pg, gam, b, dg, sy, yy
    if s.it >= maxiter:
        s.state = LB_DONE
        return 0
    pg = 0.0
    for i in range(d):
        s.dv[i] = 0.0 if _active(s, i) else s.g[i]
        if fabs(s.dv[i]) > pg:
            pg = fabs(s.dv[i])
    if pg < 1e-9:
        s.state = LB_DONE
        return 0
    for k in range(s.nstore):
        idx = (s.head - 1 - k + M_HIST) % M_HIST
        b = 0.0
        for i in range(d):
            b += s.S[idx * d + i] * s.dv[i]
        s.al[idx] = s.rho[idx] * b
        for i in range(d):
            s.dv[i] -= s.al[idx] * s.Y[idx * d + i]
    if s.nstore > 0:
        idx = (s.head - 1 + M_HIST) % M_HIST
        sy = 0.0
        yy = 0.0
        for i in range(d):
            sy += s.S[idx * d + i] * s.Y[idx * d + i]
            yy += s.Y[idx * d + i] * s.Y[idx * d + i]
        gam = sy / yy
    else:
        gam = min(1.0, 0.1 / pg)
    for i in range(d):
        s.dv[i] *= gam
    for k in range(s.nstore - 1, -1, -1):
        idx = (s.head - 1 - k + M_HIST) % M_HIST
        b = 0.0
        for i in range(d):
            b += s.Y[idx * d + i] * s.dv[i]
        b *= s.rho[idx]
        for i in range(d):
            s.dv[i] += s.S[idx * d + i] * (s.al[idx] - b)
    dg = 0.0
    for i in range(d):
        s.dv[i] = 0.0 if _active(s, i) else -s.dv[i]
        dg += s.dv[i] * s.g[i]
    if not (dg < 0):
        # not a descent direction: restart from steepest descent
        s.nstore = 0
        s.head = 0
        for i in range(d):
            s.dv[i] = 0.0 if _active(s, i) else -s.g[i] * min(1.0, 0.1 / pg)
    s.t = 1.0
    s.ls = 0
    return _lb_try(s, d)


cdef int _lb_begin(LBState* s, double* x, const double* lo, const double* hi,
                   Py_ssize_t d) noexcept nogil:
    """Start an L-BFGS run from x (clipped into [lo, hi]): x is to be evaluated."""
    cdef Py_ssize_t i
    s.x = x
    s.lo = lo
    s.hi = hi
    s.nstore = 0
    s.head = 0
    s.it = 0
    for i in range(d):
        x[i] = min(max(x[i], lo[i]), hi[i])
    s.state = LB_INIT
    return 1


cdef int _lb_feed(LBState* s, Py_ssize_t d, int maxiter, double fval,
                  const double* grad) noexcept nogil:
    """The value (``fval`` = -acquisition) and gradient at the point last asked for.
    1: the next point is to be evaluated (s.xn); 0: finished (s.x, s.f)."""
    cdef Py_ssize_t i
    cdef double sy, yy, b, fn
    if s.state == LB_INIT:
        s.f = fval
        for i in range(d):
            s.g[i] = grad[i]
        return _lb_top(s, d, maxiter)
    fn = fval
    if not (fn <= s.f + 1e-4 * s.gs and fn == fn):
        s.t *= 0.5
        s.ls += 1
        return _lb_try(s, d)
    for i in range(d):
        s.gn[i] = grad[i]
    sy = 0.0
    yy = 0.0
    for i in range(d):
        s.S[s.head * d + i] = s.xn[i] - s.x[i]
        s.Y[s.head * d + i] = s.gn[i] - s.g[i]
        sy += s.S[s.head * d + i] * s.Y[s.head * d + i]
        yy += s.Y[s.head * d + i] * s.Y[s.head * d + i]
    if sy > 1e-10 * yy and sy > 0:
        s.rho[s.head] = 1.0 / sy
        s.head = (s.head + 1) % M_HIST
        if s.nstore < M_HIST:
            s.nstore += 1
    b = s.f - fn
    s.f = fn
    for i in range(d):
        s.x[i] = s.xn[i]
        s.g[i] = s.gn[i]
    if b <= 1e-10 * (fabs(s.f) + 1e-10):
        s.state = LB_DONE
        return 0
    s.it += 1
    return _lb_top(s, d, maxiter)


cdef inline void _ask_lb(Start* st) noexcept nogil:
    st.req = st.lb.x if st.lb.state == LB_INIT else st.lb.xn
    st.n_req = 1
    st.req_grad = 1


cdef int _neighbours(Problem* P, const double* x, double* nb) noexcept nogil:
    """The discrete neighbours of x in _local_search's order (ordinal -1 / +1 level,
    then every other category of each block) into the rows of nb; their number."""
    cdef Py_ssize_t d = P.d, j, c, cur, nl, k, i, delta
    cdef int cnt = 0
    j = 0
    while j < d:
        if P.ctype[j] == 1:
            nl = P.lvl_off[j + 1] - P.lvl_off[j]
            cur = _nearest_level(P.levels + P.lvl_off[j], nl, x[j])
            for delta in range(-1, 2, 2):
                k = cur + delta
                if k < 0 or k >= nl:
                    continue
                memcpy(nb + cnt * d, x, d * sizeof(double))
                nb[cnt * d + j] = P.levels[P.lvl_off[j] + k]
                cnt += 1
            j += 1
        elif P.ctype[j] == 2:
            for c in range(P.gstart[j], P.gstop[j]):
                if x[c] == 1.0:
                    continue
                memcpy(nb + cnt * d, x, d * sizeof(double))
                for i in range(P.gstart[j], P.gstop[j]):
                    nb[cnt * d + i] = 1.0 if i == c else 0.0
                cnt += 1
            j = P.gstop[j]
        else:
            j += 1
    return cnt


cdef void _round_or_local(Start* st, Problem* P, bint has_cont) noexcept nogil:
    """A round of the discrete phase: the continuous L-BFGS, else the local search."""
    cdef Py_ssize_t i, d = P.d
    if st.r >= P.n_rounds:
        st.phase = PH_DONE
        return
    if has_cont:
        for i in range(d):
            if P.ctype[i] == 0:
                st.lo[i] = P.lower[i]
                st.hi[i] = P.upper[i]
            else:
                st.lo[i] = st.x[i]
                st.hi[i] = st.x[i]
        memcpy(st.cand, st.x, d * sizeof(double))
        _lb_begin(&st.lb, st.cand, st.lo, st.hi, d)
        st.phase = PH_CONT
        _ask_lb(st)
        return
    _ask_local(st, P)


cdef void _ask_local(Start* st, Problem* P) noexcept nogil:
    st.n_nb = _neighbours(P, st.x, st.nb)
    if st.n_nb == 0:
        st.phase = PH_DONE     # no neighbour improves: the search stops
        return
    st.req = st.nb
    st.n_req = st.n_nb
    st.req_grad = 0
    st.phase = PH_LOCAL


cdef void _start_feed(Start* st, Problem* P, const double* vals, const double* grads,
                      bint has_discrete, bint has_cont) noexcept nogil:
    """Give a start the results of its last request and advance it to its next one."""
    cdef Py_ssize_t d = P.d, k, bi
    cdef double bestv, v2
    st.n_req = 0
    if st.phase == PH_RELAX:
        if _lb_feed(&st.lb, d, P.maxiter, -vals[0], grads):
            _ask_lb(st)
            return
        st.v = -st.lb.f
        if not has_discrete:
            st.phase = PH_DONE
            return
        _snap(P, st.x)
        st.req = st.x
        st.n_req = 1
        st.req_grad = 0
        st.phase = PH_SNAP
        return
    if st.phase == PH_SNAP:
        st.v = vals[0]
        st.r = 0
        _round_or_local(st, P, has_cont)
        return
    if st.phase == PH_CONT:
        if _lb_feed(&st.lb, d, P.maxiter, -vals[0], grads):
            _ask_lb(st)
            return
        v2 = -st.lb.f
        if v2 > st.v:
            st.v = v2
            memcpy(st.x, st.cand, d * sizeof(double))
        _ask_local(st, P)
        return
    if st.phase == PH_LOCAL:
        bestv = st.v
        bi = -1
        for k in range(st.n_nb):
            if vals[k] > bestv:
                bestv = vals[k]
                bi = k
        if bi >= 0:
            memcpy(st.x, st.nb + bi * d, d * sizeof(double))
        if not (bestv > st.v):
            st.phase = PH_DONE
            return
        st.v = bestv
        st.r += 1
        _round_or_local(st, P, has_cont)


cdef int _lockstep(Problem* P, double* xs, double* vout, Py_ssize_t s, bint has_discrete,
                   bint has_cont, int max_nb, int nt) noexcept nogil:
    """Run every start of ``xs`` (s x d, in place) in lockstep; values into vout.
    Returns 0, or -1 when out of memory."""
    cdef Py_ssize_t d = P.d, n = P.st.n, i, k, m, mg, mmax
    cdef Py_ssize_t per = (4 + 2 * M_HIST) * d + 3 * d + max_nb * d
    cdef int rc = 0, busy
    cdef Start* sts = <Start*>malloc(s * sizeof(Start))
    cdef double* mem = NULL
    cdef double* blk = NULL
    cdef double* p
    mmax = s * (max_nb if max_nb > 1 else 1)
    if sts != NULL:
        mem = <double*>malloc(s * per * sizeof(double))
        # block: points, values, mu, var (mmax each row/entry), gradients (s x d x 3),
        # kernel rows (mmax x n), dk/d(r^2) rows (s x n)
        blk = <double*>malloc((mmax * (d + 3) + 3 * s * d + mmax * n + s * n)
                              * sizeof(double))
    if sts == NULL or mem == NULL or blk == NULL:
        free(sts)
        free(mem)
        free(blk)
        return -1
    cdef double* Xb = blk
    cdef double* val = Xb + mmax * d
    cdef double* mu = val + mmax
    cdef double* var = mu + mmax
    cdef double* gmu = var + mmax
    cdef double* gvar = gmu + s * d
    cdef double* gacq = gvar + s * d
    cdef double* Kb = gacq + s * d
    cdef double* Cb = Kb + mmax * n
    for i in range(s):
        p = mem + i * per
        sts[i].lb.g = p
        sts[i].lb.xn = p + d
        sts[i].lb.gn = p + 2 * d
        sts[i].lb.dv = p + 3 * d
        sts[i].lb.S = p + 4 * d
        sts[i].lb.Y = p + (4 + M_HIST) * d
        sts[i].lo = p + (4 + 2 * M_HIST) * d
        sts[i].hi = sts[i].lo + d
        sts[i].cand = sts[i].hi + d
        sts[i].nb = sts[i].cand + d
        sts[i].x = xs + i * d
        sts[i].phase = PH_RELAX
        sts[i].v = -INFINITY
        _lb_begin(&sts[i].lb, sts[i].x, P.lower, P.upper, d)
        _ask_lb(&sts[i])
    while True:
        # gather: the gradient requests first (their rows get gradients), then the rest
        m = 0
        for i in range(s):
            if sts[i].phase != PH_DONE and sts[i].n_req > 0 and sts[i].req_grad:
                memcpy(Xb + m * d, sts[i].req, d * sizeof(double))
                sts[i].off = m
                m += 1
        mg = m
        for i in range(s):
            if sts[i].phase != PH_DONE and sts[i].n_req > 0 and not sts[i].req_grad:
                memcpy(Xb + m * d, sts[i].req, sts[i].n_req * d * sizeof(double))
                sts[i].off = m
                m += sts[i].n_req
        if m == 0:
            break
        if posterior_block(P.st, Xb, m, mg, Kb, Cb, mu, var, gmu, gvar, nt) != 0:
            rc = -1
            break
        _STATS[0] += 1
        _STATS[1] += mg
        _STATS[2] += m - mg
        for k in range(m):
            if k < mg:
                val[k] = acq_from_post(P.acq, mu[k], var[k], gmu + k * d, gvar + k * d, d,
                                       P.f_best, P.beta, gacq + k * d)
                for i in range(d):
                    gacq[k * d + i] = -gacq[k * d + i]
            else:
                val[k] = acq_from_post(P.acq, mu[k], var[k], NULL, NULL, d, P.f_best, P.beta,
                                       NULL)
        for i in range(s):
            if sts[i].phase != PH_DONE and sts[i].n_req > 0:
                k = sts[i].off
                _start_feed(&sts[i], P, val + k, gacq + k * d if k < mg else NULL,
                            has_discrete, has_cont)
    for i in range(s):
        vout[i] = sts[i].v
    free(sts)
    free(mem)
    free(blk)
    return rc


def maximize(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
             const double[::1] inv_l2, double signal, int kind, int acq, double f_best,
             double beta, const double[:, ::1] x0, const double[::1] lower,
             const double[::1] upper, const int[::1] ctype, const Py_ssize_t[::1] lvl_off,
             const double[::1] levels, const Py_ssize_t[::1] gstart,
             const Py_ssize_t[::1] gstop, int maxiter=100, int n_rounds=5, n_threads=None):
    """Maximize the acquisition from every row of ``x0``: projected L-BFGS on the
    relaxed problem, then (with discrete columns) rounding, local search over the
    discrete neighbours and L-BFGS on the continuous columns, as
    :func:`maximize_per_point`, but the starts run in lockstep: each step evaluates the
    points every start asks for in one posterior_block (one dtrsm over all of them).

    Returns ``(xs, values)``: the local maximum reached from each start.
    """
    cdef Py_ssize_t s = x0.shape[0], d = X.shape[1], j
    xs = np.array(x0, dtype=np.float64, copy=True, order="C")
    vals = np.empty(s)
    cdef double[:, ::1] xv = xs
    cdef double[::1] vv = vals
    cdef Problem P
    cdef bint has_discrete = 0, has_cont = 0
    cdef int max_nb = 0, rc = 0
    j = 0
    while j < d:
        if ctype[j] == 0:
            has_cont = 1
            j += 1
        elif ctype[j] == 1:
            has_discrete = 1
            max_nb += 2
            j += 1
        else:
            has_discrete = 1
            max_nb += <int>(gstop[j] - gstart[j])   # a bound: one of them is x's own
            j = gstop[j]
    xt_alive = _fill_problem(&P, X, L, alpha, inv_l2, signal, kind, acq, f_best, beta, lower, upper,
                             ctype, lvl_off, levels, gstart, gstop, maxiter, n_rounds)
    cdef int nt = effective_n_threads(n_threads)
    if s == 0:
        return xs, vals
    with nogil:
        rc = _lockstep(&P, &xv[0, 0], &vv[0], s, has_discrete, has_cont, max_nb, nt)
    if rc != 0:
        raise MemoryError("maximize: out of memory for the lockstep buffers")
    return xs, vals
