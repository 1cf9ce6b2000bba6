import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern

from hpcore import kernels
from hpcore._kernels import gp as _gp
from hpcore.kernels._gp import gp_log_prior


def _np_kernel(X1, X2, ls, s, kernel):
    D = (X1[:, None, :] - X2[None, :, :]) / ls
    r2 = (D ** 2).sum(-1)
    if kernel == "rbf":
        return s * np.exp(-0.5 * r2)
    r = np.sqrt(r2)
    return s * (1 + np.sqrt(5) * r + 5.0 / 3.0 * r2) * np.exp(-np.sqrt(5) * r)


def _data(n=25, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = np.sin(4 * X).sum(1) + 0.1 * rng.standard_normal(n)
    return X, (y - y.mean()) / y.std()


def _theta(d, seed=1):
    rng = np.random.default_rng(seed)
    return np.r_[np.log(rng.uniform(0.2, 1.0, d)), np.log(1.7), np.log(1e-3)]


@pytest.mark.parametrize("kernel", ["matern52", "rbf"])
def test_kernel_matrix_matches_numpy(kernel):
    rng = np.random.default_rng(0)
    X1, X2 = rng.random((40, 5)), rng.random((17, 5))
    ls = rng.uniform(0.1, 2.0, 5)
    K = kernels.gp_kernel_matrix(X1, X2, lengthscales=ls, signal_var=2.3, kernel=kernel)
    np.testing.assert_allclose(K, _np_kernel(X1, X2, ls, 2.3, kernel), rtol=1e-10, atol=0)
    Kself = kernels.gp_kernel_matrix(X1, lengthscales=ls, signal_var=2.3, kernel=kernel)
    np.testing.assert_allclose(np.diag(Kself), 2.3, rtol=1e-14)


@pytest.mark.parametrize("kernel", ["matern52", "rbf"])
def test_kernel_gradient_vs_finite_differences(kernel):
    X, _ = _data(12, 3)
    th = _theta(3)
    kind = 0 if kernel == "matern52" else 1
    K, dK = _gp.kernel_gradient(X, th, kind)
    for j in range(len(th)):
        e = np.zeros_like(th)
        e[j] = 1e-6
        fd = (_gp.kernel_gradient(X, th + e, kind)[0] - _gp.kernel_gradient(X, th - e, kind)[0]) / 2e-6
        np.testing.assert_allclose(dK[j], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kernel", ["matern52", "rbf"])
@pytest.mark.parametrize("prior", [False, True])
def test_lml_gradient_vs_finite_differences(kernel, prior):
    X, y = _data(30, 4)
    th = _theta(4)
    v, g = kernels.gp_log_marginal_likelihood(X, y, th, kernel=kernel, prior=prior)
    fd = np.empty_like(th)
    for j in range(len(th)):
        e = np.zeros_like(th)
        e[j] = 1e-5
        fd[j] = (kernels.gp_log_marginal_likelihood(X, y, th + e, kernel=kernel, prior=prior)[0]
                 - kernels.gp_log_marginal_likelihood(X, y, th - e, kernel=kernel, prior=prior)[0]) / 2e-5
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())


def test_log_prior_gradient():
    th = _theta(3)
    v, g = gp_log_prior(th, 3)
    fd = [(gp_log_prior(th + e, 3)[0] - gp_log_prior(th - e, 3)[0]) / 2e-6 for e in 1e-6 * np.eye(5)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def _sk(kernel, ls, s, noise):
    base = (Matern(ls, nu=2.5, length_scale_bounds="fixed") if kernel == "matern52"
            else RBF(ls, length_scale_bounds="fixed"))
    return GaussianProcessRegressor(ConstantKernel(s, "fixed") * base, alpha=noise, optimizer=None)


@pytest.mark.parametrize("kernel", ["matern52", "rbf"])
def test_lml_and_prediction_match_sklearn(kernel):
    X, y = _data(40, 3)
    th = _theta(3)
    th[-1] = np.log(1e-2)
    ls, s, noise = np.exp(th[:3]), np.exp(th[3]), np.exp(th[4])
    sk = _sk(kernel, ls, s, noise).fit(X, y)
    v, _ = kernels.gp_log_marginal_likelihood(X, y, th, kernel=kernel)
    np.testing.assert_allclose(v, sk.log_marginal_likelihood_value_, rtol=1e-10)
    model = kernels.gp_fit(X, y, kernel=kernel, theta0=th, optimize=False)
    assert model.jitter == 0.0
    np.testing.assert_allclose(model.log_marginal_likelihood, sk.log_marginal_likelihood_value_,
                               rtol=1e-10)
    Xq = np.random.default_rng(5).random((50, 3))
    mu, var = kernels.gp_predict(model, Xq)
    mu_sk, sd_sk = sk.predict(Xq, return_std=True)
    np.testing.assert_allclose(mu, mu_sk, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var, sd_sk ** 2, rtol=1e-7, atol=1e-10)
    _, var_n = kernels.gp_predict(model, Xq, include_noise=True)
    np.testing.assert_allclose(var_n - var, noise)


@pytest.mark.parametrize("kernel", ["matern52", "rbf"])
def test_prediction_gradients_vs_finite_differences(kernel):
    X, y = _data(30, 3)
    model = kernels.gp_fit(X, y, kernel=kernel, theta0=_theta(3), optimize=False)
    Xq = np.random.default_rng(2).random((8, 3))
    mu, var, dmu, dvar = kernels.gp_predict(model, Xq, return_grad=True)
    h = 1e-6
    for q in range(3):
        e = np.zeros(3)
        e[q] = h
        mp, vp = kernels.gp_predict(model, Xq + e)
        mm, vm = kernels.gp_predict(model, Xq - e)
        np.testing.assert_allclose(dmu[:, q], (mp - mm) / (2 * h), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(dvar[:, q], (vp - vm) / (2 * h), rtol=1e-5, atol=1e-7)


def _np_lml_grad(X, y, th, kernel, jitter=0.0):
    """Dense reference: LML and 0.5 tr((a a^T - K^-1) dK/dtheta) with K built by NumPy."""
    d = X.shape[1]
    ls, s, noise = np.exp(th[:d]), np.exp(th[d]), np.exp(th[d + 1])
    Kf = _np_kernel(X, X, ls, s, kernel)
    K = Kf + (noise + jitter) * np.eye(len(X))
    Ki = np.linalg.inv(K)
    a = Ki @ y
    W = np.outer(a, a) - Ki
    lml = -0.5 * y @ a - 0.5 * np.linalg.slogdet(K)[1] - 0.5 * len(X) * np.log(2 * np.pi)
    D2 = (X[:, None, :] - X[None, :, :]) ** 2 / ls ** 2          # (n, n, d)
    r = np.sqrt(D2.sum(-1))
    if kernel == "rbf":
        dk_dr2 = -0.5 * Kf
    else:
        dk_dr2 = -(5.0 / 6.0) * s * (1 + np.sqrt(5) * r) * np.exp(-np.sqrt(5) * r)
    g = np.empty(d + 2)
    for q in range(d):
        g[q] = 0.5 * np.sum(W * dk_dr2 * (-2.0 * D2[:, :, q]))
    g[d] = 0.5 * np.sum(W * Kf)
    g[d + 1] = 0.5 * noise * np.trace(W)
    return lml, g


@pytest.mark.parametrize("kernel", ["matern52", "rbf"])
@pytest.mark.parametrize("case", ["plain", "wide", "jitter"])
def test_fused_lml_gradient_matches_dense_numpy(kernel, case):
    # n = 61 (not a multiple of the 4-way unrolled pass); "wide": lengthscales from 1e-3
    # to 10, so kernel values underflow to 0 for most pairs; "jitter": duplicated rows and
    # noise 1e-300, so the factorization needs jitter and the fill is redone.
    rng = np.random.default_rng(3)
    X = rng.random((61, 4))
    y = rng.standard_normal(61)
    th = np.r_[np.log([0.3, 0.7, 0.2, 1.5]), np.log(1.3), np.log(1e-2)]
    if case == "wide":
        th[:4] = np.log([1e-3, 0.05, 1.0, 10.0])
    if case == "jitter":
        X[40:] = X[:21]
        th[-1] = np.log(1e-300)
    kind = 0 if kernel == "matern52" else 1
    v, g, jit = _gp.lml_grad(X, y, th, kind, 1)
    assert (jit > 0) == (case == "jitter")
    if case == "jitter":
        # K + jitter I is too ill-conditioned for a dense NumPy inverse to be a reference;
        # the refilled path must agree with the first-fill path at noise = 1e-300 + jitter
        # (the same matrix up to rounding of the diagonal).
        th2 = th.copy()
        th2[-1] = np.log(np.exp(th[-1]) + jit)
        v2, g2, jit2 = _gp.lml_grad(X, y, th2, kind, 1)
        assert jit2 == 0.0
        np.testing.assert_allclose(v, v2, rtol=1e-9)
        np.testing.assert_allclose(g[:-1], g2[:-1], rtol=1e-4, atol=1e-4 * np.abs(g2).max())
        assert abs(g[-1]) < 1e-250
        return
    v_ref, g_ref = _np_lml_grad(X, y, th, kernel)
    np.testing.assert_allclose(v, v_ref, rtol=1e-10)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9 * np.abs(g_ref).max())
    L, alpha, jit2, lml2 = _gp.factorize(X, y, th, kind, 1)
    assert jit2 == jit and np.isclose(lml2, v, rtol=1e-12)
    assert np.all(np.triu(L, 1) == 0)
    np.testing.assert_allclose(L @ L.T, _np_kernel(X, X, np.exp(th[:4]), 1.3, kernel)
                               + (np.exp(th[-1]) + jit) * np.eye(61), rtol=0, atol=1e-12)


def test_kernel_matrix_matches_numpy_from_zero_to_underflow():
    # The kernels' vectorized exp against libm's over r^2 from 0 to far past underflow.
    rng = np.random.default_rng(4)
    X1 = rng.random((30, 1)) * 60.0
    X2 = np.r_[X1[:5], rng.random((45, 1)) * 60.0]
    for kernel in ("matern52", "rbf"):
        for ls in (1e-3, 0.05, 0.7, 40.0):
            K = kernels.gp_kernel_matrix(X1, X2, lengthscales=[ls], kernel=kernel)
            ref = _np_kernel(X1, X2, np.array([ls]), 1.0, kernel)
            # relative error ~ |exp argument| * eps from r^2's rounding alone (up to ~1400)
            np.testing.assert_allclose(K, ref, rtol=1e-11, atol=1e-300)
            assert np.all((K == 0) == (ref == 0))


def test_cholesky_recovers_on_duplicates_and_constant_columns():
    rng = np.random.default_rng(0)
    X = rng.random((20, 3))
    X = np.vstack([X, X[:5]])            # exact duplicates
    X[:, 2] = 0.5                        # a constant column
    y = rng.standard_normal(len(X))
    th = np.r_[np.log([0.5, 0.5, 0.5]), 0.0, np.log(1e-300)]   # no noise: K is singular
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(kernels.gp_kernel_matrix(X, lengthscales=np.full(3, 0.5)))
    model = kernels.gp_fit(X, y, theta0=th, optimize=False)
    assert model.jitter > 0
    assert np.isfinite(model.alpha).all()
    np.testing.assert_allclose(model.L @ model.L.T,
                               kernels.gp_kernel_matrix(X, lengthscales=np.full(3, 0.5))
                               + model.jitter * np.eye(len(X)), atol=1e-10)
    v, g = kernels.gp_log_marginal_likelihood(X, y, th)
    assert np.isfinite(v) and np.isfinite(g).all()
    fitted = kernels.gp_fit(X, y)            # the optimizer copes as well
    assert np.isfinite(fitted.log_marginal_likelihood)


def test_fit_improves_posterior_and_recovers_lengthscales():
    rng = np.random.default_rng(3)
    X = rng.random((80, 2))
    y = np.sin(6 * X[:, 0])                  # second column irrelevant
    y = (y - y.mean()) / y.std()
    model = kernels.gp_fit(X, y, n_restarts=3, seed=1)
    th0 = np.r_[0.0, 0.0, 0.0, np.log(1e-2)]
    start = kernels.gp_log_marginal_likelihood(X, y, th0, prior=True)[0]
    end = kernels.gp_log_marginal_likelihood(X, y, model.theta, prior=True)[0]
    assert end > start
    assert model.lengthscales[1] > 3 * model.lengthscales[0]
    Xq = rng.random((200, 2))
    mu, _ = kernels.gp_predict(model, Xq)
    truth = (np.sin(6 * Xq[:, 0]) - np.sin(6 * X[:, 0]).mean()) / np.sin(6 * X[:, 0]).std()
    assert np.abs(mu - truth).max() < 0.05
    # warm start from the fit stays at (or improves) the optimum
    again = kernels.gp_fit(X, y, theta0=model.theta, n_restarts=0)
    assert kernels.gp_log_marginal_likelihood(X, y, again.theta, prior=True)[0] >= end - 1e-6


def test_same_results_for_one_and_two_threads():
    X, y = _data(200, 5)
    th = _theta(5)
    v1, g1, _ = _gp.lml_grad(X, y, th, 0, 1)
    v2, g2, _ = _gp.lml_grad(X, y, th, 0, 2)
    assert v1 == v2 and np.array_equal(g1, g2)
    m1 = kernels.gp_fit(X, y, n_restarts=2, n_threads=1)
    m2 = kernels.gp_fit(X, y, n_restarts=2, n_threads=2)
    assert np.array_equal(m1.theta, m2.theta)
    Xq = np.random.default_rng(0).random((100, 5))
    a = kernels.gp_predict(m1, Xq, return_grad=True, n_threads=1)
    b = kernels.gp_predict(m1, Xq, return_grad=True, n_threads=2)
    for u, w in zip(a, b):
        assert np.array_equal(u, w)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9])
