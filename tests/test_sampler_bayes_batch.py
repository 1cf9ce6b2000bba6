"""Batches: several asks before any tell must give points apart in the unit cube."""
import math

import numpy as np
import pytest

import hpcore as hp
from hpcore.samplers.bayes import BayesSampler

RADIUS = 1e-3


def _sphere_space(d):
    return hp.Space({f"x{i}": hp.Float(-5.0, 5.0) for i in range(d)})


def _sphere(p):
    return sum((v - 1.0) ** 2 for v in p.values())


def _min_pairwise_distance(space, trials):
    U = np.array([np.nan_to_num(space.encode(t.params), nan=0.5) for t in trials])
    D = np.sqrt(((U[:, None, :] - U[None, :, :]) ** 2).sum(axis=2))
    return float(D[np.triu_indices(len(U), 1)].min())


def _batched_run(sampler, space, objective, n_rounds, batch):
    st = hp.Study(space, sampler=sampler)
    worst = math.inf
    for _ in range(n_rounds):
        trials = [st.ask() for _ in range(batch)]
        worst = min(worst, _min_pairwise_distance(space, trials))
        for t in trials:
            st.tell(t, objective(t.params))
    return worst


@pytest.mark.parametrize("pending", ["believer", "liar_min", "liar_mean", "liar_max"])
def test_batch_of_eight_has_no_near_duplicates(pending):
    # a smooth unimodal function: every fantasy-free maximizer run lands on the same
    # optimum, so only the handling of pending trials keeps the batch apart
    space = _sphere_space(4)
    s = BayesSampler(seed=0, n_startup_trials=8, pending=pending)
    worst = _batched_run(s, space, _sphere, n_rounds=4, batch=8)
    assert worst > RADIUS, worst


def test_batch_on_mixed_space_has_no_near_duplicates():
    space = hp.Space({"x": hp.Float(-2, 2), "lr": hp.Float(1e-4, 1, log=True),
                      "k": hp.Int(1, 6), "opt": hp.Categorical(["a", "b", "c"])})

    def f(p):
        return ((p["x"] - 0.5) ** 2 + (math.log10(p["lr"]) + 2) ** 2
                + 0.1 * abs(p["k"] - 4) + {"a": 0.0, "b": 0.3, "c": 0.6}[p["opt"]])

    worst = _batched_run(BayesSampler(seed=1, n_startup_trials=6), space, f, 3, 8)
    assert worst > RADIUS, worst


def test_pending_radius_validation():
    with pytest.raises(ValueError, match="pending_radius"):
        BayesSampler(pending_radius=-1.0)
    with pytest.raises(ValueError, match="pending_radius"):
        BayesSampler(pending_radius=float("nan"))


def test_nearly_exhausted_finite_space_still_answers():
    # 6 configurations, batch of 8: the sampler must still return valid configurations
    space = hp.Space({"a": hp.Int(0, 2), "b": hp.Categorical(["u", "v"])})
    st = hp.Study(space, sampler=BayesSampler(seed=0, n_startup_trials=2))
    for _ in range(3):
        t = st.ask()
        st.tell(t, t.params["a"] + (t.params["b"] == "v"))
    trials = [st.ask() for _ in range(8)]
    for t in trials:
        space.validate(t.params)


def test_appended_factor_matches_a_fresh_factorization():
    from hpcore.kernels._gp import gp_fit, gp_predict
    from hpcore.samplers.bayes import _append_rows

    rng = np.random.default_rng(0)
    X = rng.random((60, 3))
    y = np.sin(3 * X).sum(axis=1)
    theta = np.r_[np.log([0.4, 0.6, 0.8]), 0.0, np.log(1e-3)]
    base = gp_fit(X[:40], y[:40], theta0=theta, optimize=False)
    grown = _append_rows(base, X[40:], y, np.full(20, base.noise_var + base.jitter), 1)
    fresh = gp_fit(X, y, theta0=theta, optimize=False)
    Xq = rng.random((25, 3))
    for a, b in zip(gp_predict(grown, Xq), gp_predict(fresh, Xq)):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    assert grown.log_marginal_likelihood == pytest.approx(fresh.log_marginal_likelihood, rel=1e-9)


def test_fantasy_collapses_variance_at_pending_point():
    # the acquisition maximizer sees (almost) no uncertainty left at a pending point
    from hpcore.kernels._gp import gp_fit, gp_predict
    from hpcore.samplers.bayes import _append_rows

    rng = np.random.default_rng(1)
    X = rng.random((30, 2))
    y = X.sum(axis=1)
    m = gp_fit(X, (y - y.mean()) / y.std(), theta0=np.r_[0.0, 0.0, 0.0, np.log(0.05)],
               optimize=False)
    xp = np.array([[0.3, 0.7]])
    f = _append_rows(m, xp, np.r_[m.y, gp_predict(m, xp)[0]], np.array([1e-6]), 1)
    assert gp_predict(f, xp)[1][0] < 1e-5 < gp_predict(m, xp)[1][0]


def _study_with(n, d, seed=0):
    space = hp.Space({f"x{i}": hp.Float(0.0, 1.0) for i in range(d)})
    st = hp.Study(space, sampler=hp.RandomSampler(seed=seed))
    rng = np.random.default_rng(seed)
    for x in rng.random((n, d)):
        t = st.ask(params={f"x{i}": float(v) for i, v in enumerate(x)})
        st.tell(t, float(((x - 0.3) ** 2).sum()))
    return st


def test_refits_beyond_100_observations_are_bounded(monkeypatch):
    import hpcore.kernels._gp as gpmod

    st = _study_with(150, 3)
    s = BayesSampler(seed=0)
    st.sampler = s
    t = st.ask()                                   # cold start: subset fit
    st.tell(t, 0.5)
    calls = []
    real = gpmod.gp_log_marginal_likelihood

    def counting(X, *a, **k):
        calls.append(len(X))
        return real(X, *a, **k)

    monkeypatch.setattr(gpmod, "gp_log_marginal_likelihood", counting)
    full_fits = []
    real_fit = gpmod._fit
    monkeypatch.setattr(gpmod, "_fit", lambda *a, **k: full_fits.append(1) or real_fit(*a, **k))
    for _ in range(s.refit_every + 1):             # at least one refit
        t = st.ask()
        st.tell(t, 0.5)
    assert not full_fits                           # no unbounded L-BFGS-B fit
    assert 1 <= len(calls) <= 30, len(calls)     # one refit, its evaluations capped


def test_local_gp_beyond_2000_observations():
    from hpcore.samplers import bayes

    st = _study_with(bayes._LOCAL_MAX_OBS + 60, 2)
    s = BayesSampler(seed=0)
    st.sampler = s
    t = st.ask()
    st.space.validate(t.params)
    assert s._chol is not None and len(s._chol.y) == bayes._LOCAL_MAX_OBS
