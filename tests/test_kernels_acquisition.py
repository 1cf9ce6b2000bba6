import numpy as np
import pytest
from scipy.stats import norm

from hpcore import kernels
from hpcore.kernels._acquisition import log_h


def _model(n=30, d=2, seed=0, f=None):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = np.sin(5 * X).sum(1) if f is None else f(X)
    y = (y - y.mean()) / y.std()
    return kernels.gp_fit(X, y, n_restarts=1, seed=seed)


def test_log_h_matches_high_precision():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    zs = np.array([-1e8, -1e4, -200.0, -40.0, -37.0, -36.9, -20.0, -5.0, -1.0, -0.5, 0.0, 0.7, 3.0, 8.0])
    val, dval = log_h(zs)
    for z, v, dv in zip(zs, val, dval):
        zm = mpmath.mpf(z)
        h = mpmath.npdf(zm) + zm * mpmath.ncdf(zm)
        assert v == pytest.approx(float(mpmath.log(h)), rel=1e-12)
        assert dv == pytest.approx(float(mpmath.ncdf(zm) / h), rel=1e-10)


def test_log_h_is_finite_and_monotone_where_ei_underflows():
    z = -np.logspace(0, 12, 2000)[::-1]      # increasing, down to -1e12
    v, dv = log_h(z)
    assert np.isfinite(v).all() and np.isfinite(dv).all()
    assert (np.diff(v) > 0).all()
    naive = norm.pdf(z) + z * norm.cdf(z)
    assert (naive[z < -40] == 0).all()        # plain EI underflows there


def test_logei_finite_where_ei_is_zero():
    m = _model()
    Xq = np.random.default_rng(1).random((50, 2))
    for fb in (-50.0, -1e3, -1e6):
        ei = kernels.acquisition(m, Xq, kind="ei", f_best=fb)
        le = kernels.acquisition(m, Xq, kind="logei", f_best=fb)
        assert np.isfinite(le).all()
        if fb <= -1e3:
            assert (ei == 0).all()
    # monotone in the incumbent
    a = np.array([kernels.acquisition(m, Xq[:5], kind="logei", f_best=fb)
                  for fb in np.linspace(-1e4, 1.0, 300)])
    assert (np.diff(a, axis=0) > 0).all()
    # where EI does not underflow, logEI == log(EI)
    ei = kernels.acquisition(m, Xq, kind="ei", f_best=0.0)
    le = kernels.acquisition(m, Xq, kind="logei", f_best=0.0)
    ok = ei > 1e-250
    assert ok.sum() >= 10 and (~ok).any()     # both regimes are exercised
    np.testing.assert_allclose(le[ok], np.log(ei[ok]), rtol=1e-10)
    assert np.isfinite(le).all()


def test_batched_values_match_per_point_values():
    from hpcore._kernels import acquisition as _acq

    m = _model(50, 3)
    Xq = np.random.default_rng(4).random((300, 3))
    for kind in range(4):
        args = (m.X, m.L, m.alpha, m.inv_l2, m.signal_var, m.kind, kind, -0.5, 2.0, Xq)
        per_point = _acq.acquisition_values(*args, False, 1)
        batched = _acq.acquisition_batch(*args, 1)
        # deep in EI's / PI's tail (z ~ -30, values ~ 1e-200) a rounding-level change of
        # the posterior variance (the two paths sum in different orders, and BLAS picks
        # its kernels by CPU) moves the value by ~z^2 times as much: 1.6e-9 relative at
        # 4e-212 on one machine; the body must agree to 1e-9
        body = np.abs(per_point) > 1e-100
        np.testing.assert_allclose(batched[body], per_point[body], rtol=1e-9)
        np.testing.assert_allclose(batched[~body], per_point[~body], rtol=1e-6, atol=1e-300)


