import numpy as np
import pytest
from scipy.stats import qmc

import hpcore as hp
from hpcore import TrialState


def space():
    return hp.Space({
        "x": hp.Float(0, 1),
        "lr": hp.Float(1e-4, 1, log=True),
        "opt": hp.Categorical(["sgd", "adam"]),
        "momentum": hp.Float(0, 1, condition={"opt": "sgd"}),
    })


def configs(study):
    return [t.params for t in study.trials]


@pytest.mark.parametrize("make", [lambda s: hp.RandomSampler(seed=s),
                                  lambda s: hp.QMCSampler("sobol", seed=s),
                                  lambda s: hp.QMCSampler("halton", seed=s),
                                  lambda s: hp.QMCSampler("lhs", seed=s, block=16)])
def test_same_seed_same_trials(make):
    a = hp.Study(space(), sampler=make(5))
    b = hp.Study(space(), sampler=make(5))
    c = hp.Study(space(), sampler=make(6))
    for s in (a, b, c):
        s.optimize(lambda t: 0.0, n_trials=40)
    assert configs(a) == configs(b)
    assert configs(a) != configs(c)
    for cfg in configs(a):
        space().validate(cfg)
        assert ("momentum" in cfg) == (cfg["opt"] == "sgd")


def test_random_is_uniform_and_log_uniform():
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=0))
    study.optimize(lambda t: 0.0, n_trials=2000)
    x = np.array([t.params["x"] for t in study.trials])
    lr = np.log10([t.params["lr"] for t in study.trials])
    assert abs(x.mean() - 0.5) < 0.03
    assert abs(lr.mean() + 2.0) < 0.12            # log-uniform on [1e-4, 1]
    frac_sgd = np.mean([t.params["opt"] == "sgd" for t in study.trials])
    assert abs(frac_sgd - 0.5) < 0.05


def test_sobol_is_more_uniform_than_random():
    sp = hp.Space({f"x{i}": hp.Float(0, 1) for i in range(4)})
    pts = {}
    for name, sampler in (("sobol", hp.QMCSampler("sobol", seed=1)), ("random", hp.RandomSampler(seed=1))):
        st = hp.Study(sp, sampler=sampler)
        st.optimize(lambda t: 0.0, n_trials=256)
        pts[name] = np.array([[t.params[f"x{i}"] for i in range(4)] for t in st.trials])
    assert qmc.discrepancy(pts["sobol"]) < qmc.discrepancy(pts["random"]) / 3


def test_lhs_blocks_are_latin():
    sp = hp.Space({"a": hp.Float(0, 1), "b": hp.Float(0, 1)})
    st = hp.Study(sp, sampler=hp.QMCSampler("lhs", seed=0, block=20))
    st.optimize(lambda t: 0.0, n_trials=40)
    for blk in range(2):
        for k in ("a", "b"):
            vals = [t.params[k] for t in st.trials[blk * 20:(blk + 1) * 20]]
            assert sorted(int(v * 20) for v in vals) == list(range(20))


def test_grid_exhausts_without_duplicates_and_stops():
    sp = hp.Space({"a": hp.Categorical(["x", "y", "z"]), "b": hp.Int(1, 4),
                   "c": hp.Float(0.0, 1.0)})
    sampler = hp.GridSampler(n_points=3, seed=0)
    study = hp.Study(sp, sampler=sampler)
    study.optimize(lambda t: 0.0, n_trials=1000)
    got = [tuple(sorted(t.params.items())) for t in study.trials]
    # Int(1, 4) thinned to n_points=3 values
    assert len(got) == 3 * 3 * 3 == len(sampler) and len(set(got)) == len(got)
    with pytest.raises(hp.StudyExhausted):
        study.ask()
    # seeded shuffle: a different seed gives a different order of the same grid
    other = hp.Study(sp, sampler=hp.GridSampler(n_points=3, seed=1))
    other.optimize(lambda t: 0.0)
    got2 = [tuple(sorted(t.params.items())) for t in other.trials]
    assert got2 != got and set(got2) == set(got)


