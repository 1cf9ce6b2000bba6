"""TuRBO-style trust region (hpcore.samplers._trust, BayesSampler(trust_region=True))."""
import math

import numpy as np
import pytest

import hpcore as hp
from hpcore.samplers._trust import L_INIT, L_MAX, L_MIN, replay, trust_box
from hpcore.samplers.bayes import BayesSampler

from test_sampler_bayes import BRANIN, BRANIN_MIN, branin


def test_replay_expands_shrinks_and_restarts():
    design = [5.0, 4.0, 3.0]
    tr = replay(np.array(design), 3, 2)
    assert (tr.length, tr.run_start, tr.n_run, tr.restarts) == (L_INIT, 0, 3, 0)
    # three successes in a row double L; a tiny improvement (< 1e-3 |best|) is a failure
    tr = replay(np.array(design + [2.0, 1.0, 0.5]), 3, 2)
    assert tr.length == pytest.approx(2 * L_INIT)
    tr = replay(np.array(design + [2.0, 1.0, 0.5, 0.1, 0.05, 0.01]), 3, 2)
    assert tr.length == pytest.approx(L_MAX)            # capped
    tr = replay(np.array(design + [2.0, 2.0 - 1e-6, 1.0]), 3, 2)
    assert tr.length == pytest.approx(L_INIT)           # the counter was reset
    # fail_tol = max(4, d) failures halve it
    assert replay(np.array(design + [9.0] * 4), 3, 2).length == pytest.approx(L_INIT / 2)
    assert replay(np.array(design + [9.0] * 4), 3, 6).length == pytest.approx(L_INIT)
    assert replay(np.array(design + [9.0] * 6), 3, 6).length == pytest.approx(L_INIT / 2)
    # 0.8 / 2^7 < 0.5^7: the 7th halving (28 failures at fail_tol 4) restarts
    halvings = math.ceil(math.log2(L_INIT / L_MIN))
    n_fail = 4 * halvings
    y = np.array(design + [9.0] * n_fail)
    tr = replay(y, 3, 2)
    assert tr.restarts == 1 and tr.run_start == len(y) and tr.n_run == 0
    assert tr.length == L_INIT
    tr = replay(np.concatenate([y, [7.0, 8.0, 6.0, 6.5]]), 3, 2)
    assert tr.n_run == 4 and tr.run_start == len(y)     # the new run's design is done
    assert replay(np.array(design + [9.0] * (n_fail - 1)), 3, 2).restarts == 0
    for kw, name in (({"n_init": 0, "d": 2}, "n_init"), ({"n_init": 2, "d": 0}, "d"),
                     ({"n_init": 2, "d": 2, "fail_tol": 0}, "fail_tol")):
        with pytest.raises(ValueError, match=name):
            replay(np.zeros(3), **kw)


def test_trust_box_stretches_by_lengthscales():
    b = trust_box(np.array([0.5, 0.5]), np.array([0.1, 0.4]), 0.4)
    # weights l / geomean(l) = (0.5, 2): sides 0.2 and 0.8 (clipped to the cube)
    np.testing.assert_allclose(b[:, 1] - b[:, 0], [0.2, 0.8])
    np.testing.assert_allclose(b.mean(axis=1), [0.5, 0.5])
    b = trust_box(np.array([0.05, 0.95]), np.array([1.0, 1.0]), 0.4)
    np.testing.assert_allclose(b, [[0.0, 0.25], [0.75, 1.0]])
    with pytest.raises(ValueError, match="lengthscales"):
        trust_box(np.array([0.5]), np.array([0.0]), 0.4)
    with pytest.raises(ValueError, match="length"):
        trust_box(np.array([0.5]), np.array([1.0]), -1.0)
    with pytest.raises(ValueError, match="center and lengthscales"):
        trust_box(np.array([0.5, 0.5]), np.array([1.0]), 0.4)


def test_bad_trust_region_names_the_parameter():
    with pytest.raises(ValueError, match="trust_region"):
        BayesSampler(trust_region="yes")


