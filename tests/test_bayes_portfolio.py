"""MACE acquisition portfolio (hpcore.samplers._portfolio, BayesSampler(acquisition="mace"))."""
import math

import numpy as np
import pytest
from scipy.stats import norm

import hpcore as hp
from hpcore.samplers._portfolio import (MACE_EPS, mace_kappa, mace_objectives, mace_order,
                                        pareto_front)
from hpcore.samplers.bayes import BayesSampler

from test_sampler_bayes import BRANIN, BRANIN_MIN, branin, mixed_objective, mixed_space


def test_kappa_is_hebos_schedule():
    # HEBO: sqrt(upsi * 2 * ((2 + d/2) log t + log(3 pi^2 / (3 delta)))), upsi .5, delta .01
    for t, d in ((1, 1), (20, 3), (100, 6)):
        want = math.sqrt(0.5 * 2 * ((2 + d / 2) * math.log(t) + math.log(math.pi ** 2 / 0.01)))
        assert mace_kappa(t, d) == pytest.approx(want, rel=1e-12)
    assert mace_kappa(50, 5) > mace_kappa(10, 5) > 0     # grows with t
    assert mace_kappa(50, 8) > mace_kappa(50, 2)        # and with d
    for kw, name in (({"n_obs": 0, "n_params": 2}, "n_obs"), ({"n_obs": 3, "n_params": 0}, "n_params"),
                     ({"n_obs": 3, "n_params": 2, "delta": 1.5}, "delta"),
                     ({"n_obs": 3, "n_params": 2, "upsilon": -1.0}, "upsilon"),
                     ({"n_obs": True, "n_params": 2}, "n_obs")):
        with pytest.raises(ValueError, match=name):
            mace_kappa(**kw)


def test_pareto_front_maximization():
    F = np.array([[1.0, 1.0, 1.0],     # dominated by row 1
                  [2.0, 1.0, 1.0],
                  [0.0, 3.0, 0.0],
                  [2.0, 1.0, 1.0],     # duplicate of a front row: kept
                  [0.0, 2.0, 0.0],     # dominated by row 2
                  [-1.0, -1.0, 5.0],
                  [np.nan, 9.0, 9.0]])  # NaN counts as -inf: front on the other two
    assert pareto_front(F).tolist() == [1, 2, 3, 5, 6]
    assert pareto_front(np.zeros((0, 3))).tolist() == []
    with pytest.raises(ValueError, match="F must be a 2-D"):
        pareto_front(np.ones(3))


def test_mace_order_front_first_random_then_by_log_ei():
    F = np.array([[5.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0],
                  [0.5, 0.5, 0.5], [0.9, 0.9, 0.9], [0.2, 0.1, 0.1]])
    front = set(pareto_front(F).tolist())
    assert front == {0, 1, 2, 3}
    firsts = set()
    for s in range(40):
        o = mace_order(F, np.random.default_rng(s))
        assert sorted(o.tolist()) == list(range(len(F)))
        assert set(o[:4].tolist()) == front
        assert o[4:].tolist() == [5, 4, 6]      # the rest by log-EI, best first
        firsts.add(int(o[0]))
    assert firsts == front                     # the pick is uniform over the front


def test_mace_objectives_match_the_formulas():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=50)
    var = rng.uniform(0.01, 2.0, size=50)
    tau, kappa = -0.3, 2.5
    F = mace_objectives(mean, var, tau, kappa, 0.0, np.random.default_rng(1))
    sd = np.sqrt(var)
    z = (tau - MACE_EPS - mean) / sd
    ei = sd * (z * norm.cdf(z) + norm.pdf(z))
    np.testing.assert_allclose(F[:, 0], np.log(ei), rtol=1e-9)
    np.testing.assert_allclose(F[:, 1], norm.logcdf(z), rtol=1e-9)
    np.testing.assert_allclose(F[:, 2], -(mean - kappa * sd), rtol=1e-12)
    # noise perturbs the means, reproducibly for a seeded generator
    F1 = mace_objectives(mean, var, tau, kappa, 0.1, np.random.default_rng(2))
    F2 = mace_objectives(mean, var, tau, kappa, 0.1, np.random.default_rng(2))
    assert np.array_equal(F1, F2) and not np.allclose(F1, F)
    # far below the incumbent log-EI stays finite (no underflow to log 0)
    Ff = mace_objectives(np.array([40.0]), np.array([1e-4]), 0.0, kappa, 0.0,
                         np.random.default_rng(0))
    assert np.isfinite(Ff).all()


