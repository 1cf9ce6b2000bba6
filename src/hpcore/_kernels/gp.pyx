"""Gaussian-process regression kernels: ARD Matern-5/2 and RBF covariances, their
gradients, Cholesky with jitter escalation (LAPACK through scipy.linalg.cython_lapack),
the log marginal likelihood and its exact gradient, and the posterior at many points
with gradients with respect to x.

Kernel rows (kernel_matrix, factorize, lml_grad) go through hp_kernel_row: squared
distances summed by dimension over a transposed copy of the points, then a branch-free
exp that the compiler vectorizes (within 1 ulp of libm).  lml_grad works in one n x n
array (see its docstring); its cost at n=1000, d=10 is within 1.3x of dpotrf + dpotri
(bench/bench_bayes_speed.py --lml-only).

Hyperparameters are ``theta = [log l_1 .. log l_d, log signal_var, log noise_var]``.
Matrices are C-ordered; a C-ordered symmetric matrix handed to LAPACK as ``uplo='U'``
comes back with the lower factor ``L`` (``K = L L^T``) in C order.
"""
import numpy as np
cimport numpy as cnp
from cython.parallel cimport prange, parallel, threadid
from libc.math cimport exp, sqrt, log, M_PI, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dtrsv, dtrsm, ddot
from scipy.linalg.cython_lapack cimport dpotrf, dpotrs, dpotri