@pytest.mark.parametrize("nt", [1, 2, 3])
def test_every_row_is_filled_for_any_n_and_thread_count(n, nt):
    # The fill deals rows k and n - 1 - k to one iteration: odd n has a middle row of its
    # own, and more threads than rows (or than row pairs) leave some threads idle.
    rng = np.random.default_rng(n)
    X, y = rng.random((n, 2)), rng.standard_normal(n)
    th = _theta(2)
    ls = np.exp(th[:2])
    K = _np_kernel(X, X, ls, 1.7, "matern52") + 1e-3 * np.eye(n)
    L, alpha, jit, lml = _gp.factorize(X, y, th, 0, nt)
    assert jit == 0.0
    np.testing.assert_allclose(L @ L.T, K, rtol=0, atol=1e-12)
    np.testing.assert_allclose(alpha, np.linalg.solve(K, y), rtol=1e-8, atol=1e-10)
    v, g, _ = _gp.lml_grad(X, y, th, 0, nt)
    v_ref, g_ref = _np_lml_grad(X, y, th, "matern52")
    np.testing.assert_allclose(v, v_ref, rtol=1e-10)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9 * np.abs(g_ref).max())
    Xq = np.random.default_rng(n).random((n, 2))
    np.testing.assert_allclose(
        kernels.gp_kernel_matrix(Xq, X, lengthscales=ls, signal_var=1.7, n_threads=nt + 2),
        _np_kernel(Xq, X, ls, 1.7, "matern52"), rtol=1e-10, atol=0)


