"""GeneticSampler / NSGA-II: determinism, resume, bounded incremental population,
mixed spaces, multi-objective studies, and a quality check against random search."""
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

import hpcore as hp
from hpcore.kernels import nondominated_sort
from hpcore.samplers import genetic as genetic_mod
from hpcore.samplers.base import BaseSampler


def rastrigin(x):
    x = np.asarray(x)
    return float(10 * len(x) + np.sum(x * x - 10 * np.cos(2 * np.pi * x)))


def float_space(d, lo=-5.12, hi=5.12):
    return hp.Space({f"x{i}": hp.Float(lo, hi) for i in range(d)})


def vec(params, d):
    return [params[f"x{i}"] for i in range(d)]


def mixed_space():
    return hp.Space({
        "x": hp.Float(-2.0, 2.0),
        "lr": hp.Float(1e-4, 1.0, log=True),
        "n": hp.Int(1, 9),
        "w": hp.Int(2, 512, log=True),
        "s": hp.Float(0.0, 1.0, step=0.25),
        "opt": hp.Categorical(["sgd", "adam", "rms"]),
        "momentum": hp.Float(0.0, 1.0, condition={"opt": "sgd"}),
    })


def mixed_objective(t):
    p = t.params
    return ((p["x"] - 1.0) ** 2 + abs(np.log10(p["lr"]) + 2) + abs(p["n"] - 7)
            + abs(np.log2(p["w"]) - 5) + abs(p["s"] - 0.75)
            + {"sgd": 1.0, "adam": 0.0, "rms": 0.5}[p["opt"]] + p.get("momentum", 0.0))


class FakeStudy:
    """The part of a Study a sampler reads; trials are told in ask order."""

    def __init__(self, space, directions=("minimize",)):
        self.space = space
        self.directions = list(directions)
        self._done = []

    def completed_trials(self):
        return self._done

    def running_trials(self):
        return []

    def add(self, number, params, values):
        self._done.append(SimpleNamespace(number=number, params=params, values=tuple(values)))


def run(study, n, objective):
    for _ in range(n):
        t = study.ask()
        study.tell(t, objective(t))


# ---------------------------------------------------------------------------------------
def test_first_generation_is_sobol_and_seed_determines_trials():
    sp = mixed_space()
    a = hp.Study(sp, sampler=hp.GeneticSampler(population_size=16, seed=3))
    b = hp.Study(sp, sampler=hp.GeneticSampler(population_size=16, seed=3))
    c = hp.Study(sp, sampler=hp.GeneticSampler(population_size=16, seed=4))
    q = hp.Study(sp, sampler=hp.QMCSampler("sobol", seed=3))
    for s in (a, b, c):
        run(s, 120, mixed_objective)
    run(q, 16, mixed_objective)
    pa = [t.params for t in a.trials]
    assert pa[:16] == [t.params for t in q.trials]
    assert pa == [t.params for t in b.trials]
    assert pa != [t.params for t in c.trials]
    for cfg in pa:
        sp.validate(cfg)
        assert isinstance(cfg["n"], int) and isinstance(cfg["w"], int)
        assert ("momentum" in cfg) == (cfg["opt"] == "sgd")
    assert a.sampler.generation >= 5
    assert a.best_value < min(t.values[0] for t in a.trials[:16])


def test_maximize_is_the_mirror_of_minimize():
    sp = float_space(4)
    lo = hp.Study(sp, sampler=hp.GeneticSampler(population_size=10, seed=1))
    hi = hp.Study(sp, sampler=hp.GeneticSampler(population_size=10, seed=1), direction="maximize")
    run(lo, 80, lambda t: rastrigin(vec(t.params, 4)))
    run(hi, 80, lambda t: -rastrigin(vec(t.params, 4)))
    assert [t.params for t in lo.trials] == [t.params for t in hi.trials]


def test_resumed_study_continues_the_same_population(tmp_path):
    sp = float_space(3)
    url = f"sqlite:///{tmp_path / 'ga.db'}"
    obj = lambda t: rastrigin(vec(t.params, 3))
    ref = hp.Study(sp, sampler=hp.GeneticSampler(population_size=8, seed=7))
    run(ref, 90, obj)
    first = hp.Study(sp, sampler=hp.GeneticSampler(population_size=8, seed=7), storage=url,
                     name="ga")
    run(first, 50, obj)
    del first
    again = hp.load_study("ga", url, sampler=hp.GeneticSampler(population_size=8, seed=7))
    run(again, 40, obj)
    assert [t.params for t in again.trials] == [t.params for t in ref.trials]


