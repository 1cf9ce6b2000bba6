"""Gaussian-process regression kernels: ARD Matern-5/2 and RBF covariances, their
gradients, Cholesky with jitter escalation (LAPACK through scipy.linalg.cython_lapack),
the log marginal likelihood and its exact gradient, and the posterior at many points
with gradients with respect to x.

Hyperparameters are ``theta = [log l_1 .. log l_d, log signal_var, log noise_var]``.
Matrices are C-ordered; a C-ordered symmetric matrix handed to LAPACK as ``uplo='U'``
comes back with the lower factor ``L`` (``K = L L^T``) in C order.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport exp, sqrt, log, M_PI, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dtrsv, ddot
from scipy.linalg.cython_lapack cimport dpotrf, dpotrs, dpotri

from hpcore._kernels._openmp cimport effective_n_threads

cnp.import_array()

cdef double SQRT5 = sqrt(5.0)
cdef int MAX_JITTER_TRIES = 12


cdef double sq_dist(const double* a, const double* b, const double* inv_l2,
                    Py_ssize_t d) noexcept nogil:
    cdef double s = 0.0, t
    cdef Py_ssize_t q
    for q in range(d):
        t = a[q] - b[q]
        s += t * t * inv_l2[q]
    return s


cdef double k_of_r2(double r2, double signal, int kind) noexcept nogil:
    cdef double r
    if kind == 1:
        return signal * exp(-0.5 * r2)
    r = sqrt(r2)
    return signal * (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * exp(-SQRT5 * r)


cdef double dk_dr2(double r2, double signal, int kind) noexcept nogil:
    # Matern-5/2: dk/d(r^2) = -(5/6) s (1 + sqrt5 r) exp(-sqrt5 r), finite at r = 0.
    cdef double r
    if kind == 1:
        return -0.5 * signal * exp(-0.5 * r2)
    r = sqrt(r2)
    return -(5.0 / 6.0) * signal * (1.0 + SQRT5 * r) * exp(-SQRT5 * r)


cdef inline void _k_dk(double r2, double signal, int kind, double* k, double* dk) noexcept nogil:
    """k(r2) and dk/d(r2) sharing one exp (and one sqrt)."""
    cdef double r, e
    if kind == 1:
        e = signal * exp(-0.5 * r2)
        k[0] = e
        dk[0] = -0.5 * e
        return
    r = sqrt(r2)
    e = signal * exp(-SQRT5 * r)
    k[0] = (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * e
    dk[0] = -(5.0 / 6.0) * (1.0 + SQRT5 * r) * e


cdef void posterior_point(GPState st, const double* x, double* work, double* mu, double* var,
                          double* gmu, double* gvar) noexcept nogil:
    """Posterior mean/variance of the latent function at ``x``; gradients if gmu != NULL.

    ``work`` holds 3 n doubles.
    """
    cdef Py_ssize_t n = st.n, d = st.d, j, q
    cdef double* kv = work
    cdef double* v = work + n
    cdef double* r2 = work + 2 * n
    cdef int nn = <int>n, one = 1
    cdef double m = 0.0, s2, c, a, b, t
    cdef const double* xj
    for j in range(n):
        r2[j] = sq_dist(x, st.X + j * d, st.inv_l2, d)
        kv[j] = k_of_r2(r2[j], st.signal, st.kind)
        m += kv[j] * st.alpha[j]
    mu[0] = m
    memcpy(v, kv, n * sizeof(double))
    # Fortran view of L (C order) is U = L^T: solve U^T v = k, i.e. v = L^{-1} k.
    dtrsv(b"U", b"T", b"N", &nn, <double*>st.L, &nn, v, &one)
    s2 = st.signal - ddot(&nn, v, &one, v, &one)
    if s2 < 1e-14 * st.signal:
        s2 = 1e-14 * st.signal
    var[0] = s2
    if gmu == NULL:
        return
    dtrsv(b"U", b"N", b"N", &nn, <double*>st.L, &nn, v, &one)   # v = K^{-1} k
    for q in range(d):
        gmu[q] = 0.0
        gvar[q] = 0.0
    for j in range(n):
        c = dk_dr2(r2[j], st.signal, st.kind) * 2.0
        a = c * st.alpha[j]
        b = -2.0 * c * v[j]
        xj = st.X + j * d
        for q in range(d):
            t = (x[q] - xj[q]) * st.inv_l2[q]
            gmu[q] += a * t
            gvar[q] += b * t


cdef inline double _fabs(double x) noexcept nogil:
    return -x if x < 0 else x


cdef void _kernel_row(const double* X1, const double* X2, double* out, Py_ssize_t i,
                      Py_ssize_t n2, Py_ssize_t d, const double* inv_l2, double signal,
                      int kind) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n2):
        out[j] = k_of_r2(sq_dist(X1 + i * d, X2 + j * d, inv_l2, d), signal, kind)


def _check_kind(kind):
    if kind not in (0, 1):
        raise ValueError(f"kind must be 0 (Matern-5/2) or 1 (RBF), got {kind!r}")


def kernel_matrix(const double[:, ::1] X1, const double[:, ::1] X2,
                  const double[::1] inv_l2, double signal, int kind, n_threads=None):
    """Cross-covariance ``k(X1[i], X2[j])`` (no noise), shape ``(n1, n2)``."""
    _check_kind(kind)
    cdef Py_ssize_t n1 = X1.shape[0], n2 = X2.shape[0], d = X1.shape[1], i
    out = np.empty((n1, n2), dtype=np.float64)
    cdef double[:, ::1] o = out
    cdef int nt = effective_n_threads(n_threads)
    if n1 == 0 or n2 == 0:
        return out
    for i in prange(n1, nogil=True, schedule="static", num_threads=nt):
        _kernel_row(&X1[0, 0], &X2[0, 0], &o[i, 0], i, n2, d, &inv_l2[0], signal, kind)
    return out


def kernel_gradient(const double[:, ::1] X, const double[::1] theta, int kind, n_threads=None):
    """``K = k(X, X) + noise I`` and ``dK/dtheta``, shape ``(d + 2, n, n)`` (tests, small n)."""
    _check_kind(kind)
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, j, q
    cdef double signal = exp(theta[d]), noise = exp(theta[d + 1])
    inv = np.exp(-2.0 * np.asarray(theta[:d]))
    cdef double[::1] inv_l2 = inv
    K = np.empty((n, n))
    dK = np.zeros((d + 2, n, n))
    cdef double[:, ::1] Kv = K
    cdef double[:, :, ::1] dKv = dK
    cdef double r2, c, t
    cdef int nt = effective_n_threads(n_threads)
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        for j in range(n):
            r2 = sq_dist(&X[i, 0], &X[j, 0], &inv_l2[0], d)
            Kv[i, j] = k_of_r2(r2, signal, kind)
            dKv[d, i, j] = Kv[i, j]
            c = dk_dr2(r2, signal, kind)
            for q in range(d):
                t = X[i, q] - X[j, q]
                dKv[q, i, j] = c * (-2.0 * t * t * inv_l2[q])
        Kv[i, i] = Kv[i, i] + noise
        dKv[d + 1, i, i] = noise
    return K, dK


cdef void _fill_K(const double* X, double* K, Py_ssize_t n, Py_ssize_t d, const double* inv_l2,
                  double signal, double noise, int kind, int nt) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        for j in range(i, n):
            K[i * n + j] = k_of_r2(sq_dist(X + i * d, X + j * d, inv_l2, d), signal, kind)
        K[i * n + i] = K[i * n + i] + noise
    # mirror (upper -> lower), so the C-ordered matrix is symmetric
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        for j in range(i):
            K[i * n + j] = K[j * n + i]


cdef int _chol_jitter(const double* K, double* A, Py_ssize_t n, double* jitter) noexcept nogil:
    """A = chol(K + jitter I) (lower, C order, upper triangle zeroed).  Starts with
    ``jitter[0]`` (may be 0) and multiplies by 10 (from 1e-10 * mean diag) until the
    factorization succeeds.  Returns LAPACK's info of the last try (0 on success)."""
    cdef int nn = <int>n, info = 1, tries = 0
    cdef Py_ssize_t i, j
    cdef double jit = jitter[0], mdiag = 0.0
    for i in range(n):
        mdiag += K[i * n + i]
    mdiag = mdiag / n if n > 0 else 1.0
    if mdiag <= 0:
        mdiag = 1.0
    while tries < MAX_JITTER_TRIES:
        memcpy(A, K, n * n * sizeof(double))
        if jit > 0:
            for i in range(n):
                A[i * n + i] += jit
        dpotrf(b"U", &nn, A, &nn, &info)
        if info == 0:
            break
        jit = 1e-10 * mdiag if jit == 0 else jit * 10.0
        tries += 1
    jitter[0] = jit
    for i in range(n):
        for j in range(i + 1, n):
            A[i * n + j] = 0.0
    return info