from hpcore._kernels._openmp cimport effective_n_threads

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>
    #include <math.h>
    /* exp(x) for x <= 0, branch-free so GCC/clang vectorize the loops that call it
       (libm's exp is a call and would not be); within 1 ulp of libm (tested).  x is
       clamped at `lo` (-1400, passed in: a compile-time constant lets GCC turn the clamp
       into a branch, and the loops would no longer vectorize); 2^k is applied as two
       normal factors, so results underflow through the subnormals to 0 as libm's do. */
    typedef union { double d; uint64_t u; } hp_bits_t;
    static inline double hp_exp_neg(double x, double lo) {
        const double LOG2E = 1.4426950408889634, SHIFT = 6755399441055744.0; /* 1.5 * 2^52 */
        const double LN2HI = 6.93147180369123816490e-01, LN2LO = 1.90821492927058770002e-10;
        double xc = x < lo ? lo : x, kd, k1, r, p;
        hp_bits_t b, b1, s1, s2;
        b.d = xc * LOG2E + SHIFT;            /* k = round(x / ln 2) */
        kd = b.d - SHIFT;
        b1.d = kd * 0.5 + SHIFT;             /* k1 = round(k / 2), k2 = k - k1 */
        k1 = b1.d - SHIFT;
        b.d = (kd - k1) + SHIFT;
        r = (xc - kd * LN2HI) - kd * LN2LO;  /* |r| <= ln2 / 2 */
        p = 1.0 / 6227020800.0;              /* Taylor to r^13: truncation < 1e-17 */
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        s1.u = (b1.u + 1023) << 52;          /* 2^k1, 2^k2: k1, k2 >= -1010 */
        s2.u = (b.u + 1023) << 52;
        return (p * s1.d) * s2.d;
    }

    /* sq[j] = sqrt(r2[j]) (r2 >= 0).  Plain sqrt() keeps an errno branch that stops the
       loop from vectorizing (without -fno-math-errno), so SSE2 / NEON do it by pairs. */
    #if defined(__SSE2__) || defined(_M_X64)
    #include <emmintrin.h>
    static inline void hp_sqrt_array(const double* r2, double* sq, Py_ssize_t m) {
        Py_ssize_t j = 0;
        for (; j + 2 <= m; j += 2) _mm_storeu_pd(sq + j, _mm_sqrt_pd(_mm_loadu_pd(r2 + j)));
        for (; j < m; j++) sq[j] = sqrt(r2[j]);
    }
    #elif defined(__aarch64__)
    #include <arm_neon.h>
    static inline void hp_sqrt_array(const double* r2, double* sq, Py_ssize_t m) {
        Py_ssize_t j = 0;
        for (; j + 2 <= m; j += 2) vst1q_f64(sq + j, vsqrtq_f64(vld1q_f64(r2 + j)));
        for (; j < m; j++) sq[j] = sqrt(r2[j]);
    }
    #else
    static inline void hp_sqrt_array(const double* r2, double* sq, Py_ssize_t m) {
        Py_ssize_t j;
        for (j = 0; j < m; j++) sq[j] = sqrt(r2[j]);
    }
    #endif

    /* x86-64 Linux with GCC: the two row kernels are also compiled for AVX2 (4 doubles a
       vector instead of SSE2's 2), picked at load time by the CPU (ifunc).  No FMA: the
       results are the same bits on either path. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define HP_MULTIVERSION __attribute__((target_clones("avx2", "default")))
    #else
    #define HP_MULTIVERSION
    #endif

    /* Kernel values k(x_i, x_j) and dk/d(r^2) for j < m against the columns of XT
       (d x ld, column j = point j).  r2 and sq are scratch (m each); c may be NULL.
       r^2 sums the dimensions in order, as sq_dist does. */
    HP_MULTIVERSION static void hp_kernel_row(const double* xi, const double* XT, Py_ssize_t ld, Py_ssize_t m,
                              Py_ssize_t d, const double* inv_l2, double signal, int kind,
                              double LO, double* r2, double* sq, double* k, double* c) {
        /* LO: hp_exp_neg's clamp, an argument for the reason given there */
        const double SQ5 = 2.23606797749978969641;
        Py_ssize_t j, q;
        for (j = 0; j < m; j++) r2[j] = 0.0;
        for (q = 0; q < d; q++) {
            const double a = xi[q], w = inv_l2[q];
            const double* xq = XT + q * ld;
            for (j = 0; j < m; j++) { double t = a - xq[j]; r2[j] += t * t * w; }
        }
        if (kind == 1) {
            if (c) {
                for (j = 0; j < m; j++) {
                    double e = signal * hp_exp_neg(-0.5 * r2[j], LO);
                    k[j] = e; c[j] = -0.5 * e;
                }
            } else {
                for (j = 0; j < m; j++) k[j] = signal * hp_exp_neg(-0.5 * r2[j], LO);
            }
            return;
        }
        hp_sqrt_array(r2, sq, m);
        if (c) {
            for (j = 0; j < m; j++) {
                double a = SQ5 * sq[j], e = signal * hp_exp_neg(-a, LO);
                k[j] = (1.0 + a + (5.0 / 3.0) * r2[j]) * e;
                c[j] = -(5.0 / 6.0) * (1.0 + a) * e;
            }
        } else {
            for (j = 0; j < m; j++) {
                double a = SQ5 * sq[j];
                k[j] = (1.0 + a + (5.0 / 3.0) * r2[j]) * (signal * hp_exp_neg(-a, LO));
            }
        }
    }

    /* gmu[q] = inv_l2[q] sum_j a[j] (x[q] - XT[q, j]), gvar likewise with b: the
       posterior gradients' sums over the training points, four partial sums each. */
    HP_MULTIVERSION static void hp_posterior_grad(const double* x, const double* XT,
                                                  Py_ssize_t n, Py_ssize_t d,
                                                  const double* a, const double* b,
                                                  const double* inv_l2, double* gmu,
                                                  double* gvar) {
        Py_ssize_t j, q;
        for (q = 0; q < d; q++) {
            const double xq = x[q];
            const double* col = XT + q * n;
            double m0 = 0.0, m1 = 0.0, m2 = 0.0, m3 = 0.0;
            double v0 = 0.0, v1 = 0.0, v2 = 0.0, v3 = 0.0, t0, t1, t2, t3;
            for (j = 0; j + 4 <= n; j += 4) {
                t0 = xq - col[j]; t1 = xq - col[j + 1]; t2 = xq - col[j + 2]; t3 = xq - col[j + 3];
                m0 += a[j] * t0; m1 += a[j + 1] * t1; m2 += a[j + 2] * t2; m3 += a[j + 3] * t3;
                v0 += b[j] * t0; v1 += b[j + 1] * t1; v2 += b[j + 2] * t2; v3 += b[j + 3] * t3;
            }
            for (; j < n; j++) { t0 = xq - col[j]; m0 += a[j] * t0; v0 += b[j] * t0; }
            gmu[q] = ((m0 + m1) + (m2 + m3)) * inv_l2[q];
            gvar[q] = ((v0 + v1) + (v2 + v3)) * inv_l2[q];
        }
    }

    /* Triangular solves for a block of points against L (lower, n x n, C order).  The
       points' vectors sit in panels of 4 (panel g: n rows of 4 doubles, lane l = point
       4g + l), so every step is one 4-wide vector operation over 4 points, and row i of L
       is read once per pair of panels (it stays in L1 while they use it): 4-8 points cost
       about what dtrsv pays for one, where OpenBLAS's dtrsm gains little for a few
       right-hand sides.  hp_fwd_panels solves L v = b (dot form: each v_i from 4 partial
       sums over j mod 4, then ((s0 + s1) + (s2 + s3))), hp_bwd_panels L^T w = v (axpy
       form over the rows of L).  A lane's arithmetic is the same whichever lane, panel or
       pair it is in and however panels are split among threads (no FMA contraction: the
       AVX2 clone has none), so results do not depend on grouping or thread count. */
    #if defined(__GNUC__) || defined(__clang__)
    typedef double hp_v4 __attribute__((vector_size(32), aligned(8)));
    #define HP_LD(p) (*(const hp_v4*)(p))
    #define HP_ST(p, v) (*(hp_v4*)(p) = (v))
    #else
    typedef struct { double v[4]; } hp_v4_s;
    #endif

    #if defined(__GNUC__) || defined(__clang__)
    HP_MULTIVERSION static void hp_fwd_panels(const double* L, Py_ssize_t n, double* P,
                                              Py_ssize_t np) {
        Py_ssize_t i, j, g;
        const Py_ssize_t ps = 4 * n;
        for (i = 0; i < n; i++) {
            const double* Li = L + i * n;
            const double dii = Li[i];
            for (g = 0; g + 2 <= np; g += 2) {
                double* P0 = P + g * ps;
                double* P1 = P0 + ps;
                hp_v4 a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
                hp_v4 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
                for (j = 0; j + 4 <= i; j += 4) {
                    const double t0 = Li[j], t1 = Li[j + 1], t2 = Li[j + 2], t3 = Li[j + 3];
                    a0 += t0 * HP_LD(P0 + 4 * j);       b0 += t0 * HP_LD(P1 + 4 * j);
                    a1 += t1 * HP_LD(P0 + 4 * j + 4);   b1 += t1 * HP_LD(P1 + 4 * j + 4);
                    a2 += t2 * HP_LD(P0 + 4 * j + 8);   b2 += t2 * HP_LD(P1 + 4 * j + 8);
                    a3 += t3 * HP_LD(P0 + 4 * j + 12);  b3 += t3 * HP_LD(P1 + 4 * j + 12);
                }
                for (; j < i; j++) {
                    a0 += Li[j] * HP_LD(P0 + 4 * j);
                    b0 += Li[j] * HP_LD(P1 + 4 * j);
                }
                HP_ST(P0 + 4 * i, (HP_LD(P0 + 4 * i) - ((a0 + a1) + (a2 + a3))) / dii);
                HP_ST(P1 + 4 * i, (HP_LD(P1 + 4 * i) - ((b0 + b1) + (b2 + b3))) / dii);
            }
            for (; g < np; g++) {
                double* P0 = P + g * ps;
                hp_v4 a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
                for (j = 0; j + 4 <= i; j += 4) {
                    a0 += Li[j] * HP_LD(P0 + 4 * j);
                    a1 += Li[j + 1] * HP_LD(P0 + 4 * j + 4);
                    a2 += Li[j + 2] * HP_LD(P0 + 4 * j + 8);
                    a3 += Li[j + 3] * HP_LD(P0 + 4 * j + 12);
                }
                for (; j < i; j++) a0 += Li[j] * HP_LD(P0 + 4 * j);
                HP_ST(P0 + 4 * i, (HP_LD(P0 + 4 * i) - ((a0 + a1) + (a2 + a3))) / dii);
            }
        }
    }
    HP_MULTIVERSION static void hp_bwd_panels(const double* L, Py_ssize_t n, double* P,
                                              Py_ssize_t np) {
        Py_ssize_t i, j, g;
        const Py_ssize_t ps = 4 * n;
        for (i = n - 1; i >= 0; i--) {
            const double* Li = L + i * n;
            const double dii = Li[i];
            for (g = 0; g + 2 <= np; g += 2) {
                double* P0 = P + g * ps;
                double* P1 = P0 + ps;
                const hp_v4 w0 = HP_LD(P0 + 4 * i) / dii, w1 = HP_LD(P1 + 4 * i) / dii;
                HP_ST(P0 + 4 * i, w0);
                HP_ST(P1 + 4 * i, w1);
                for (j = 0; j < i; j++) {
                    const double t = Li[j];
                    HP_ST(P0 + 4 * j, HP_LD(P0 + 4 * j) - w0 * t);
                    HP_ST(P1 + 4 * j, HP_LD(P1 + 4 * j) - w1 * t);
                }
            }
            for (; g < np; g++) {
                double* P0 = P + g * ps;
                const hp_v4 w0 = HP_LD(P0 + 4 * i) / dii;
                HP_ST(P0 + 4 * i, w0);
                for (j = 0; j < i; j++) HP_ST(P0 + 4 * j, HP_LD(P0 + 4 * j) - w0 * Li[j]);
            }
        }
    }

    /* Backward solves L^T w = v in place on m vectors (rows of V, stride ld), four rows
       of L per sweep (they stay in cache while every vector, two at a time, uses them):
       each v_j gets the same subtractions in the same order as in hp_bwd_panels (rows
       i, i-1, i-2, i-3), so the bits are those of a panel lane, for any m, without the
       gather into panels or their padding. */
    #define HP_BWD4_HEAD(v, w0, w1, w2, w3) \
        const double w0 = v[i] / L0[i]; \
        const double w1 = (v[i - 1] - w0 * L0[i - 1]) / L1[i - 1]; \
        const double w2 = ((v[i - 2] - w0 * L0[i - 2]) - w1 * L1[i - 2]) / L2[i - 2]; \
        const double w3 = (((v[i - 3] - w0 * L0[i - 3]) - w1 * L1[i - 3]) \
                           - w2 * L2[i - 3]) / L3[i - 3]; \
        v[i] = w0; v[i - 1] = w1; v[i - 2] = w2; v[i - 3] = w3;
    HP_MULTIVERSION static void hp_bwd_rows(const double* L, Py_ssize_t n, double* V,
                                            Py_ssize_t ld, Py_ssize_t m) {
        Py_ssize_t i, j, r;
        for (i = n - 1; i >= 3; i -= 4) {
            const double* L0 = L + i * n;
            const double* L1 = L0 - n;
            const double* L2 = L1 - n;
            const double* L3 = L2 - n;
            for (r = 0; r + 2 <= m; r += 2) {
                double* v = V + r * ld;
                double* u = v + ld;
                HP_BWD4_HEAD(v, w0, w1, w2, w3)
                HP_BWD4_HEAD(u, x0, x1, x2, x3)
                for (j = 0; j + 4 <= i - 3; j += 4) {
                    const hp_v4 l0 = HP_LD(L0 + j), l1 = HP_LD(L1 + j);
                    const hp_v4 l2 = HP_LD(L2 + j), l3 = HP_LD(L3 + j);
                    HP_ST(v + j, (((HP_LD(v + j) - w0 * l0) - w1 * l1) - w2 * l2) - w3 * l3);
                    HP_ST(u + j, (((HP_LD(u + j) - x0 * l0) - x1 * l1) - x2 * l2) - x3 * l3);
                }
                for (; j < i - 3; j++) {
                    v[j] = (((v[j] - w0 * L0[j]) - w1 * L1[j]) - w2 * L2[j]) - w3 * L3[j];
                    u[j] = (((u[j] - x0 * L0[j]) - x1 * L1[j]) - x2 * L2[j]) - x3 * L3[j];
                }
            }
            for (; r < m; r++) {
                double* v = V + r * ld;
                HP_BWD4_HEAD(v, w0, w1, w2, w3)
                for (j = 0; j + 4 <= i - 3; j += 4)
                    HP_ST(v + j, (((HP_LD(v + j) - w0 * HP_LD(L0 + j)) - w1 * HP_LD(L1 + j))
                                  - w2 * HP_LD(L2 + j)) - w3 * HP_LD(L3 + j));
                for (; j < i - 3; j++)
                    v[j] = (((v[j] - w0 * L0[j]) - w1 * L1[j]) - w2 * L2[j]) - w3 * L3[j];
            }
        }
        for (; i >= 0; i--) {
            const double* Li = L + i * n;
            for (r = 0; r < m; r++) {
                double* v = V + r * ld;
                const double w0 = v[i] / Li[i];
                v[i] = w0;
                for (j = 0; j < i; j++) v[j] = v[j] - w0 * Li[j];
            }
        }
    }
    #else
    /* the same arithmetic lane by lane */
    static void hp_fwd_panels(const double* L, Py_ssize_t n, double* P, Py_ssize_t np) {
        Py_ssize_t i, j, g, l;
        for (g = 0; g < np; g++) {
            double* P0 = P + g * 4 * n;
            for (i = 0; i < n; i++) {
                const double* Li = L + i * n;
                for (l = 0; l < 4; l++) {
                    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
                    for (j = 0; j + 4 <= i; j += 4) {
                        s0 += Li[j] * P0[4 * j + l]; s1 += Li[j + 1] * P0[4 * j + 4 + l];
                        s2 += Li[j + 2] * P0[4 * j + 8 + l]; s3 += Li[j + 3] * P0[4 * j + 12 + l];
                    }
                    for (; j < i; j++) s0 += Li[j] * P0[4 * j + l];
                    P0[4 * i + l] = (P0[4 * i + l] - ((s0 + s1) + (s2 + s3))) / Li[i];
                }
            }
        }
    }
    static void hp_bwd_panels(const double* L, Py_ssize_t n, double* P, Py_ssize_t np) {
        Py_ssize_t i, j, g, l;
        for (g = 0; g < np; g++) {
            double* P0 = P + g * 4 * n;
            for (i = n - 1; i >= 0; i--) {
                const double* Li = L + i * n;
                for (l = 0; l < 4; l++) {
                    const double w = P0[4 * i + l] / Li[i];
                    P0[4 * i + l] = w;
                    for (j = 0; j < i; j++) P0[4 * j + l] -= w * Li[j];
                }
            }
        }
    }
    static void hp_bwd_rows(const double* L, Py_ssize_t n, double* V, Py_ssize_t ld,
                            Py_ssize_t m) {
        Py_ssize_t i, j, r;
        for (r = 0; r < m; r++) {
            double* v = V + r * ld;
            for (i = n - 1; i >= 0; i--) {
                const double* Li = L + i * n;
                const double w0 = v[i] / Li[i];
                v[i] = w0;
                for (j = 0; j < i; j++) v[j] = v[j] - w0 * Li[j];
            }
        }
    }
    #endif

    /* Row i of the fused LML gradient pass.  K holds K^{-1} in its lower triangle (C
       order) and c_ij = dk/d(r^2) of pair j < i at K[(n-1-i) n + (n-1-j)] (the strict
       upper triangle, rows flipped: row i's pairs are one contiguous run).
       acc[q] = sum_{j<i} c_ij W_ij (x_iq - x_jq)^2 with W = alpha alpha^T - K^{-1};
       returns W_ii.  cw is scratch (n). */
    HP_MULTIVERSION static double hp_grad_row(Py_ssize_t i, Py_ssize_t n, Py_ssize_t d, const double* xi,
                              const double* XT, const double* K, const double* alpha,
                              double* cw, double* acc) {
        const double* kinv = K + i * n;
        const double* cr = K + (n - 1 - i) * n + (n - 1);   /* cr[-j] = c_ij */
        const double ai = alpha[i];
        Py_ssize_t j, q;
        for (j = 0; j < i; j++) cw[j] = cr[-j] * (ai * alpha[j] - kinv[j]);
        for (q = 0; q < d; q++) {
            const double a = xi[q];
            const double* xq = XT + q * n;
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, t0, t1, t2, t3;
            for (j = 0; j + 4 <= i; j += 4) {
                t0 = a - xq[j]; t1 = a - xq[j + 1]; t2 = a - xq[j + 2]; t3 = a - xq[j + 3];
                s0 += cw[j] * (t0 * t0); s1 += cw[j + 1] * (t1 * t1);
                s2 += cw[j + 2] * (t2 * t2); s3 += cw[j + 3] * (t3 * t3);
            }
            for (; j < i; j++) { t0 = a - xq[j]; s0 += cw[j] * (t0 * t0); }
            acc[q] = (s0 + s1) + (s2 + s3);
        }
        return ai * ai - kinv[i];
    }
    """
    double hp_exp_neg(double x, double lo) noexcept nogil
    void hp_kernel_row(const double* xi, const double* XT, Py_ssize_t ld, Py_ssize_t m,
                       Py_ssize_t d, const double* inv_l2, double signal, int kind,
                       double lo, double* r2, double* sq, double* k, double* c) noexcept nogil
    void hp_posterior_grad(const double* x, const double* XT, Py_ssize_t n, Py_ssize_t d,
                           const double* a, const double* b, const double* inv_l2,
                           double* gmu, double* gvar) noexcept nogil
    void hp_fwd_panels(const double* L, Py_ssize_t n, double* P,
                       Py_ssize_t npanels) noexcept nogil
    void hp_bwd_panels(const double* L, Py_ssize_t n, double* P,
                       Py_ssize_t npanels) noexcept nogil
    void hp_bwd_rows(const double* L, Py_ssize_t n, double* V, Py_ssize_t ld,
                     Py_ssize_t m) noexcept nogil
    double hp_grad_row(Py_ssize_t i, Py_ssize_t n, Py_ssize_t d, const double* xi,
                       const double* XT, const double* K, const double* alpha,
                       double* cw, double* acc) noexcept nogil

cdef double SQRT5 = sqrt(5.0)
cdef int MAX_JITTER_TRIES = 12
cdef double EXP_LO = -1400.0     # hp_exp_neg's clamp (exp(-1400) is 0 in doubles)


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

    ``work`` holds POSTERIOR_WORK * n doubles.  With ``st.XT`` the kernel row (and
    dk/d(r^2) for the gradients) comes from the vectorized hp_kernel_row and the
    gradient sums run over contiguous columns (hp_posterior_grad); without it, the
    scalar loops.
    """
    cdef Py_ssize_t n = st.n, d = st.d, j, q
    cdef double* kv = work
    cdef double* v = work + n
    cdef double* r2 = work + 2 * n
    cdef double* sq = work + 3 * n
    cdef double* cc = work + 4 * n
    cdef int nn = <int>n, one = 1
    cdef double m = 0.0, s2, c, a, b, t
    cdef const double* xj
    if st.XT != NULL:
        hp_kernel_row(x, st.XT, n, n, d, st.inv_l2, st.signal, st.kind, EXP_LO, r2, sq, kv,
                      cc if gmu != NULL else NULL)
        for j in range(n):
            m += kv[j] * st.alpha[j]
    else:
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
    if st.XT != NULL:
        # a_j = 2 c_j alpha_j, b_j = -4 c_j v_j (into sq and r2, no longer needed)
        for j in range(n):
            sq[j] = 2.0 * cc[j] * st.alpha[j]
            r2[j] = -4.0 * cc[j] * v[j]
        hp_posterior_grad(x, st.XT, n, d, sq, r2, st.inv_l2, gmu, gvar)
        return
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


