import numpy as np
import pytest

import hpcore as hp
from hpcore.samplers import bayes as _bayes


def _study(max_fantasies):
    sp = hp.Space({"x": hp.Float(0.0, 1.0), "y": hp.Float(0.0, 1.0)})
    st = hp.Study(sp, sampler=hp.BayesSampler(seed=3, max_fantasies=max_fantasies))
    for _ in range(15):
        t = st.ask()
        st.tell(t, (t.params["x"] - 0.3) ** 2 + (t.params["y"] - 0.6) ** 2)
    return st


def test_only_the_most_recent_pending_trials_are_fantasized(monkeypatch):
    st = _study(4)
    running = [st.ask() for _ in range(12)]          # pending, never told
    seen = []
    orig = _bayes.BayesSampler._fantasize

    def spy(self, model, Xp, liar, nt):
        seen.append(np.array(Xp))
        return orig(self, model, Xp, liar, nt)

    monkeypatch.setattr(_bayes.BayesSampler, "_fantasize", spy)
    t = st.ask()
    assert len(seen) == 1 and seen[0].shape == (4, 2)
    last = np.array([[r.params["x"], r.params["y"]] for r in running[-4:]])
    np.testing.assert_allclose(seen[0], last)
    # every pending trial (fantasized or not) is still kept pending_radius away
    u = np.array([t.params["x"], t.params["y"]])
    P = np.array([[r.params["x"], r.params["y"]] for r in running])
    assert np.sqrt(((P - u) ** 2).sum(1)).min() > st.sampler.pending_radius


def test_no_fantasies_and_bad_cap():
    st = _study(0)
    [st.ask() for _ in range(5)]
    t = st.ask()
    assert set(t.params) == {"x", "y"}
    with pytest.raises(ValueError, match="max_fantasies"):
        hp.BayesSampler(max_fantasies=-1)


def test_local_gp_reuses_its_factor_while_the_local_set_is_unchanged(monkeypatch):
    from hpcore.kernels import gp_fit

    n = _bayes._LOCAL_MAX_OBS + 40
    sp = hp.Space({"x": hp.Float(0.0, 1.0), "y": hp.Float(0.0, 1.0)})
    st = hp.Study(sp, sampler=hp.RandomSampler(seed=0))
    rng = np.random.default_rng(0)
    for x in rng.random((n, 2)):
        t = st.ask(params={"x": float(x[0]), "y": float(x[1])})
        st.tell(t, float(((x - 0.3) ** 2).sum()))
    s = hp.BayesSampler(seed=0)
    st.sampler = s
    st.ask()                                    # cold start: hyperparameters, factor
    first = s._chol
    # an observation far from the incumbent (0.3, 0.3) stays outside the local set
    t = st.ask(params={"x": 1.0, "y": 1.0})
    st.tell(t, 1.0)
    calls = []
    monkeypatch.setattr(_bayes, "gp_fit", lambda *a, **k: calls.append(1) or gp_fit(*a, **k))
    st.ask()
    assert not calls                            # no refactorization
    assert s._chol.L is first.L
    ref = gp_fit(s._chol.X, s._chol.y, theta0=s._chol.theta, optimize=False)
    np.testing.assert_allclose(s._chol.alpha, ref.alpha, rtol=1e-8, atol=1e-8)
    # a new observation next to the incumbent joins the local set: refactorized
    inc = s._chol.X[int(np.argmin(s._chol.y))]
    t = st.ask(params={"x": float(inc[0]) + 1e-4, "y": float(inc[1])})
    st.tell(t, -1.0)
    st.ask()
    assert calls and s._chol.L is not first.L
