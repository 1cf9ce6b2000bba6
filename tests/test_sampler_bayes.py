import math

import numpy as np
import pytest

import hpcore as hp
from hpcore.samplers.bayes import BayesSampler


def branin(p):
    x1, x2 = p["x"], p["y"]
    return ((x2 - 5.1 / (4 * math.pi ** 2) * x1 ** 2 + 5 / math.pi * x1 - 6) ** 2
            + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10)


BRANIN = hp.Space({"x": hp.Float(-5, 10), "y": hp.Float(0, 15)})
BRANIN_MIN = 0.397887


def mixed_space():
    return hp.Space({
        "x": hp.Float(-2, 2),
        "lr": hp.Float(1e-4, 1, log=True),
        "k": hp.Int(1, 6),
        "opt": hp.Categorical(["sgd", "adam", "rms"]),
        "momentum": hp.Float(0, 1, condition={"opt": "sgd"}),
    })


def mixed_objective(trial):
    p = trial.params
    v = (p["x"] - 0.5) ** 2 + (math.log10(p["lr"]) + 2) ** 2 + 0.1 * abs(p["k"] - 4)
    v += {"sgd": 0.0, "adam": 0.3, "rms": 0.6}[p["opt"]]
    if p["opt"] == "sgd":
        v += (p["momentum"] - 0.9) ** 2
    return v


def test_same_seed_same_trials_and_valid_configs():
    runs = []
    for seed in (3, 3, 4):
        st = hp.Study(mixed_space(), sampler=BayesSampler(seed=seed, n_startup_trials=5))
        st.optimize(mixed_objective, n_trials=20)
        runs.append([t.params for t in st.trials])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    for cfg in runs[0]:
        mixed_space().validate(cfg)


def test_results_do_not_depend_on_thread_count():
    runs = []
    for nt in (1, 2):
        st = hp.Study(mixed_space(), sampler=BayesSampler(seed=1, n_startup_trials=4, n_threads=nt))
        st.optimize(mixed_objective, n_trials=10)
        runs.append([t.params for t in st.trials])
    assert runs[0] == runs[1]


def test_beats_random_search_on_branin():
    bo, rs = [], []
    for seed in range(3):
        st = hp.Study(BRANIN, sampler=BayesSampler(seed=seed))
        st.optimize(lambda t: branin(t.params), n_trials=30)
        bo.append(st.best_value)
        st = hp.Study(BRANIN, sampler=hp.RandomSampler(seed=seed))
        st.optimize(lambda t: branin(t.params), n_trials=30)
        rs.append(st.best_value)
    assert np.median(bo) < np.median(rs)
    assert max(bo) < BRANIN_MIN + 0.1


def test_maximize_direction():
    st = hp.Study(BRANIN, sampler=BayesSampler(seed=0), direction="maximize")
    st.optimize(lambda t: -branin(t.params), n_trials=30)
    assert st.best_value > -(BRANIN_MIN + 0.05)


@pytest.mark.parametrize("acq", ["ei", "ucb", "pi"])
def test_other_acquisitions_make_progress(acq):
    st = hp.Study(BRANIN, sampler=BayesSampler(seed=0, acquisition=acq))
    st.optimize(lambda t: branin(t.params), n_trials=25)
    assert st.best_value < 2.0


@pytest.mark.parametrize("transform", ["log", "power"])
def test_output_transforms_on_a_heavy_tailed_objective(transform):
    def obj(t):
        return math.exp(6 * math.hypot(t.params["x"] / 5 - 0.4, t.params["y"] / 15 - 0.6))
    st = hp.Study(BRANIN, sampler=BayesSampler(seed=0, transform=transform))
    st.optimize(obj, n_trials=25)
    assert st.best_value < math.exp(6 * 0.1)


def test_discrete_space_never_repeats_a_configuration():
    sp = hp.Space({"k": hp.Int(0, 4), "c": hp.Categorical(["a", "b", "c"])})
    st = hp.Study(sp, sampler=BayesSampler(seed=0, n_startup_trials=3))
    st.optimize(lambda t: (t.params["k"] - 2) ** 2 + (t.params["c"] == "b"), n_trials=15)
    seen = [(t.params["k"], t.params["c"]) for t in st.trials]
    assert len(set(seen)) == 15                 # all 15 configurations, none twice