cdef int _work_threads(int nt, double work, double per_thread, Py_ssize_t units) noexcept nogil:
    """Threads for a parallel region of ``work`` (flop-like units): at most one per
    ``per_thread`` of work and per unit, so a small region stays on one thread (waking
    a thread team costs more than it saves) and more threads are never slower."""
    cdef double k = work / per_thread
    if nt <= 1 or units <= 1 or k < 2.0:
        return 1
    if k < nt:
        nt = <int>k
    if units < nt:
        nt = <int>units
    return nt


cdef void _fwd_panels_of_rows(const double* L, Py_ssize_t n, const double* Kb,
                              const Py_ssize_t* rows, Py_ssize_t m, Py_ssize_t npn,
                              double* P, int nt) noexcept nogil:
    """Gather rows of Kb into ``npn`` panels of ``P`` (lane l of panel g = row
    ``rows[4 g + l]``, or row ``4 g + l`` when ``rows`` is NULL; lanes from m on are
    zeros) and solve L v = b in place on them with hp_fwd_panels, the panels split
    over threads by work size."""
    cdef Py_ssize_t g0, g1, l, r, j
    cdef int nts, t
    cdef const double* src
    for g0 in range(npn):
        for l in range(4):
            r = 4 * g0 + l
            if r < m:
                src = Kb + (rows[r] if rows != NULL else r) * n
                for j in range(n):
                    P[g0 * 4 * n + 4 * j + l] = src[j]
            else:
                for j in range(n):
                    P[g0 * 4 * n + 4 * j + l] = 0.0
    nts = _work_threads(nt, <double>npn * n * n * 2.0, 4.0e6, npn)
    for t in prange(nts, schedule="static", num_threads=nts):
        g0 = (npn * t) // nts
        g1 = (npn * (t + 1)) // nts
        if g1 > g0:
            hp_fwd_panels(L, n, P + g0 * 4 * n, g1 - g0)