def test_proposals_lie_in_the_trust_region_and_beat_random():
    smp = BayesSampler(seed=1, trust_region=True, n_startup_trials=6)
    st = hp.Study(BRANIN, sampler=smp)
    inside = 0
    for _ in range(24):
        t = st.ask()
        if smp.last_trust_region is not None and len(smp._y) >= 6:
            tr = smp.last_trust_region
            # the box it searched: around the run's best, side <= L * max stretch
            s = tr.run_start
            c = smp._X[s + int(np.argmin(smp._y[s:]))]
            u = BRANIN.encode(t.params)
            ls = np.exp(smp._theta[:2])
            box = trust_box(c, ls, tr.length)
            assert (u >= box[:, 0] - 1e-9).all() and (u <= box[:, 1] + 1e-9).all(), (u, box)
            inside += 1
        st.tell(t, branin(t.params))
    assert inside >= 17
    assert st.best_value - BRANIN_MIN < 0.05
    # deterministic given the seed
    st2 = hp.Study(BRANIN, sampler=BayesSampler(seed=1, trust_region=True, n_startup_trials=6))
    st2.optimize(lambda t: branin(t.params), n_trials=24)
    assert [t.params for t in st2.trials] == [t.params for t in st.trials]


def test_restart_runs_a_new_quasi_random_design():
    # a constant objective: every model-phase trial fails, L halves every 4 trials and
    # the run restarts after 28; the next n_startup_trials come from the Sobol design
    smp = BayesSampler(seed=0, trust_region=True, trust_restart="design", n_startup_trials=4)
    st = hp.Study(BRANIN, sampler=smp)
    st.optimize(lambda t: 1.0, n_trials=4 + 28 + 2)
    smp._sync(st)
    tr = replay(smp._y, 4, 2)
    assert tr.restarts == 1 and tr.n_run == 2
    from hpcore.samplers.qmc import QMCSampler

    ref = hp.Study(BRANIN, sampler=QMCSampler("sobol", seed=smp.seed))
    ref.optimize(lambda t: 1.0, n_trials=4 + 28 + 2)
    assert st.trials[-1].params == ref.trials[-1].params
    assert st.trials[-2].params == ref.trials[-2].params


def test_finite_space_never_repeats_a_configuration():
    # a narrow box on a finite space: when its every candidate is evaluated, the search
    # widens to the whole space (and a restart's design skips evaluated points)
    sp = hp.Space({"k": hp.Int(0, 4), "c": hp.Categorical(["a", "b", "c"])})
    st = hp.Study(sp, sampler=BayesSampler(seed=0, n_startup_trials=3, trust_region=True))
    st.optimize(lambda t: (t.params["k"] - 2) ** 2 + (t.params["c"] == "b"), n_trials=15)
    seen = [(t.params["k"], t.params["c"]) for t in st.trials]
    assert len(set(seen)) == 15
    sp = hp.Space({"k": hp.Int(0, 40)})
    st = hp.Study(sp, sampler=BayesSampler(seed=0, n_startup_trials=3, trust_region=True))
    st.optimize(lambda t: 1.0, n_trials=41)     # constant: restarts happen
    assert len({t.params["k"] for t in st.trials}) == 41


def test_incumbent_restart_keeps_the_run_and_resets_the_side():
    design = [5.0, 4.0, 3.0]
    y = np.array(design + [9.0] * (4 * 7))          # 7 halvings: below L_MIN
    a = replay(y, 3, 2, restart="design")
    b = replay(y, 3, 2, restart="incumbent")
    assert a.run_start == len(y) and a.n_run == 0
    assert b.run_start == 0 and b.n_run == len(y) and b.restarts == 1
    assert b.length == L_INIT
    # and it halves again from there, with the run's best still the old one
    assert replay(np.concatenate([y, [9.0] * 4]), 3, 2, restart="incumbent").length == \
        pytest.approx(L_INIT / 2)
    with pytest.raises(ValueError, match="restart"):
        replay(y, 3, 2, restart="random")
    with pytest.raises(ValueError, match="trust_restart"):
        BayesSampler(trust_region=True, trust_restart="random")
    # the sampler never runs a second design with restart="incumbent"
    smp = BayesSampler(seed=0, trust_region=True, trust_restart="incumbent", n_startup_trials=4)
    st = hp.Study(BRANIN, sampler=smp)
    st.optimize(lambda t: 1.0, n_trials=4 + 28 + 3)
    assert smp.last_trust_region.restarts == 1 and smp.last_trust_region.run_start == 0
    assert smp.last_fit_numbers                      # the last trial came from the model


def _full_replay_state(y, n_init, d, restart):
    # the reference: one pass of advance over the whole sequence, and replay's region
    from hpcore.samplers._trust import advance

    st = advance(None, y, n_init, d, restart=restart)
    assert st.region == replay(y, n_init, d, restart=restart)
    return st