def test_failed_trials_are_excluded():
    def obj(t):
        if t.number % 3 == 1:
            raise RuntimeError("boom")
        if t.number % 3 == 2:
            return float("nan")
        return branin(t.params)
    sampler = BayesSampler(seed=0, n_startup_trials=4)
    st = hp.Study(BRANIN, sampler=sampler)
    st.optimize(obj, n_trials=30)
    done = st.completed_trials()
    assert len(done) == 10
    assert sampler._X.shape == (10, 2) and len(sampler._y) == 10
    assert sampler._numbers == [t.number for t in done]


def test_cache_is_incremental():
    sampler = BayesSampler(seed=0, n_startup_trials=3)
    st = hp.Study(mixed_space(), sampler=sampler)
    st.optimize(mixed_objective, n_trials=8)
    X_before = sampler._X.copy()
    st.optimize(mixed_objective, n_trials=1)
    assert np.array_equal(sampler._X[:len(X_before)], X_before)
    # inactive momentum (opt != sgd) is imputed, never NaN
    assert np.isfinite(sampler._X).all()
    enc = np.array([mixed_space().encode(t.params)
                    for t in st.completed_trials()[:len(X_before)]])
    mask = ~np.isnan(enc)
    assert np.array_equal(X_before[mask], enc[mask])


@pytest.mark.parametrize("pending", ["believer", "liar_min", "liar_mean", "liar_max"])
def test_pending_trials_get_different_points(pending):
    st = hp.Study(BRANIN, sampler=BayesSampler(seed=0, pending=pending))
    st.optimize(lambda t: branin(t.params), n_trials=15)
    batch = [st.ask() for _ in range(4)]
    pts = np.array([[b.params["x"] / 15, b.params["y"] / 15] for b in batch])
    dists = np.linalg.norm(pts[:, None] - pts[None], axis=-1)[np.triu_indices(4, 1)]
    assert dists.min() > 1e-3
    for b in batch:
        st.tell(b, branin(b.params))
    assert len(st.completed_trials()) == 19


def test_bad_arguments():
    with pytest.raises(ValueError, match="acquisition"):
        BayesSampler(acquisition="kg")
    with pytest.raises(ValueError, match="kernel"):
        BayesSampler(kernel="linear")
    with pytest.raises(ValueError, match="transform"):
        BayesSampler(transform="sqrt")
    with pytest.raises(ValueError, match="pending"):
        BayesSampler(pending="ignore")
    with pytest.raises(ValueError, match="n_startup_trials"):
        BayesSampler(n_startup_trials=0)
    with pytest.raises(ValueError, match="beta"):
        BayesSampler(beta=-1.0)
    with pytest.raises(ValueError, match="single-objective"):
        hp.Study(BRANIN, sampler=BayesSampler(), directions=["minimize", "minimize"])


def test_exported():
    assert hp.BayesSampler is BayesSampler
    from hpcore.samplers import BayesSampler as B

    assert B is BayesSampler


_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(params):
    x = np.array([params[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


@pytest.mark.slow
def test_quality_against_random_on_hartmann6():
    space = hp.Space({f"x{i}": hp.Float(0.0, 1.0) for i in range(6)})
    bo, rs = [], []
    for seed in range(5):
        for sampler, out in ((BayesSampler(seed=seed), bo), (hp.RandomSampler(seed=seed), rs)):
            st = hp.Study(space, sampler=sampler)
            st.optimize(lambda t: hartmann6(t.params), n_trials=50)
            out.append(st.best_value)
    assert np.median(bo) < np.median(rs)
    assert np.median(bo) < -3.2          # global minimum -3.32237


@pytest.mark.slow
def test_parallel_workers_get_distinct_useful_points():
    import _objectives

    st = hp.Study(_objectives.space(), sampler=BayesSampler(seed=0, n_startup_trials=4))
    st.optimize(_objectives.quadratic, n_trials=16, n_jobs=4)
    done = st.completed_trials()
    assert len(done) == 16
    configs = {tuple(sorted(t.params.items())) for t in done}
    assert len(configs) == 16
    assert st.best_value < 0.1                 # minimum 0.01 at x=0.25, k=1, c="a"
