# Shared GP pieces: acquisition.pyx cimports the posterior (one point, or a block of
# points sharing one triangular solve) from here.

ctypedef struct GPState:
    const double* X        # (n, d) training inputs, C order
    const double* XT       # (d, n) the same, transposed (NULL: the scalar kernel path)
    const double* L        # (n, n) Cholesky factor, lower triangle in C order
    const double* alpha    # (n,) K^{-1} y
    const double* inv_l2   # (d,) 1 / lengthscale**2
    double signal          # signal variance
    Py_ssize_t n
    Py_ssize_t d
    int kind               # 0 = Matern-5/2, 1 = RBF


cdef double sq_dist(const double* a, const double* b, const double* inv_l2,
                    Py_ssize_t d) noexcept nogil
cdef double k_of_r2(double r2, double signal, int kind) noexcept nogil
cdef double dk_dr2(double r2, double signal, int kind) noexcept nogil
# posterior_point's scratch: POSTERIOR_WORK * n doubles
cdef enum:
    POSTERIOR_WORK = 5
cdef void posterior_point(GPState st, const double* x, double* work, double* mu, double* var,
                          double* gmu, double* gvar) noexcept nogil
cdef GPState gp_state(const double[:, ::1] X, const double[:, ::1] L, const double[::1] alpha,
                      const double[::1] inv_l2, double signal, int kind,
                      const double[:, ::1] XT=*)
cdef int posterior_block(GPState st, const double* Xb, Py_ssize_t m, Py_ssize_t mg,
                         double* Kb, double* Cb, double* mu, double* var, double* gmu,
                         double* gvar, int nt) noexcept nogil
cdef int kernel_rows(GPState st, const double* Xb, Py_ssize_t m, double* Kb,
                     int nt) noexcept nogil
cdef int panel_sqnorms(const double* L, Py_ssize_t n, const double* Kb,
                       const Py_ssize_t* rows, Py_ssize_t m, double* out,
                       int nt) noexcept nogil