def test_bad_acquisition_names_the_parameter():
    with pytest.raises(ValueError, match="acquisition must be one of"):
        BayesSampler(acquisition="hedge")


def test_mace_deterministic_valid_and_beats_random_on_branin():
    def run(seed, sampler):
        st = hp.Study(BRANIN, sampler=sampler)
        st.optimize(lambda t: branin(t.params), n_trials=30)
        return st
    a = run(0, BayesSampler(seed=0, acquisition="mace"))
    b = run(0, BayesSampler(seed=0, acquisition="mace"))
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    gaps_m, gaps_r = [], []
    for s in range(3):
        gaps_m.append(run(s, BayesSampler(seed=s, acquisition="mace")).best_value - BRANIN_MIN)
        gaps_r.append(run(s, hp.RandomSampler(seed=s)).best_value - BRANIN_MIN)
    assert np.median(gaps_m) < 0.05 and np.median(gaps_m) < np.median(gaps_r) / 5


def test_mace_proposal_is_a_random_front_point_of_the_three_maximizations():
    """The proposal order is the candidates' front in a seeded random order; the
    candidates hold each acquisition's maximizer; over seeds MACE does not always pick
    log-EI's maximizer (a portfolio, not log-EI)."""
    from hpcore.kernels._acquisition import maximize_acquisition
    from hpcore.kernels._gp import gp_predict

    differs = 0
    for seed in range(6):
        smp = BayesSampler(seed=seed, acquisition="mace", n_startup_trials=8)
        st = hp.Study(BRANIN, sampler=smp)
        st.optimize(lambda t: branin(t.params), n_trials=14)
        smp._sync(st)
        X, y = smp._X, smp._targets()
        model = smp._fit(X, y, 99)
        xb = X[np.argsort(y, kind="stable")[:5]]
        args = (model, X, y, None, {}, [], xb, X, 77, 1, 2)
        C, tau, kappa = smp._mace_candidates(*args)
        assert tau == pytest.approx(float(gp_predict(model, X[np.argmin(y)][None])[0][0]))
        assert kappa == pytest.approx(mace_kappa(len(y), 2))
        assert len({tuple(np.round(c, 9)) for c in C}) == len(C)     # distinct
        ucb_best, _ = maximize_acquisition(model, kind="ucb", f_best=tau - MACE_EPS,
                                           beta=kappa ** 2, x_best=xb, exclude=X,
                                           n_starts=smp.n_starts,
                                           n_raw_samples=smp.n_raw_samples,
                                           seed=(77 + 2 * 104723) % 2 ** 63)
        assert np.abs(C - ucb_best).max(axis=1).min() < 1e-9
        xs = smp._mace(*args)
        rng = np.random.default_rng(np.random.SeedSequence([77, 17]))
        mean, var = gp_predict(model, C)
        F = mace_objectives(mean, var, tau, kappa, model.noise_var, rng)
        order = mace_order(F, rng)
        np.testing.assert_array_equal(xs, C[order])
        assert order[0] in pareto_front(F)
        differs += int(order[0] != int(np.argmax(F[:, 0])))
    assert differs >= 1


def test_mace_batch_and_mixed_space():
    smp = BayesSampler(seed=2, acquisition="mace", n_startup_trials=5)
    st = hp.Study(mixed_space(), sampler=smp)
    st.optimize(mixed_objective, n_trials=12)
    trials = st.ask_batch(4)
    for t in trials:
        mixed_space().validate(t.params)
    keys = {tuple(sorted(t.params.items())) for t in trials}
    assert len(keys) == 4