def cholesky_jitter(const double[:, ::1] K):
    """Cholesky factor of a symmetric matrix with jitter escalation.

    Returns ``(L, jitter)``; raises ``numpy.linalg.LinAlgError`` if even the largest
    jitter (1e1 * mean diag) fails.
    """
    cdef Py_ssize_t n = K.shape[0]
    L = np.empty((n, n))
    cdef double[:, ::1] Lv = L
    cdef double jit = 0.0
    cdef int info
    if n == 0:
        return L, 0.0
    with nogil:
        info = _chol_jitter(&K[0, 0], &Lv[0, 0], n, &jit)
    if info != 0:
        raise np.linalg.LinAlgError(f"matrix is not positive definite (LAPACK info={info})")
    return L, jit


def factorize(const double[:, ::1] X, const double[::1] y, const double[::1] theta, int kind,
              n_threads=None):
    """Cholesky of ``K + noise I`` and ``alpha = K^{-1} y``.

    Returns ``(L, alpha, jitter, lml)``.
    """
    _check_kind(kind)
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i
    cdef double signal = exp(theta[d]), noise = exp(theta[d + 1])
    inv = np.exp(-2.0 * np.asarray(theta[:d]))
    cdef double[::1] inv_l2 = inv
    K = np.empty((n, n))
    L = np.empty((n, n))
    alpha = np.array(y, dtype=np.float64, copy=True)
    cdef double[:, ::1] Kv = K, Lv = L
    cdef double[::1] av = alpha
    cdef int nt = effective_n_threads(n_threads), nn = <int>n, one = 1, info
    cdef double jit = 0.0, logdet = 0.0, quad
    with nogil:
        _fill_K(&X[0, 0], &Kv[0, 0], n, d, &inv_l2[0], signal, noise, kind, nt)
        info = _chol_jitter(&Kv[0, 0], &Lv[0, 0], n, &jit)
        if info == 0:
            dpotrs(b"U", &nn, &one, &Lv[0, 0], &nn, &av[0], &nn, &info)
    if info != 0:
        raise np.linalg.LinAlgError(f"kernel matrix is not positive definite (info={info})")
    for i in range(n):
        logdet += 2.0 * log(Lv[i, i])
    quad = float(np.dot(y, alpha))
    lml = -0.5 * quad - 0.5 * logdet - 0.5 * n * log(2.0 * M_PI)
    return L, alpha, jit, lml