cdef void _solve_block(const double* L, Py_ssize_t n, double* Kb, Py_ssize_t m, bint fwd,
                       double* P, int nt) noexcept nogil:
    """Rows 0..m-1 of Kb (one point each, n doubles) solved in place with L v = b
    (``fwd``) or L^T w = v.  Forward: groups of 4 points (a remainder of 3 padded to a
    group) through the panel kernel, a remainder of 1 or 2 by dtrsv (a panel wastes its
    empty lanes there); the split depends on m only.  Backward: every point by
    hp_bwd_rows (the bits of a panel lane, whatever m, without a gather or padding).
    ``P`` is scratch of 4 n ceil(m / 4) doubles."""
    cdef Py_ssize_t npn = m // 4, i, j, l, g0, g1, rem = m % 4, first_tail
    cdef int nn = <int>n, one = 1, nts, t
    if rem == 3:
        npn += 1
    first_tail = min(m, 4 * npn)
    if not fwd:
        nts = _work_threads(nt, <double>m * n * n, 4.0e6, m)
        for t in prange(nts, schedule="static", num_threads=nts):
            g0 = (m * t) // nts
            g1 = (m * (t + 1)) // nts
            if g1 > g0:
                hp_bwd_rows(L, n, Kb + g0 * n, n, g1 - g0)
        return
    if npn > 0:
        _fwd_panels_of_rows(L, n, Kb, NULL, m, npn, P, nt)
        for i in range(first_tail):
            g0 = i // 4
            l = i % 4
            for j in range(n):
                Kb[i * n + j] = P[g0 * 4 * n + 4 * j + l]
    for i in range(first_tail, m):
        # the Fortran view of L (C order) is U = L^T
        if fwd:
            dtrsv(b"U", b"T", b"N", &nn, <double*>L, &nn, Kb + i * n, &one)
        else:
            dtrsv(b"U", b"N", b"N", &nn, <double*>L, &nn, Kb + i * n, &one)