def test_acquisitions_match_closed_forms():
    m = _model()
    Xq = np.random.default_rng(1).random((40, 2))
    mu, var = kernels.gp_predict(m, Xq)
    sd = np.sqrt(var)
    fb = -0.3
    z = (fb - mu) / sd
    # EI far in the tail (z ~ -16, EI ~ 1e-57) magnifies the last-bit differences between
    # the batch path (one triangular solve for all points) and gp_predict's by ~z^2
    np.testing.assert_allclose(kernels.acquisition(m, Xq, kind="ei", f_best=fb),
                               sd * (norm.pdf(z) + z * norm.cdf(z)), rtol=1e-8, atol=1e-300)
    np.testing.assert_allclose(kernels.acquisition(m, Xq, kind="pi", f_best=fb), norm.cdf(z),
                               rtol=1e-8, atol=1e-30)
    np.testing.assert_allclose(kernels.acquisition(m, Xq, kind="ucb", beta=4.0), -mu + 2 * sd,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["logei", "ei", "ucb", "pi"])
@pytest.mark.parametrize("f_best", [None, -3.0])
def test_acquisition_gradients_vs_finite_differences(kind, f_best):
    m = _model(40, 3)
    Xq = np.random.default_rng(3).random((10, 3))
    v, g = kernels.acquisition(m, Xq, kind=kind, f_best=f_best, beta=3.0, return_grad=True)
    h = 1e-6
    for q in range(3):
        e = np.zeros(3)
        e[q] = h
        fd = (kernels.acquisition(m, Xq + e, kind=kind, f_best=f_best, beta=3.0)
              - kernels.acquisition(m, Xq - e, kind=kind, f_best=f_best, beta=3.0)) / (2 * h)
        np.testing.assert_allclose(g[:, q], fd, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(fd).max()))


def _branin(X):
    x1, x2 = 15 * X[:, 0] - 5, 15 * X[:, 1]
    return ((x2 - 5.1 / (4 * np.pi ** 2) * x1 ** 2 + 5 / np.pi * x1 - 6) ** 2
            + 10 * (1 - 1 / (8 * np.pi)) * np.cos(x1) + 10)


def test_maximizer_beats_a_dense_grid_in_2d():
    m = _model(25, 2, f=_branin)
    g = np.stack(np.meshgrid(np.linspace(0, 1, 401), np.linspace(0, 1, 401)), -1).reshape(-1, 2)
    for kind in ("logei", "ucb", "pi"):
        best_grid = kernels.acquisition(m, g, kind=kind).max()
        x, v = kernels.maximize_acquisition(m, kind=kind, seed=0)
        assert v >= best_grid - 1e-9
        assert v == pytest.approx(kernels.acquisition(m, x[None], kind=kind)[0], rel=1e-9)


@pytest.mark.parametrize("d", [2, 4, 6])
def test_maximizer_finds_the_minimum_of_a_smooth_function(d):
    # UCB with beta=0 is -mean: the maximizer must land on the minimum of the posterior
    # mean of a well-sampled quadratic, i.e. on the quadratic's known minimizer.
    rng = np.random.default_rng(d)
    c = rng.uniform(0.25, 0.75, d)
    X = rng.random((30 * d, d))
    y = ((X - c) ** 2).sum(1)
    model = kernels.gp_fit(X, (y - y.mean()) / y.std(), kernel="rbf", n_restarts=1)
    x, v = kernels.maximize_acquisition(model, kind="ucb", beta=0.0, seed=1)
    assert np.abs(x - c).max() < 0.03
    rand = rng.random((20000, d))
    assert v >= kernels.acquisition(model, rand, kind="ucb", beta=0.0).max()


@pytest.mark.parametrize("d", [3, 6])
def test_maximizer_beats_random_search_on_hartmann_like_logei(d):
    rng = np.random.default_rng(0)
    X = rng.random((20 * d, d))
    y = -np.exp(-((X - 0.3) ** 2).sum(1) * 4) - 0.7 * np.exp(-((X - 0.8) ** 2).sum(1) * 8)
    model = kernels.gp_fit(X, (y - y.mean()) / y.std(), n_restarts=1)
    x, v = kernels.maximize_acquisition(model, seed=3, x_best=X[np.argsort(y)[:3]])
    rand = rng.random((50000, d))
    assert v >= kernels.acquisition(model, rand).max() - 1e-9