def test_bad_inputs_name_the_argument():
    X, y = _data(10, 2)
    with pytest.raises(ValueError, match="X must be 2-D"):
        kernels.gp_fit(X[:, 0], y)
    with pytest.raises(ValueError, match="y must have length 10"):
        kernels.gp_fit(X, y[:5])
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        kernels.gp_fit(Xn, y)
    with pytest.raises(TypeError, match="X must be a real numeric"):
        kernels.gp_fit(np.array([["a", "b"]]), y)
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernels.gp_fit(X, y, kernel="cubic")
    with pytest.raises(ValueError, match="theta must have length 4"):
        kernels.gp_log_marginal_likelihood(X, y, np.zeros(3))
    with pytest.raises(ValueError, match="theta0 is required"):
        kernels.gp_fit(X, y, optimize=False)
    with pytest.raises(ValueError, match="lengthscales must be > 0"):
        kernels.gp_kernel_matrix(X, lengthscales=np.array([1.0, -1.0]))
    model = kernels.gp_fit(X, y, n_restarts=1)
    with pytest.raises(ValueError, match="Xq must have 2 columns"):
        kernels.gp_predict(model, np.zeros((3, 3)))
    with pytest.raises(TypeError, match="model must be a GPModel"):
        kernels.gp_predict("model", np.zeros((3, 2)))