cdef int posterior_block(GPState st, const double* Xb, Py_ssize_t m, Py_ssize_t mg,
                         double* Kb, double* Cb, double* mu, double* var, double* gmu,
                         double* gvar, int nt) noexcept nogil:
    """Posterior mean and latent variance at the ``m`` rows of ``Xb`` (C order, m x d),
    the gradients (into ``gmu``/``gvar``, mg x d) for the first ``mg`` of them, with the
    triangular solves shared by the block (_solve_block: panels of 4 points read each row
    of L once) instead of one dtrsv per point: posterior_point's arithmetic otherwise
    (the same kernel rows, mean, variance clamp and gradient sums).  Needs ``st.XT``.

    ``Kb`` is scratch of m x n doubles, ``Cb`` of mg x n.  Every step is per point or
    split by points only, so the result is the same for any thread count.  Returns 0,
    or -1 when a buffer could not be allocated."""
    cdef Py_ssize_t n = st.n, d = st.d, i, j
    cdef int ntr
    cdef double s, c, t
    cdef double* buf
    cdef double* kr
    cdef double* cr
    if m <= 0:
        return 0
    # kernel rows (and dk/d(r^2) for the gradient rows), means
    ntr = _work_threads(nt, <double>m * n * (d + 12), 2.0e5, m)
    buf = <double*>malloc((ntr * 2 * n + 4 * n * ((m + 3) // 4)) * sizeof(double))
    if buf == NULL:
        return -1
    for i in prange(m, schedule="static", num_threads=ntr):
        kr = Kb + i * n
        hp_kernel_row(Xb + i * d, st.XT, n, n, d, st.inv_l2, st.signal, st.kind, EXP_LO,
                      buf + 2 * n * threadid(), buf + 2 * n * threadid() + n, kr,
                      Cb + i * n if i < mg else NULL)
        s = 0.0
        for j in range(n):
            s = s + kr[j] * st.alpha[j]
        mu[i] = s
    # v = L^{-1} k
    _solve_block(st.L, n, Kb, m, True, buf + ntr * 2 * n, nt)
    for i in prange(m, schedule="static", num_threads=ntr):
        kr = Kb + i * n
        s = 0.0
        for j in range(n):
            s = s + kr[j] * kr[j]
        s = st.signal - s
        if s < 1e-14 * st.signal:
            s = 1e-14 * st.signal
        var[i] = s
    if mg <= 0:
        free(buf)
        return 0
    # K^{-1} k = L^{-T} v for the gradient rows
    _solve_block(st.L, n, Kb, mg, False, buf + ntr * 2 * n, nt)
    free(buf)
    ntr = _work_threads(nt, <double>mg * n * (2 * d + 4), 2.0e5, mg)
    for i in prange(mg, schedule="static", num_threads=ntr):
        kr = Kb + i * n
        cr = Cb + i * n
        # a_j = 2 c_j alpha_j (into Cb), b_j = -4 c_j (K^{-1} k)_j (into Kb)
        for j in range(n):
            c = cr[j]
            t = kr[j]
            cr[j] = 2.0 * c * st.alpha[j]
            kr[j] = -4.0 * c * t
        hp_posterior_grad(Xb + i * d, st.XT, n, d, cr, kr, st.inv_l2, gmu + i * d,
                          gvar + i * d)
    return 0


cdef int kernel_rows(GPState st, const double* Xb, Py_ssize_t m, double* Kb,
                     int nt) noexcept nogil:
    """Kernel rows ``k(Xb[i], X)`` (m x n into ``Kb``), as posterior_block computes them
    (hp_kernel_row; per row, so the same for any thread count).  Needs ``st.XT``.
    Returns 0, or -1 when a buffer could not be allocated."""
    cdef Py_ssize_t n = st.n, d = st.d, i
    cdef int ntr
    cdef double* buf
    if m <= 0:
        return 0
    ntr = _work_threads(nt, <double>m * n * (d + 12), 2.0e5, m)
    buf = <double*>malloc(ntr * 2 * n * sizeof(double))
    if buf == NULL:
        return -1
    for i in prange(m, schedule="static", num_threads=ntr):
        hp_kernel_row(Xb + i * d, st.XT, n, n, d, st.inv_l2, st.signal, st.kind, EXP_LO,
                      buf + 2 * n * threadid(), buf + 2 * n * threadid() + n, Kb + i * n,
                      NULL)
    free(buf)
    return 0


cdef int panel_sqnorms(const double* L, Py_ssize_t n, const double* Kb,
                       const Py_ssize_t* rows, Py_ssize_t m, double* out,
                       int nt) noexcept nogil:
    """``out[r] = ||L^{-1} Kb[rows[r]]||^2`` for r < m, every row through the panel
    forward solve (hp_fwd_panels; empty lanes of the last panel padded with zeros), the
    squares summed in order: a row's result is the same bits whichever rows share its
    call, in which lane or panel, and for any thread count.  Returns 0, or -1 when a
    buffer could not be allocated."""
    cdef Py_ssize_t npn = (m + 3) // 4, g0, l, j, r
    cdef double s
    cdef double* P
    if m <= 0:
        return 0
    P = <double*>malloc(4 * n * npn * sizeof(double))
    if P == NULL:
        return -1
    _fwd_panels_of_rows(L, n, Kb, rows, m, npn, P, nt)
    for r in range(m):
        g0 = r // 4
        l = r % 4
        s = 0.0
        for j in range(n):
            s = s + P[g0 * 4 * n + 4 * j + l] * P[g0 * 4 * n + 4 * j + l]
        out[r] = s
    free(P)
    return 0


cdef inline double _fabs(double x) noexcept nogil:
    return -x if x < 0 else x


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
    cdef double* buf = NULL
    cdef bint failed = False
    if n1 == 0 or n2 == 0:
        return out
    if nt > n1:
        nt = <int>n1              # no idle threads (and nt is read outside the pragma)
    X2Ta = np.ascontiguousarray(np.asarray(X2).T)
    cdef double[:, ::1] X2T = X2Ta
    with nogil, parallel(num_threads=nt):
        buf = <double*>malloc(2 * n2 * sizeof(double))
        for i in prange(n1, schedule="static"):
            if buf == NULL:
                failed = True
                continue
            hp_kernel_row(&X1[i, 0], &X2T[0, 0], n2, n2, d, &inv_l2[0], signal, kind, EXP_LO,
                          buf, buf + n2, &o[i, 0], NULL)
        free(buf)
    if failed:
        raise MemoryError("kernel_matrix: out of memory for a row buffer")
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


cdef void _fill_lower(const double* X, const double* XT, double* K, double* c_out,
                      Py_ssize_t n, Py_ssize_t d, const double* inv_l2, double signal,
                      double diag_add, int kind, int nt) noexcept nogil:
    """K's lower triangle (C order, diagonal + ``diag_add``); with ``c_out`` (== K) also
    dk/d(r^2) of each pair j < i, flipped into the strict upper triangle (see
    hp_grad_row).  Row i costs i, so iteration k fills rows k and n - 1 - k: every
    iteration costs the same and plain static blocks balance the threads (a prange
    chunksize would leave Cython a temporary that only the OpenMP pragma reads, a
    set-but-unused variable in the serial build)."""
    cdef Py_ssize_t i, j, k, r, npair = (n + 1) // 2
    cdef double* buf
    cdef double* crow
    cdef double* buf0 = NULL
    buf = buf0
    with parallel(num_threads=nt):
        buf = <double*>malloc(3 * (n + 1) * sizeof(double))
        for k in prange(npair, schedule="static"):
            for r in range(2 if 2 * k + 1 < n else 1):
                i = k if r == 0 else n - 1 - k
                if buf == NULL:
                    K[i * n + i] = NAN    # reported as a failed factorization
                    continue
                crow = buf + 2 * (n + 1) if c_out != NULL else NULL
                hp_kernel_row(X + i * d, XT, n, i + 1, d, inv_l2, signal, kind, EXP_LO, buf,
                              buf + (n + 1), K + i * n, crow)
                K[i * n + i] = K[i * n + i] + diag_add
                if c_out != NULL:
                    for j in range(i):
                        c_out[(n - 1 - i) * n + (n - 1 - j)] = crow[j]
        free(buf)


cdef int _chol_inplace(const double* X, const double* XT, double* K, Py_ssize_t n,
                       Py_ssize_t d, const double* inv_l2, double signal, double noise,
                       int kind, int nt, bint with_c, double* jitter) noexcept nogil:
    """Fill K's lower triangle and factorize it in place (LAPACK's 'U' of the C array is
    its lower triangle; the upper one is neither read nor written).  Jitter escalation as
    _chol_jitter: 0, then 1e-10 * mean diag, x10 per try; a failed try refills the lower
    triangle only.  Returns LAPACK's info of the last try."""
    cdef int nn = <int>n, info = 1, tries = 0
    cdef double jit = 0.0, mdiag = signal + noise
    if mdiag <= 0:
        mdiag = 1.0
    _fill_lower(X, XT, K, K if with_c else NULL, n, d, inv_l2, signal, noise, kind, nt)
    while True:
        dpotrf(b"U", &nn, K, &nn, &info)
        if info == 0:
            break
        tries += 1
        if tries >= MAX_JITTER_TRIES:
            break
        jit = 1e-10 * mdiag if jit == 0 else jit * 10.0
        _fill_lower(X, XT, K, NULL, n, d, inv_l2, signal, noise + jit, kind, nt)
    jitter[0] = jit
    return info


def factorize(const double[:, ::1] X, const double[::1] y, const double[::1] theta, int kind,
              n_threads=None):
    """Cholesky of ``K + noise I`` and ``alpha = K^{-1} y``.

    Returns ``(L, alpha, jitter, lml)``: the kernel fills L's lower triangle, which is
    factorized in place (no copy of K), and the upper triangle is zeroed.
    """
    _check_kind(kind)
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, j
    if n == 0:
        raise ValueError("X has no rows")
    cdef double signal = exp(theta[d]), noise = exp(theta[d + 1])
    inv = np.exp(-2.0 * np.asarray(theta[:d]))
    cdef double[::1] inv_l2 = inv
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    L = np.empty((n, n))
    alpha = np.array(y, dtype=np.float64, copy=True)
    cdef double[:, ::1] Lv = L
    cdef double[::1] av = alpha
    cdef int nt = effective_n_threads(n_threads), nn = <int>n, one = 1, info
    cdef double jit = 0.0, logdet = 0.0, quad
    with nogil:
        info = _chol_inplace(&X[0, 0], &XT[0, 0], &Lv[0, 0], n, d, &inv_l2[0], signal, noise,
                             kind, nt, False, &jit)
        if info == 0:
            dpotrs(b"U", &nn, &one, &Lv[0, 0], &nn, &av[0], &nn, &info)
        for i in range(n):
            for j in range(i + 1, n):
                Lv[i, j] = 0.0
    if info != 0:
        raise np.linalg.LinAlgError(f"kernel matrix is not positive definite (info={info})")
    for i in range(n):
        logdet += 2.0 * log(Lv[i, i])
    quad = float(np.dot(y, alpha))
    lml = -0.5 * quad - 0.5 * logdet - 0.5 * n * log(2.0 * M_PI)
    return L, alpha, jit, lml


def lml_grad(const double[:, ::1] X, const double[::1] y, const double[::1] theta, int kind,
             n_threads=None):
    """Log marginal likelihood of ``y`` and its gradient with respect to ``theta``.

    Returns ``(lml, grad, jitter)``.  The gradient is
    ``0.5 tr((alpha alpha^T - K^{-1}) dK/dtheta)``, in one n x n array: the kernel fill
    writes k into the lower triangle and dk/d(r^2) into the upper one, LAPACK factorizes
    and inverts the lower triangle in place (dpotrf, dpotri), and one pass over the pairs
    j < i forms W = alpha alpha^T - K^{-1} on the fly and accumulates every lengthscale
    entry (no kernel re-evaluation).  The signal entry uses
    ``tr(W K) = y^T alpha - n`` (so ``tr(W (K - s I)) = y^T alpha - n - s tr W``, s =
    noise + jitter), the noise entry ``noise tr W``.  Rows are summed in a fixed order, so
    the result does not depend on the thread count.
    """
    _check_kind(kind)
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], i, q
    if n == 0:
        raise ValueError("X has no rows")
    cdef double signal = exp(theta[d]), noise = exp(theta[d + 1])
    inv = np.exp(-2.0 * np.asarray(theta[:d]))
    cdef double[::1] inv_l2 = inv
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    K = np.empty((n, n))
    alpha = np.array(y, dtype=np.float64, copy=True)
    G = np.empty((n, d + 1))
    cdef double[:, ::1] Kv = K, Gv = G
    cdef double[::1] av = alpha
    cdef int nt = effective_n_threads(n_threads), nn = <int>n, one = 1, info
    cdef double jit = 0.0, logdet = 0.0, quad = 0.0, trw = 0.0
    cdef double* buf
    with nogil:
        info = _chol_inplace(&X[0, 0], &XT[0, 0], &Kv[0, 0], n, d, &inv_l2[0], signal, noise,
                             kind, nt, True, &jit)
        if info == 0:
            for i in range(n):
                logdet += 2.0 * log(Kv[i, i])
            dpotrs(b"U", &nn, &one, &Kv[0, 0], &nn, &av[0], &nn, &info)
        if info == 0:
            quad = ddot(&nn, &av[0], &one, <double*>&y[0], &one)
            # K^{-1} into the lower triangle (C order); the upper one keeps dk/d(r^2).
            dpotri(b"U", &nn, &Kv[0, 0], &nn, &info)
        buf = NULL
        if info == 0:
            with parallel(num_threads=nt):
                buf = <double*>malloc((n + 1) * sizeof(double))
                for i in prange(n, schedule="static", chunksize=4):
                    if buf == NULL:
                        Gv[i, d] = NAN
                        continue
                    Gv[i, d] = hp_grad_row(i, n, d, &X[i, 0], &XT[0, 0], &Kv[0, 0], &av[0],
                                           buf, &Gv[i, 0])
                free(buf)
    if info != 0:
        raise np.linalg.LinAlgError(f"kernel matrix is not positive definite (info={info})")
    grad = np.zeros(d + 2)
    cdef double[::1] gv = grad
    for i in range(n):
        for q in range(d):
            gv[q] += Gv[i, q]
        trw += Gv[i, d]
    if trw != trw:
        raise MemoryError("lml_grad: out of memory for a row buffer")
    for q in range(d):
        gv[q] *= -2.0 * inv_l2[q]          # 0.5 * 2 (pairs j < i twice) * (-2 inv_l2 t^2)
    gv[d] = 0.5 * (quad - n - (noise + jit) * trw)
    gv[d + 1] = 0.5 * noise * trw
    lml = -0.5 * quad - 0.5 * logdet - 0.5 * n * log(2.0 * M_PI)
    return lml, grad, jit


cdef GPState gp_state(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
                      const double[::1] inv_l2, double signal, int kind,
                      const double[:, ::1] XT=None):
    """Pointers into the fitted model's arrays, for the nogil posterior (arrays must outlive
    it).  ``XT``: ``X`` transposed (C order), for the vectorized kernel rows."""
    cdef GPState st
    st.X = &X[0, 0]
    st.XT = NULL
    if XT is not None and XT.shape[0] == X.shape[1] and XT.shape[1] == X.shape[0] \
            and X.shape[0] > 0 and X.shape[1] > 0:
        st.XT = &XT[0, 0]
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
    cdef double* work = <double*>malloc(POSTERIOR_WORK * st.n * sizeof(double))
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
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    cdef GPState st = gp_state(X, L, alpha, inv_l2, signal, kind, XT)
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


def _solve_rows(const double[:, ::1] L, B, bint fwd, bint panels, n_threads=None):
    """Test hook: the rows of ``B`` solved with ``L`` (``fwd``: L v = b, else L^T w = b),
    either every row padded into 4-point panels (hp_fwd_panels / hp_bwd_panels, the
    reference arithmetic) or through the block path the posterior uses."""
    cdef Py_ssize_t n = L.shape[0], m, npn, g, l, i, j
    out = np.array(B, dtype=np.float64, order="C", copy=True)
    if out.ndim != 2 or out.shape[1] != n or L.shape[1] != n:
        raise ValueError(f"B must be (m, {n}) and L ({n}, {n})")
    m = out.shape[0]
    npn = (m + 3) // 4
    cdef double[:, ::1] o = out
    Pa = np.zeros(4 * n * max(npn, 1))
    cdef double[::1] P = Pa
    cdef int nt = effective_n_threads(n_threads)
    if m == 0:
        return out
    with nogil:
        if not panels:
            _solve_block(&L[0, 0], n, &o[0, 0], m, fwd, &P[0], nt)
        else:
            for i in range(m):
                for j in range(n):
                    P[(i // 4) * 4 * n + 4 * j + i % 4] = o[i, j]
            if fwd:
                hp_fwd_panels(&L[0, 0], n, &P[0], npn)
            else:
                hp_bwd_panels(&L[0, 0], n, &P[0], npn)
            for i in range(m):
                for j in range(n):
                    o[i, j] = P[(i // 4) * 4 * n + 4 * j + i % 4]
    return out


def predict_block(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
                  const double[::1] inv_l2, double signal, int kind, const double[:, ::1] Xq,
                  bint return_grad=False, n_threads=None):
    """:func:`predict` through posterior_block: all rows of ``Xq`` share the triangular
    solves (dtrsm over blocks of points).  Same returns as :func:`predict`."""
    _check_kind(kind)
    cdef Py_ssize_t m = Xq.shape[0], d = X.shape[1], n = X.shape[0]
    if Xq.shape[1] != d:
        raise ValueError(f"Xq must have {d} columns, got {Xq.shape[1]}")
    mu = np.empty(m)
    var = np.empty(m)
    cdef Py_ssize_t mg = m if return_grad else 0
    gmu = np.zeros((max(mg, 1), d))
    gvar = np.zeros((max(mg, 1), d))
    Kb = np.empty((max(m, 1), n))
    Cb = np.empty((max(mg, 1), n))
    cdef double[::1] muv = mu, varv = var
    cdef double[:, ::1] gmv = gmu, gvv = gvar, Kv = Kb, Cv = Cb
    XTa = np.ascontiguousarray(np.asarray(X).T)
    cdef double[:, ::1] XT = XTa
    cdef GPState st = gp_state(X, L, alpha, inv_l2, signal, kind, XT)
    cdef int nt = effective_n_threads(n_threads), rc = 0
    if m > 0:
        with nogil:
            rc = posterior_block(st, &Xq[0, 0], m, mg, &Kv[0, 0], &Cv[0, 0], &muv[0],
                                 &varv[0], &gmv[0, 0], &gvv[0, 0], nt)
    if rc != 0:
        raise MemoryError("predict_block: out of memory for a row buffer")
    if return_grad:
        return mu, var, gmu[:m], gvar[:m]
    return mu, var