def test_mixed_columns_are_rounded_and_locally_searched():
    rng = np.random.default_rng(0)
    d = 5   # col 0 continuous, col 1 ordinal with 5 levels, cols 2..4 a categorical block
    levels = (np.arange(5) + 0.5) / 5
    X = rng.random((30, d))
    X[:, 1] = levels[rng.integers(0, 5, 30)]
    X[:, 2:] = np.eye(3)[rng.integers(0, 3, 30)]
    y = (X[:, 0] - 0.3) ** 2 + (X[:, 1] - 0.7) ** 2 + X[:, 2:] @ np.array([0.5, 0.0, 1.0])
    m = kernels.gp_fit(X, (y - y.mean()) / y.std(), n_restarts=1)
    xs, vals = kernels.maximize_acquisition(m, kind="ucb", beta=0.0, discrete={1: levels},
                                            categorical=[(2, 5)], return_all=True, seed=0)
    assert (np.diff(vals[np.isfinite(vals)]) <= 0).all()
    for x in xs:
        assert np.isin(x[1], levels)
        assert sorted(x[2:]) == [0.0, 0.0, 1.0]
    best = xs[0]
    assert best[3] == 1.0 and best[1] == levels[3]
    # exhaustive check over the discrete part with a fine grid on the continuous column
    grid = np.array([[u, l, *np.eye(3)[c]] for u in np.linspace(0, 1, 201) for l in levels
                     for c in range(3)])
    assert vals[0] >= kernels.acquisition(m, grid, kind="ucb", beta=0.0).max() - 1e-9


def test_never_proposes_an_excluded_point():
    rng = np.random.default_rng(0)
    levels = (np.arange(3) + 0.5) / 3
    X = np.array([[a, b] for a in levels for b in levels])[:8]   # all but one of 9 configs
    y = rng.standard_normal(len(X))
    m = kernels.gp_fit(X, y, n_restarts=1)
    x, _ = kernels.maximize_acquisition(m, discrete={0: levels, 1: levels}, exclude=X, seed=0)
    np.testing.assert_allclose(x, [levels[2], levels[2]])
    with pytest.raises(ValueError, match="every candidate is excluded"):
        full = np.array([[a, b] for a in levels for b in levels])
        kernels.maximize_acquisition(m, discrete={0: levels, 1: levels}, exclude=full, seed=0)