cdef void _grad_row(const double* X, const double* W, const double* alpha, double* g,
                    Py_ssize_t i, Py_ssize_t n, Py_ssize_t d, const double* inv_l2,
                    double signal, double noise, int kind) noexcept nogil:
    """Row i's share of tr(W dK/dtheta), W = alpha alpha^T - K^{-1} (lower triangle of
    K^{-1} in W).  j <= i; off-diagonal terms count twice."""
    cdef Py_ssize_t j, q
    cdef double w, r2, c, t, f, kv
    cdef const double* xi = X + i * d
    cdef const double* xj
    for q in range(d + 2):
        g[q] = 0.0
    for j in range(i + 1):
        w = alpha[i] * alpha[j] - W[i * n + j]
        f = 2.0 if j < i else 1.0
        w = w * f
        xj = X + j * d
        r2 = sq_dist(xi, xj, inv_l2, d)
        _k_dk(r2, signal, kind, &kv, &c)
        c = c * w
        g[d] += w * kv
        for q in range(d):
            t = xi[q] - xj[q]
            g[q] += c * (-2.0 * t * t * inv_l2[q])
    g[d + 1] = (alpha[i] * alpha[i] - W[i * n + i]) * noise


def lml_grad(const double[:, ::1] X, const double[::1] y, const double[::1] theta, int kind,
             n_threads=None):
    """Log marginal likelihood of ``y`` and its gradient with respect to ``theta``.

    Returns ``(lml, grad, jitter)``.  The gradient is
    ``0.5 tr((alpha alpha^T - K^{-1}) dK/dtheta)``; rows are summed in a fixed order so
    the result does not depend on the thread count.
    """
    _check_kind(kind)
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, q
    cdef double signal = exp(theta[d]), noise = exp(theta[d + 1])
    inv = np.exp(-2.0 * np.asarray(theta[:d]))
    cdef double[::1] inv_l2 = inv
    K = np.empty((n, n))
    A = np.empty((n, n))
    alpha = np.array(y, dtype=np.float64, copy=True)
    G = np.empty((n, d + 2))
    cdef double[:, ::1] Kv = K, Av = A, Gv = G
    cdef double[::1] av = alpha
    cdef int nt = effective_n_threads(n_threads), nn = <int>n, one = 1, info
    cdef double jit = 0.0, logdet = 0.0, quad = 0.0
    if n == 0:
        raise ValueError("X has no rows")
    with nogil:
        _fill_K(&X[0, 0], &Kv[0, 0], n, d, &inv_l2[0], signal, noise, kind, nt)
        info = _chol_jitter(&Kv[0, 0], &Av[0, 0], n, &jit)
        if info == 0:
            for i in range(n):
                logdet += 2.0 * log(Av[i, i])
            dpotrs(b"U", &nn, &one, &Av[0, 0], &nn, &av[0], &nn, &info)
        if info == 0:
            quad = ddot(&nn, &av[0], &one, <double*>&y[0], &one)
            # K^{-1}: LAPACK's upper triangle (Fortran) is the lower triangle in C order.
            dpotri(b"U", &nn, &Av[0, 0], &nn, &info)
        if info == 0:
            for i in prange(n, schedule="static", num_threads=nt):
                _grad_row(&X[0, 0], &Av[0, 0], &av[0], &Gv[i, 0], i, n, d, &inv_l2[0],
                          signal, noise, kind)
    if info != 0:
        raise np.linalg.LinAlgError(f"kernel matrix is not positive definite (info={info})")
    grad = np.zeros(d + 2)
    cdef double[::1] gv = grad
    for i in range(n):
        for q in range(d + 2):
            gv[q] += Gv[i, q]
    grad *= 0.5
    lml = -0.5 * quad - 0.5 * logdet - 0.5 * n * log(2.0 * M_PI)
    return lml, grad, jit