@pytest.mark.parametrize("restart", ["design", "incumbent"])
def test_incremental_advance_equals_the_full_replay(restart):
    from hpcore.samplers._trust import advance

    rng = np.random.default_rng(3)
    n_restarts = 0
    for trial in range(40):
        n_init, d = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        n = int(rng.integers(50, 400))
        # runs of improvements (successes), of flat values (failures) and ties
        steps = rng.choice([-1.0, 0.0, 1.0, -1e-6], size=n, p=[0.15, 0.55, 0.2, 0.1])
        y = 10.0 + np.cumsum(steps) * (rng.random(n) if trial % 2 else 1.0)
        st = None
        i = 0
        while i < n:
            k = int(rng.integers(0, 6))          # chunks of 0..5, as asks see them
            st = advance(st, y[i:i + k], n_init, d, restart=restart)
            i += k
            ref = _full_replay_state(y[:min(i, n)], n_init, d, restart)
            assert st == ref, (trial, i)
        n_restarts += st.restarts
        # a reset in the middle: a new sequence from scratch matches its full replay
        cut = int(rng.integers(1, n))
        z = np.concatenate([y[cut:], y[:cut]])
        st = advance(None, z[:cut], n_init, d, restart=restart)
        st = advance(st, z[cut:], n_init, d, restart=restart)
        assert st == _full_replay_state(z, n_init, d, restart)
        # the best indices are np.argmin's (first occurrence)
        assert st.best_all_index == int(np.argmin(z))
        if st.best_index >= 0:
            s = st.run_start
            assert st.best_index == s + int(np.argmin(z[s:]))
    assert n_restarts >= 20          # the sequences exercise restarts
    with pytest.raises(ValueError, match="state was built with"):
        advance(advance(None, [1.0], 2, 2, restart=restart), [0.5], 3, 2, restart=restart)


def test_sampler_state_is_incremental_and_equals_a_resumed_replay(tmp_path, monkeypatch):
    from hpcore.samplers import _trust

    calls = []
    orig = _trust.advance

    def counting(state, y_new, *a, **k):
        calls.append(len(np.asarray(y_new)))
        return orig(state, y_new, *a, **k)

    url = f"sqlite:///{tmp_path / 't.db'}"
    smp = BayesSampler(seed=2, n_startup_trials=4)
    assert smp.trust_region and smp.trust_restart == "incumbent"     # the defaults
    st = hp.Study(BRANIN, sampler=smp, storage=url, name="tr")
    monkeypatch.setattr(_trust, "advance", counting)
    for i in range(30):
        t = st.ask()
        st.tell(t, 1.0 if i % 3 else branin(t.params))
    # one advance per ask over the new observation only, never the whole history
    assert calls and max(calls) <= 4 + 1 and len(calls) <= 30
    calls.clear()
    smp._trust(st)
    assert calls == []              # nothing new: the kept state, no step at all
    monkeypatch.undo()
    smp._sync(st)
    assert smp._tr_state.n == len(smp._y) - 1       # the last tell is not consumed yet
    kept = smp._trust(st)
    assert kept == _full_replay_state(smp._y, 4, 2, "incumbent")
    st.close()
    # resumed from storage by a fresh sampler: the same state from a full replay
    again = hp.load_study("tr", url)
    assert isinstance(again.sampler, BayesSampler) and again.sampler._tr_state is None
    again.sampler._sync(again)
    assert again.sampler._trust(again) == kept
    # a reset in the middle (the sampler moved to another study) replays from scratch
    other = hp.Study(BRANIN, sampler=smp)
    other.optimize(lambda t: branin(t.params), n_trials=8)
    smp._sync(other)
    assert smp._trust(other) == _full_replay_state(smp._y, 4, 2, "incumbent")
    # a kept state that is not a prefix of _y (same length, other values) is replayed
    smp._y = smp._y[::-1].copy()
    assert smp._trust(other) == _full_replay_state(smp._y, 4, 2, "incumbent")


def test_trust_box_holds_with_the_local_gp_beyond_2000_observations():
    from hpcore.samplers import bayes

    from test_sampler_bayes_batch import _study_with

    st = _study_with(bayes._LOCAL_MAX_OBS + 60, 2)
    smp = BayesSampler(seed=0)                       # the default: trust region
    st.sampler = smp
    for _ in range(3):
        t = st.ask()
        tr = smp.last_trust_region
        assert tr is not None and tr.n_run == len(smp._y)
        c = smp._X[smp._tr_state.best_index]
        assert smp._tr_state.best_index == int(np.argmin(smp._y))
        box = trust_box(c, np.exp(smp._theta[:2]), tr.length)
        u = st.space.encode(t.params)
        assert (u >= box[:, 0] - 1e-9).all() and (u <= box[:, 1] + 1e-9).all(), (u, box)
        st.tell(t, float(((u - 0.3) ** 2).sum()))