def test_same_result_for_one_and_two_threads():
    m = _model(60, 4)
    a = kernels.maximize_acquisition(m, seed=5, n_starts=12, return_all=True, n_threads=1)
    b = kernels.maximize_acquisition(m, seed=5, n_starts=12, return_all=True, n_threads=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    Xq = np.random.default_rng(0).random((64, 4))
    for kind in ("logei", "ei", "ucb", "pi"):
        u = kernels.acquisition(m, Xq, kind=kind, return_grad=True, n_threads=1)
        w = kernels.acquisition(m, Xq, kind=kind, return_grad=True, n_threads=2)
        assert np.array_equal(u[0], w[0]) and np.array_equal(u[1], w[1])


def test_bad_inputs_name_the_argument():
    m = _model()
    with pytest.raises(ValueError, match="acquisition must be one of"):
        kernels.acquisition(m, np.zeros((1, 2)), kind="kg")
    with pytest.raises(ValueError, match="Xq must have 2 columns"):
        kernels.acquisition(m, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="f_best must be a finite"):
        kernels.acquisition(m, np.zeros((1, 2)), f_best=np.nan)
    with pytest.raises(ValueError, match="beta must be"):
        kernels.acquisition(m, np.zeros((1, 2)), kind="ucb", beta=-1.0)
    with pytest.raises(ValueError, match="bounds must be"):
        kernels.maximize_acquisition(m, bounds=np.array([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="discrete: column index 7"):
        kernels.maximize_acquisition(m, discrete={7: [0.5]})
    with pytest.raises(ValueError, match="categorical: block"):
        kernels.maximize_acquisition(m, categorical=[(1, 4)])
    with pytest.raises(ValueError, match="n_starts must be"):
        kernels.maximize_acquisition(m, n_starts=-1)
    with pytest.raises(ValueError, match="exclude must have 2 columns"):
        kernels.maximize_acquisition(m, exclude=np.zeros((2, 3)))
    with pytest.raises(TypeError, match="model must be a GPModel"):
        kernels.acquisition(None, np.zeros((1, 2)))


@pytest.mark.parametrize("mixed", [False, True])
def test_lockstep_maximizer_follows_the_per_point_one(mixed):
    # the starts run in lockstep (one batched posterior per step) but each follows the
    # per-point maximizer's steps: same local maxima up to rounding
    from hpcore._kernels import acquisition as _acq
    from hpcore.kernels._acquisition import _Columns

    rng = np.random.default_rng(11)
    d = 5
    m = _model(80, d)
    disc = {1: np.linspace(0, 1, 6)} if mixed else None
    cat = [(2, 5)] if mixed else None
    cols = _Columns(d, None, disc, cat)
    x0 = np.ascontiguousarray(cols.snap(rng.random((9, d))))
    for kind in range(4):
        args = (m.X, m.L, m.alpha, m.inv_l2, m.signal_var, m.kind, kind, float(m.y.min()),
                2.0, x0, cols.lower, cols.upper, cols.ctype, cols.lvl_off, cols.levels,
                cols.gstart, cols.gstop, 100, 5)
        xa, va = _acq.maximize(*args, 1)
        xb, vb = _acq.maximize_per_point(*args, 1)
        np.testing.assert_allclose(va, vb, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(xa, xb, atol=1e-5)
        xc, vc = _acq.maximize(*args, 2)
        assert np.array_equal(xa, xc) and np.array_equal(va, vc)


def _top_args(m, Xq, kind, f_best=None, beta=2.0):
    f = float(m.y.min()) if f_best is None else f_best
    return (m.X, m.L, m.alpha, m.inv_l2, m.signal_var, m.kind, kind, f, beta,
            np.ascontiguousarray(Xq))


@pytest.mark.parametrize("kind", range(4))
def test_screened_raw_scoring_picks_the_same_points(kind):
    # acquisition_top solves only the rows whose bound (exact mean, variance given the
    # nearest observations) can reach the k-th value: the same rows and values as
    # solving all of them, and the same order as the dense acquisition_batch
    from hpcore._kernels import acquisition as _acq

    rng = np.random.default_rng(kind)
    n_solved = []
    for n, d, seed in ((40, 2, 0), (150, 5, 1), (400, 10, 2)):
        m = _model(n, d, seed=seed, f=lambda X: np.sin(7 * X).sum(1) + 0.1 * X[:, 0])
        Xq = rng.random((300, d))
        Xq[:20] = m.X[:20]                     # at observations (variance ~ noise)
        Xq[20:40] = Xq[40:60]                  # exact ties: broken by row index
        for f_best, k in ((None, 6), (None, 1), (float(m.y.min()) - 3.0, 12),
                          (float(m.y.max()), 6), (None, 300), (None, 0)):
            args = _top_args(m, Xq, kind, f_best)
            ia, va, na = _acq.acquisition_top(*args, k, True, 1)
            ib, vb, nb = _acq.acquisition_top(*args, k, False, 1)
            assert nb == (len(Xq) if k else 0) and na <= nb and len(ia) == k
            assert np.array_equal(ia, ib) and np.array_equal(va, vb)
            rv = _acq.acquisition_batch(*args, 1)
            # the dense path's solve rounds differently; where the variance is a tiny
            # difference (rows at observations) its relative rounding is large
            np.testing.assert_allclose(va, rv[ia], rtol=1e-6, atol=1e-12)
            if k <= 12:
                assert np.array_equal(ia, np.argsort(-rv, kind="stable")[:k])
            ic, vc, nc = _acq.acquisition_top(*args, k, True, 2)
            assert np.array_equal(ia, ic) and np.array_equal(va, vc) and nc == na
            if f_best is None and k == 6:
                n_solved.append(na)
    # the screening does prune (here solving a fraction of the 300 rows)
    assert max(n_solved) < 150


def test_screened_starts_give_the_same_maximizer_result(monkeypatch):
    import hpcore.kernels._acquisition as ka

    m = _model(120, 4, seed=3)
    disc = {1: np.linspace(0, 1, 5)}
    out = {}
    for screen in (True, False):
        monkeypatch.setattr(ka, "_SCREEN", screen)
        out[screen] = [kernels.maximize_acquisition(m, kind=kind, seed=4, n_starts=10,
                                                    x_best=m.X[:3], discrete=disc,
                                                    return_all=True)
                       for kind in ("logei", "ei", "ucb", "pi")]
    for a, b in zip(out[True], out[False]):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_acquisition_top_rejects_bad_arguments():
    from hpcore._kernels import acquisition as _acq

    m = _model()
    with pytest.raises(ValueError, match="k must be >= 0"):
        _acq.acquisition_top(*_top_args(m, np.zeros((3, 2)), 0), -1)
    with pytest.raises(ValueError, match="Xq must have 2 columns"):
        _acq.acquisition_top(*_top_args(m, np.zeros((3, 3)), 0), 2)


def test_screening_that_cannot_prune_solves_in_bulk_with_the_same_result():
    # candidates in a small box among many observations (a trust region): the finer
    # bound cannot rule the rows out, acquisition_top drops it for most rows (the bulk
    # path) and still returns exactly the unscreened rows and values, for any threads
    from hpcore._kernels import acquisition as _acq

    rng = np.random.default_rng(5)
    d = 6
    m = _model(500, d, seed=6, f=lambda X: ((X - 0.5) ** 2).sum(1))
    c = m.X[int(np.argmin(m.y))]
    Xq = np.clip(c + 0.02 * (rng.random((400, d)) - 0.5), 0, 1)
    _acq._screen_bulk_calls(reset=True)
    for kind in range(4):
        for k in (1, 6, 40):
            args = _top_args(m, Xq, kind)
            ia, va, na = _acq.acquisition_top(*args, k, True, 1)
            ib, vb, _ = _acq.acquisition_top(*args, k, False, 1)
            assert np.array_equal(ia, ib) and np.array_equal(va, vb)
            ic, vc, nc = _acq.acquisition_top(*args, k, True, 2)
            assert np.array_equal(ia, ic) and np.array_equal(va, vc) and nc == na
    assert _acq._screen_bulk_calls(reset=True) > 0


def test_sobol_starts_are_scipys_scrambled_points():
    # _sobol computes scipy's scrambled Sobol' points directly (same draws, same LMS
    # scramble and shift, Gray-code order): bit-identical to building the engine
    import warnings

    import scipy
    from scipy.stats import qmc

    from hpcore.kernels._acquisition import _sobol

    if tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 15):
        pytest.skip("scipy < 1.15's Sobol engine draws from the generator, not a spawn")
    for d in (1, 2, 5, 10, 33):
        for n in (1, 2, 3, 8, 100, 512, 1025):
            for seed in (0, 7, 2 ** 62 + 5, 2 ** 64 + 3):
                gen = np.random.default_rng(np.random.SeedSequence([seed % 2 ** 63, 11]))
                m = max(1, int(np.ceil(np.log2(n))))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ref = qmc.Sobol(d, scramble=True, rng=gen).random_base2(m)[:n]
                got = _sobol(d, n, seed)
                assert got.shape == (n, d) and np.array_equal(got, ref), (d, n, seed)


def test_filter_drops_exactly_the_candidates_near_excluded_rows():
    # _filter finds excluded rows through a sorted first column; it must drop exactly the
    # candidates within 1e-9 (max norm) of some excluded row, as the brute-force test does
    from hpcore.kernels._acquisition import _filter

    rng = np.random.default_rng(0)
    for trial in range(120):
        n, d = int(rng.integers(1, 2000)), int(rng.integers(1, 6))
        ex = rng.random((n, d)) * 10.0 ** rng.integers(-3, 4)
        if trial % 3 == 0:
            ex[:, 0] = np.round(ex[:, 0], 1)       # many equal first columns
        xs = rng.random((15, d)) * 10.0 ** rng.integers(-3, 4)
        k = rng.integers(0, 15, 6)
        xs[k] = ex[rng.integers(0, n, 6)] + rng.choice(
            [0, 1e-9, -1e-9, 0.9e-9, 1.1e-9, 5e-10], (6, d))
        xs[int(rng.integers(0, 15))] = xs[int(rng.integers(0, 15))]   # a repeat
        vals = rng.random(15)
        near = (np.abs(xs[:, None, :] - ex[None]).max(axis=2) <= 1e-9).any(axis=1)
        keep = ~near
        for i in range(1, 15):
            if keep[i] and (np.abs(xs[:i][keep[:i]] - xs[i]).max(axis=1) <= 1e-12).any():
                keep[i] = False
        got_x, got_v = _filter(xs, vals, ex)
        assert np.array_equal(got_x, xs[keep]) and np.array_equal(got_v, vals[keep]), trial