cdef GPState gp_state(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
                      const double[::1] inv_l2, double signal, int kind):
    """Pointers into the fitted model's arrays, for the nogil posterior (arrays must outlive it)."""
    cdef GPState st
    st.X = &X[0, 0]
    st.L = &L[0, 0]
    st.alpha = &alpha[0]
    st.inv_l2 = &inv_l2[0]
    st.signal = signal
    st.n = X.shape[0]
    st.d = X.shape[1]
    st.kind = kind
    return st


cdef void _predict_one(GPState st, const double* x, double* mu, double* var, double* gmu,
                       double* gvar) noexcept nogil:
    # scratch on this call (private to the calling thread)
    cdef double* work = <double*>malloc(3 * st.n * sizeof(double))
    if work == NULL:
        mu[0] = NAN
        var[0] = NAN
        return
    posterior_point(st, x, work, mu, var, gmu, gvar)
    free(work)


def predict(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
            const double[::1] inv_l2, double signal, int kind, const double[:, ::1] Xq,
            bint return_grad=False, n_threads=None):
    """Posterior mean and latent variance at the rows of ``Xq`` (and their gradients).

    Returns ``(mu, var)`` or ``(mu, var, dmu, dvar)`` with gradients of shape ``(m, d)``.
    """
    _check_kind(kind)
    cdef Py_ssize_t m = Xq.shape[0], d = X.shape[1], n = X.shape[0], i
    mu = np.empty(m)
    var = np.empty(m)
    gmu = np.zeros((m, d)) if return_grad else np.zeros((1, d))
    gvar = np.zeros((m, d)) if return_grad else np.zeros((1, d))
    cdef double[::1] muv = mu, varv = var
    cdef double[:, ::1] gmv = gmu, gvv = gvar
    cdef GPState st = gp_state(X, L, alpha, inv_l2, signal, kind)
    cdef int nt = effective_n_threads(n_threads)
    if m > 0:
        for i in prange(m, nogil=True, schedule="static", num_threads=nt):
            if return_grad:
                _predict_one(st, &Xq[i, 0], &muv[i], &varv[i], &gmv[i, 0], &gvv[i, 0])
            else:
                _predict_one(st, &Xq[i, 0], &muv[i], &varv[i], NULL, NULL)
    if return_grad:
        return mu, var, gmu, gvar
    return mu, var