def test_consecutive_trials_are_the_two_children_of_one_mating():
    # NSGA-II / pymoo mating: trials 2m and 2m + 1 are the two children of one pair of
    # parents.  With uniform crossover and no mutation they split the parents' genes, so
    # their sum is the parents' sum (unless one was a copy of a member, re-bred alone).
    sp = float_space(12)
    sampler = hp.GeneticSampler(population_size=40, crossover="uniform", crossover_prob=1.0,
                                mutation_prob=0.0, seed=3)
    study = FakeStudy(sp)
    pairs = matched = 0
    for number in range(40 + 80):
        params = sampler.sample(study, number)
        study.add(number, params, [rastrigin(vec(params, 4))])
        if number >= 40 and number % 2 == 1:
            X, _ = sampler._population()        # no survival inside a mating
            a = sampler._genome.encode(study._done[-2].params, np.zeros(12))
            b = sampler._genome.encode(params, np.zeros(12))
            sums = X[:, None, :] + X[None, :, :]
            pairs += 1
            matched += bool(np.isclose(sums, a + b, rtol=0, atol=1e-9).all(axis=2).any())
    assert pairs == 40 and matched >= 34
    # control: children of different matings do not sum to two members
    X, _ = sampler._population()
    a = sampler._genome.encode(study._done[-1].params, np.zeros(12))
    b = sampler._genome.encode(study._done[-4].params, np.zeros(12))
    sums = X[:, None, :] + X[None, :, :]
    assert not np.isclose(sums, a + b, rtol=0, atol=1e-9).all(axis=2).any()


def test_nsga2_tournaments_use_the_crowding_of_the_survival_step():
    # Deb's NSGA-II (and pymoo) measure the split front's crowding before cutting it and
    # keep those distances for the next tournaments
    from hpcore.kernels import nsga2_rank

    sampler = hp.GeneticSampler(population_size=4, seed=0)
    t = np.array([0.0, 0.1, 0.15, 0.4, 0.5, 0.8, 0.95, 1.0])     # one front: x + y = 1
    F = np.column_stack([t, 1.0 - t])
    X = np.random.default_rng(0).random((8, 2))
    sampler._pop_x, sampler._pop_f = list(X[:4]), list(F[:4])
    sampler._off_x, sampler._off_f = list(X[4:]), list(F[4:])
    sampler._survive()
    sampler._population()
    _, crowd, order = nsga2_rank(F)
    assert np.array_equal(sampler._crowd, crowd[order[:4]])
    assert not np.array_equal(sampler._crowd, nsga2_rank(F[order[:4]])[1])


def test_population_is_bounded_and_updated_incrementally(monkeypatch):
    sp = float_space(2)
    sampler = hp.GeneticSampler(population_size=10, seed=0)
    study = FakeStudy(sp)
    calls = {"n": 0}
    encode = genetic_mod._Genome.encode

    def counting(self, params, fill):
        calls["n"] += 1
        return encode(self, params, fill)

    monkeypatch.setattr(genetic_mod._Genome, "encode", counting)
    for number in range(400):
        params = sampler.sample(study, number)
        study.add(number, params, [rastrigin(vec(params, 2))])
        assert len(sampler._pop_x) <= 10 and len(sampler._off_x) < 10
    assert calls["n"] == 399                     # every finished trial encoded exactly once
    assert sampler._cursor == 399 and sampler.generation == (399 - 10) // 10


def test_asynchronous_workers_never_wait():
    sp = float_space(3)
    study = hp.Study(sp, sampler=hp.GeneticSampler(population_size=8, seed=2))
    rng = np.random.default_rng(0)
    pending = []
    for _ in range(200):
        pending.append(study.ask())
        if len(pending) >= 6:                    # six workers; finish in random order
            t = pending.pop(int(rng.integers(len(pending))))
            study.tell(t, rastrigin(vec(t.params, 3)))
    assert len(study.running_trials()) == 5
    assert study.sampler.generation >= 15


def test_elitism_and_operator_variants():
    sp = hp.Space({"a": hp.Float(0, 1), "b": hp.Int(0, 20), "c": hp.Categorical(list("pqrs"))})
    obj = lambda t: (t.params["a"] - 0.3) ** 2 + abs(t.params["b"] - 13) / 20 + (t.params["c"] != "r")
    for kw in ({"elitism": 2}, {"crossover": "blend", "mutation": "gaussian"},
               {"crossover": "uniform", "mutation_prob": 0.5, "tournament_size": 4}):
        s = hp.Study(sp, sampler=hp.GeneticSampler(population_size=12, seed=5, **kw))
        run(s, 150, obj)
        assert s.best_value < 0.1
        assert {t.params["c"] for t in s.trials} == set("pqrs")