def test_batched_posterior_equals_the_per_point_one():
    # posterior_block (panels of 4 points sharing each row of L, dtrsv for a remainder
    # of 1-2) against posterior_point (one dtrsv pair per point), every block size around the panel boundaries, both kernels, with
    # and without gradients, 1 and 2 threads (which must agree bit for bit)
    rng = np.random.default_rng(7)
    for kind in (0, 1):
        for n, d in ((1, 2), (37, 3), (150, 6)):
            X = rng.random((n, d))
            y = np.sin(3 * X.sum(1))
            theta = np.r_[np.full(d, np.log(0.4)), 0.0, np.log(1e-4)]
            L, alpha, _, _ = _gp.factorize(X, y, theta, kind, 1)
            inv_l2 = np.exp(-2 * theta[:d])
            for m in (1, 2, 3, 4, 5, 7, 8, 13):
                Xq = rng.random((m, d))
                Xq[0] = X[0]                      # a training point: variance at the clamp
                ref = _gp.predict(X, L, alpha, inv_l2, 1.0, kind, Xq, True, 1)
                got = _gp.predict_block(X, L, alpha, inv_l2, 1.0, kind, Xq, True, 1)
                two = _gp.predict_block(X, L, alpha, inv_l2, 1.0, kind, Xq, True, 2)
                val = _gp.predict_block(X, L, alpha, inv_l2, 1.0, kind, Xq, False, 1)
                np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(got[1], ref[1], rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(got[2], ref[2], rtol=1e-9, atol=1e-10)
                np.testing.assert_allclose(got[3], ref[3], rtol=1e-8, atol=1e-10)
                for a, b in zip(got, two):
                    assert np.array_equal(a, b)
                assert np.array_equal(val[0], got[0]) and np.array_equal(val[1], got[1])


def test_block_solves_give_every_point_the_panel_arithmetic():
    # the posterior's block solves (forward: panels; backward: hp_bwd_rows point by point,
    # four rows of L at a time) give each point the bits it gets as a lane of a panel
    # (hp_fwd_panels / hp_bwd_panels), whatever the block size and threads: forward in
    # its groups of 4 (a remainder of 3 padded), backward every point; a forward
    # remainder of 1-2 (dtrsv) and the panels agree with scipy's triangular solves
    from scipy.linalg import solve_triangular

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 5, 8, 37, 130):
        A = rng.standard_normal((n, n))
        K = A @ A.T / n + np.eye(n)
        L = np.ascontiguousarray(np.linalg.cholesky(K))
        B = rng.standard_normal((13, n))
        for fwd in (True, False):
            ref = _gp._solve_rows(L, B, fwd, True)
            exact = solve_triangular(L, B.T, lower=True, trans=0 if fwd else 1).T
            np.testing.assert_allclose(ref, exact, rtol=1e-10, atol=1e-12)
            for m in range(1, 14):
                grouped = 4 * (m // 4) + (3 if m % 4 == 3 else 0) if fwd else m
                got = _gp._solve_rows(L, B[:m], fwd, False, 1)
                assert np.array_equal(got[:grouped], ref[:grouped]), (n, fwd, m)
                np.testing.assert_allclose(got, exact[:m], rtol=1e-10, atol=1e-12)
                assert np.array_equal(_gp._solve_rows(L, B[:m], fwd, False, 2), got)