def test_grid_resume_continues(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    sp = hp.Space({"a": hp.Int(0, 9), "b": hp.Categorical([0, 1])})
    s1 = hp.Study(sp, sampler=hp.GridSampler(seed=3), storage=url, name="g")
    s1.optimize(lambda t: 0.0, n_trials=7)
    s2 = hp.load_study("g", url, sampler=hp.GridSampler(seed=3))
    s2.optimize(lambda t: 0.0)
    got = [tuple(sorted(t.params.items())) for t in s2.trials]
    assert len(got) == 20 == len(set(got))


def _grid_points_of_sampled(study):
    return [tuple(sorted(t.params.items())) for t in study.trials if t.sampled]


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_grid_is_covered_when_trials_are_given_enqueued_retried_or_imported(tmp_path, storage):
    # trials created with their configuration take a trial number but no grid point
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'g.db'}"
    sp = hp.Space({"a": hp.Int(0, 3), "b": hp.Categorical(["u", "v"])})
    sampler = hp.GridSampler(seed=5)
    st = hp.Study(sp, sampler=sampler, storage=url, name="g")
    t0 = st.ask()
    st.tell(t0, 1.0)
    st.tell(st.ask(params={"a": 0, "b": "u"}), 2.0)          # given
    st.enqueue({"a": 3, "b": "v"})
    t = st.ask()                                              # the enqueued one
    assert t.params == {"a": 3, "b": "v"}
    st.tell(t, 3.0)
    t = st.ask()
    st.tell(t, RuntimeError("worker died"), retry=True)       # queued for a re-run
    st.tell(st.ask(), 4.0)                                    # the re-run
    st.add_trials([{"params": {"a": 1, "b": "u"}, "value": 5.0}])
    st.optimize(lambda tr: 0.0)                               # to the end of the grid
    marks = [(t.sampled, t.system_attrs.get("given"), t.system_attrs.get("enqueued"),
              "retry_of" in t.system_attrs, t.system_attrs.get("imported")) for t in st.trials]
    assert [m[0] for m in marks].count(False) == 4 and marks[1][1] and marks[2][2]
    assert marks[4][3] and marks[5][4]
    got = _grid_points_of_sampled(st)
    assert len(got) == len(sampler) == 8 == len(set(got))
    with pytest.raises(hp.StudyExhausted):
        st.ask()


def test_grid_workers_sharing_a_study_with_given_trials_cover_the_grid_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    sp = hp.Space({"a": hp.Int(0, 4), "b": hp.Categorical([0, 1])})
    w1 = hp.Study(sp, sampler=hp.GridSampler(seed=2), storage=url, name="g")
    w2 = hp.load_study("g", url, sampler=hp.GridSampler(seed=2))
    open_trials, k = [], 0
    while True:   # two workers interleave, one of them also runs given configurations
        w = (w1, w2)[k % 2]
        try:
            open_trials.append((w, w.ask(params={"a": k % 5, "b": 0}) if k % 3 == 0 else w.ask()))
        except hp.StudyExhausted:
            break
        if len(open_trials) == 3:       # tell out of order, some trials still running
            w_, t_ = open_trials.pop(1)
            w_.tell(t_, 0.0)
        k += 1
    for w_, t_ in open_trials:
        w_.tell(t_, 0.0)
    got = _grid_points_of_sampled(w1)
    assert len(got) == 10 == len(set(got))
    assert len(w1.trials) > 10


def test_grid_position_walk_restarts_for_an_earlier_number():
    sp = hp.Space({"a": hp.Int(0, 5)})
    sampler = hp.GridSampler(seed=0, shuffle=False)
    st = hp.Study(sp, sampler=sampler)
    st.tell(st.ask(params={"a": 5}), 0.0)
    for _ in range(3):
        st.tell(st.ask(), 0.0)
    assert [t.params["a"] for t in st.trials] == [5, 0, 1, 2]
    assert sampler.position(st, 4) == 3 and sampler.position(st, 2) == 1
    assert sampler.sample(st, 4) == {"a": 3}


def test_grid_values_override_and_errors():
    sp = hp.Space({"lr": hp.Float(1e-3, 1, log=True), "n": hp.Int(1, 100)})
    with pytest.raises(ValueError, match="'lr'.*continuous"):
        hp.Study(sp, sampler=hp.GridSampler())
    sampler = hp.GridSampler(values={"lr": [1e-3, 1e-2]}, n_points=5)
    st = hp.Study(sp, sampler=sampler)
    assert len(sampler) == 2 * 5
    st.optimize(lambda t: 0.0)
    assert sorted({t.params["lr"] for t in st.trials}) == [1e-3, 1e-2]
    with pytest.raises(ValueError, match="values\\['lr'\\]"):
        hp.Study(sp, sampler=hp.GridSampler(values={"lr": [5.0]}, n_points=3))
    with pytest.raises(ValueError, match="unknown parameter 'zz'"):
        hp.Study(sp, sampler=hp.GridSampler(values={"zz": [1]}, n_points=3))


def test_sampler_argument_errors():
    with pytest.raises(TypeError, match="seed"):
        hp.RandomSampler(seed="1")
    with pytest.raises(ValueError, match="seed"):
        hp.RandomSampler(seed=-3)
    with pytest.raises(ValueError, match="method"):
        hp.QMCSampler("grid")
    with pytest.raises(ValueError, match="power of two"):
        hp.QMCSampler("sobol", block=100)
    with pytest.raises(ValueError, match="seed"):
        hp.GridSampler(seed=None)


def test_failed_trials_do_not_stop_random_search():
    st = hp.Study(space(), sampler=hp.RandomSampler(seed=0))
    st.optimize(lambda t: float("nan") if t.number % 2 else 1.0, n_trials=10)
    assert [t.state for t in st.trials].count(TrialState.FAIL) == 5