def test_elitism_keeps_the_best_parents():
    sp = float_space(2)
    sampler = hp.GeneticSampler(population_size=6, elitism=1, seed=0)
    study = FakeStudy(sp)
    for number in range(6):
        params = sampler.sample(study, number)
        study.add(number, params, [float(number)])          # trial 0 is the best parent
    for number in range(6, 12):
        params = sampler.sample(study, number)
        study.add(number, params, [100.0 + number])         # every child is worse
    sampler.sample(study, 12)
    assert sampler.generation == 1
    best = np.array(sampler._pop_f)[:, 0]
    assert sorted(best.tolist()) == [0.0, 106.0, 107.0, 108.0, 109.0, 110.0]


@pytest.mark.parametrize("bad", [{"population_size": 1}, {"tournament_size": 0},
                                 {"crossover": "onepoint"}, {"mutation": "flip"},
                                 {"crossover_prob": 1.5}, {"mutation_eta": -1},
                                 {"elitism": 99}, {"mutation_prob": float("nan")}])
def test_bad_parameters(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        hp.GeneticSampler(**bad)
    with pytest.raises(TypeError, match="population_size"):
        hp.GeneticSampler(population_size=2.5)


def test_pickle_drops_the_cache():
    sampler = hp.GeneticSampler(population_size=4, seed=1)
    study = hp.Study(float_space(2), sampler=sampler)
    run(study, 20, lambda t: t.params["x0"])
    clone = pickle.loads(pickle.dumps(sampler))
    assert clone._cursor == 0 and clone.seed == 1
    assert clone.sample(study, 20) == sampler.sample(study, 20)


# ---------------------------------------------------------------------------------------
# multi-objective
# ---------------------------------------------------------------------------------------
def zdt1(x):
    x = np.asarray(x)
    g = 1 + 9 * x[1:].mean()
    return float(x[0]), float(g * (1 - np.sqrt(x[0] / g)))


def hv2(F, ref=(1.1, 1.1)):
    F = F[(F[:, 0] < ref[0]) & (F[:, 1] < ref[1])]
    F = F[nondominated_sort(F) == 0]
    F = F[np.argsort(F[:, 0])]
    edges = np.r_[F[1:, 0], ref[0]]
    return float(np.sum((edges - F[:, 0]) * (ref[1] - F[:, 1])))


def test_nsga2_on_zdt1_beats_random_and_best_trials_is_the_front():
    sp = float_space(6, 0.0, 1.0)
    obj = lambda t: zdt1(vec(t.params, 6))
    hv = {}
    for name, sampler in (("nsga2", hp.GeneticSampler(population_size=40, seed=0)),
                          ("random", hp.RandomSampler(seed=0))):
        s = hp.Study(sp, sampler=sampler, directions=["minimize", "minimize"])
        run(s, 1200, obj)
        F = np.array([t.values for t in s.completed_trials()])
        front = np.array([t.values for t in s.best_trials])
        assert np.array_equal(np.sort(front, 0), np.sort(F[nondominated_sort(F) == 0], 0))
        hv[name] = hv2(F)
    assert hv["nsga2"] > hv["random"] + 0.1


def test_mixed_directions_and_three_objectives():
    sp = float_space(3, 0.0, 1.0)
    s = hp.Study(sp, sampler=hp.GeneticSampler(population_size=10, seed=1),
                 directions=["minimize", "maximize", "minimize"])
    run(s, 100, lambda t: (t.params["x0"], t.params["x0"] + t.params["x1"], t.params["x2"]))
    assert s.sampler.generation >= 5
    Y = np.array([t.values for t in s.completed_trials()]) * [1, -1, 1]
    pareto = {t.number for t in s.best_trials}
    assert pareto == {t.number for t, r in zip(s.completed_trials(), nondominated_sort(Y))
                      if r == 0}


def test_single_objective_samplers_refuse_multi_objective_studies():
    class OnlyOne(BaseSampler):
        def sample(self, study, number):
            return study.space.decode_random(np.full(len(study.space), 0.5))

    with pytest.raises(ValueError, match="single-objective"):
        hp.Study(float_space(2), sampler=OnlyOne(seed=0), directions=["minimize", "minimize"])
    assert hp.GeneticSampler.supports_multi_objective


# ---------------------------------------------------------------------------------------
def test_beats_random_search_on_rastrigin():
    d = 6
    sp = float_space(d)
    obj = lambda t: rastrigin(vec(t.params, d))
    wins = 0
    for seed in range(3):
        ga = hp.Study(sp, sampler=hp.GeneticSampler(seed=seed))
        rs = hp.Study(sp, sampler=hp.RandomSampler(seed=seed))
        run(ga, 400, obj)
        run(rs, 400, obj)
        wins += ga.best_value < rs.best_value
    assert wins == 3
