"""Acquisition functions on a GP posterior (log-EI, EI, UCB, PI) with gradients, and a
bounded L-BFGS maximizer that runs many starts in parallel without the GIL.

The GP models a quantity to MINIMIZE; ``f_best`` is the incumbent (smallest) value.
log-EI follows Ament et al. (2023), "Unexpected Improvements to Expected Improvement":
``logEI = log h(z) + log sigma``, ``h(z) = phi(z) + z Phi(z)``, ``z = (f_best - mu)/sigma``,
with ``log h`` evaluated without underflow for very negative ``z``.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport exp, sqrt, log, log1p, expm1, erfc, fabs, M_PI, INFINITY, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from hpcore._kernels._openmp cimport effective_n_threads
from hpcore._kernels.gp cimport GPState, gp_state, posterior_point, POSTERIOR_WORK
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


cdef double acq_point(int acq, GPState st, const double* x, double f_best, double beta,
                      double* work, double* g) noexcept nogil:
    """Acquisition value at x (to maximize); gradient into g if g != NULL.

    ``work`` holds POSTERIOR_WORK * n + 2 d doubles.
    """
    cdef Py_ssize_t d = st.d, q
    cdef double mu, var, sd, z, lh, dlh, val, Phi, phi, h, sb
    cdef double* gmu = NULL
    cdef double* gvar = NULL
    if g != NULL:
        gmu = work + POSTERIOR_WORK * st.n
        gvar = gmu + d
    posterior_point(st, x, work, &mu, &var, gmu, gvar)
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


def maximize(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
             const double[::1] inv_l2, double signal, int kind, int acq, double f_best,
             double beta, const double[:, ::1] x0, const double[::1] lower,
             const double[::1] upper, const int[::1] ctype, const Py_ssize_t[::1] lvl_off,
             const double[::1] levels, const Py_ssize_t[::1] gstart,
             const Py_ssize_t[::1] gstop, int maxiter=100, int n_rounds=5, n_threads=None):
    """Maximize the acquisition from every row of ``x0`` (in parallel).

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
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    P.st = gp_state(X, L, alpha, inv_l2, signal, kind, XT)
    P.acq = acq
    P.f_best = f_best
    P.beta = beta
    P.d = d
    P.lower = &lower[0]
    P.upper = &upper[0]
    P.ctype = &ctype[0]
    P.lvl_off = &lvl_off[0]
    P.levels = &levels[0]
    P.gstart = &gstart[0]
    P.gstop = &gstop[0]
    P.maxiter = maxiter
    P.n_rounds = n_rounds
    cdef int nt = effective_n_threads(n_threads)
    if s == 0:
        return xs, vals
    for i in prange(s, nogil=True, schedule="static", num_threads=nt):
        vv[i] = _optimize_start(&P, &xv[i, 0], has_discrete, has_cont)
    return xs, vals
