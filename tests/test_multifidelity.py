"""Model-based multi-fidelity: samplers fit on the highest rung with enough points (BOHB)."""
import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

import hpcore as hp
from hpcore.pruners.median import MedianPruner
from hpcore.samplers._fidelity import (RungCollector, bohb_training_set, random_pick,
                                       rung_resources, rung_values)
from hpcore.samplers.bayes import BayesSampler
from hpcore.samplers.genetic import GeneticSampler
from hpcore.trial import TrialState

SPACE2 = hp.Space({"x": hp.Float(-1, 1), "y": hp.Float(-1, 1)})
SPACE5 = hp.Space({f"x{i}": hp.Float(-1, 1) for i in range(5)})


def _f(p):
    return sum((v - 0.2) ** 2 for v in p.values())


def multi_fidelity_objective(max_step, c=1.0):
    """Value at step s is f(x) + c / s: lower budgets are biased, ranks are kept."""
    def objective(trial):
        f = _f(trial.params)
        v = math.nan
        for s in range(1, max_step + 1):
            v = f + c / s
            trial.report(s, v)
            if trial.should_prune():
                raise hp.TrialPruned()
        return v
    return objective


def _ref_rung_value(iv, r):
    """Reference: the value at the first step >= r, or None."""
    steps = [s for s in sorted(iv) if s >= r]
    return iv[steps[0]] if steps else None


def test_rung_values_hand_computed():
    iv = {1: 5.0, 2: 4.0, 4: 3.0, 9: 2.0, 10: 1.0}
    assert rung_values(iv, [1, 3, 9, 27]) == [5.0, 3.0, 2.0, None]
    assert rung_values({10: 7.0}, [1, 3, 9]) == [7.0, 7.0, 7.0]   # a report can enter several
    assert rung_values({2: 1.0}, [1, 3, 9]) == [1.0, None, None]
    assert rung_values({}, [1, 3]) == [None, None]
    # non-integer resources, as rung_levels gives for max/min not a power of eta
    assert rung_values({3: 1.0, 4: 2.0}, [10 / 3, 10.0]) == [2.0, None]


def test_rung_resources():
    assert rung_resources(hp.Hyperband(1, 27, 3)) == [1.0, 3.0, 9.0, 27.0]
    assert rung_resources(hp.ASHA(1, 9, 3)) == [1.0, 3.0, 9.0]
    assert rung_resources(hp.SuccessiveHalving(2, 8, 2)) == [2.0, 4.0, 8.0]
    assert rung_resources(hp.NopPruner()) is None
    assert rung_resources(MedianPruner()) is None
    assert rung_resources(None) is None


def _trial(number, iv, x):
    return SimpleNamespace(number=number, params={"x": x}, intermediate_values=iv)


def test_collector_incremental_and_highest_rung_rule():
    enc = lambda t: np.array([t.params["x"]])                          # noqa: E731
    col = RungCollector([1, 3, 9], -1.0, enc)                          # maximize: sign -1
    finished = [_trial(0, {1: 1.0, 2: 2.0, 3: 3.0}, 0.1),
                _trial(4, {1: 0.5}, 0.2),
                _trial(2, {}, 0.3),                                    # never reported
                _trial(7, {1: 4.0, 5: 6.0, 9: 8.0}, 0.4)]
    col.update(finished[:2])
    assert col.counts() == [2, 1, 0]
    col.update(finished)                                               # only the new ones
    assert col.n_seen == 4 and col.counts() == [3, 2, 1]
    X, y, nums = col.rung(1)
    assert nums == [0, 7] and X[:, 0].tolist() == [0.1, 0.4] and y.tolist() == [-3.0, -6.0]
    assert col.rung(2)[1].tolist() == [-8.0]
    assert len(col.finished_rows) == 4
    # BOHB: the highest rung with at least min_points observations
    assert col.highest_rung(1) == 2
    assert col.highest_rung(2) == 1
    assert col.highest_rung(3) == 0
    assert col.highest_rung(4) is None
    finished.append(_trial(9, {1: math.nan, 3: 1.0}, 0.5))           # NaN is not an observation
    col.update(finished)
    assert col.counts() == [3, 3, 1] and col.highest_rung(3) == 1


def test_collector_stopped_below_and_bohb_training_set():
    enc = lambda t: np.array([t.params["x"]])                          # noqa: E731
    col = RungCollector([1, 3, 9], 1.0, enc)
    P, C = TrialState.PRUNED, TrialState.COMPLETE
    fin = [SimpleNamespace(number=n, params={"x": x}, intermediate_values=iv, state=st)
           for n, iv, x, st in [(0, {1: 5.0, 3: 4.0, 9: 3.0}, 0.1, C),
                                (1, {1: 6.0}, 0.2, P),
                                (2, {1: 2.0, 3: 1.5}, 0.3, P),
                                (3, {1: 7.0}, 0.4, C),         # COMPLETE without rung 3
                                (4, {1: 4.0, 3: 3.5}, 0.5, P)]]
    col.update(fin)
    assert col.top_rungs == [3, 0, 1, 3, 1]
    assert col.stopped_below(1)[:, 0].tolist() == [0.2]
    assert col.stopped_below(2)[:, 0].tolist() == [0.2, 0.3, 0.5]
    assert col.stopped_below(0).shape == (0, 1)
    # rung 1 has 3 observations (trials 0, 2, 4): the model's budget; trial 1, pruned at
    # rung 0, joins it at rung 1's worst value; COMPLETE trial 3 is never imputed
    L, X, y = bohb_training_set(col, np.empty((0, 1)), np.empty(0), 3)
    assert L == 1 and X[:, 0].tolist() == [0.1, 0.3, 0.5, 0.2]
    assert y.tolist() == [4.0, 1.5, 3.5, 4.0]
    # the full budget once it has min_points COMPLETE values: every pruned trial imputed
    Xf, yf = np.array([[0.1], [0.4]]), np.array([3.0, 7.0])
    L, X, y = bohb_training_set(col, Xf, yf, 2)
    assert L == 2 and X[:, 0].tolist() == [0.1, 0.4, 0.2, 0.3, 0.5]
    assert y.tolist() == [3.0, 7.0, 7.0, 7.0, 7.0]
    assert bohb_training_set(col, Xf, yf, 6) is None


def test_random_pick_fraction_and_determinism():
    picks = [random_pick(7, n, 1 / 3) for n in range(3000)]
    assert abs(np.mean(picks) - 1 / 3) < 4 * math.sqrt(1 / 3 * 2 / 3 / 3000)
    assert picks == [random_pick(7, n, 1 / 3) for n in range(3000)]
    assert picks != [random_pick(8, n, 1 / 3) for n in range(3000)]
    assert not any(random_pick(7, n, 0.0) for n in range(100))
    assert all(random_pick(7, n, 1.0) for n in range(100))


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.3", True, math.nan])
def test_bayes_random_fraction_bad_input(bad):
    with pytest.raises(ValueError, match="random_fraction"):
        BayesSampler(random_fraction=bad)


def test_bayes_random_fraction_trials_are_random_sampler_configs():
    # random_fraction=1: after the start-up design every trial is RandomSampler's, with
    # the rung pruner; without a pruner the parameter changes nothing
    obj = multi_fidelity_objective(27)
    s1 = hp.Study(SPACE5, sampler=BayesSampler(seed=4, random_fraction=1.0, n_raw_samples=64,
                                               n_starts=2), pruner=hp.Hyperband(1, 27, 3))
    s1.optimize(obj, n_trials=30)
    rnd = hp.Study(SPACE5, sampler=hp.RandomSampler(seed=4))
    ref = [rnd.sampler.sample(rnd, n) for n in range(30)]
    match = [t.params == ref[t.number] for t in s1.trials]
    k = match.index(True)     # Sobol start-up until rung 0 holds d + 2 = 7 observations
    assert k == len(SPACE5.params) + 2 and all(match[k:])
    a = hp.Study(SPACE2, sampler=BayesSampler(seed=1, random_fraction=1.0, n_raw_samples=64,
                                              n_starts=2))
    b = hp.Study(SPACE2, sampler=BayesSampler(seed=1, random_fraction=0.0, n_raw_samples=64,
                                              n_starts=2))
    for s in (a, b):
        s.optimize(lambda t: _f(t.params), n_trials=14)
    assert _params(a) == _params(b)


def _expected_fit(study, resources, m):
    """Reference of BOHB's choice from the full trial list."""
    fin = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    n_complete = sum(t.state == TrialState.COMPLETE for t in fin)
    if n_complete >= m:
        return "complete", None
    for L in range(len(resources) - 1, -1, -1):
        nums = [t.number for t in fin
                if (v := _ref_rung_value(t.intermediate_values, resources[L])) is not None
                and math.isfinite(v)]
        if len(nums) >= m:
            return L, sorted(nums)
    return "startup", None


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_bayes_fits_on_highest_rung_with_d_plus_2_points(direction):
    # no random fraction: every trial after the start-up design is model-based
    sampler = BayesSampler(seed=3, n_raw_samples=128, n_starts=4, random_fraction=0.0)
    # synchronous cohorts: few trials reach the full budget early on
    pruner = hp.Hyperband(1, 27, 3, seed=0, asynchronous=False)
    study = hp.Study(SPACE5, sampler=sampler, pruner=pruner, direction=direction)
    sign = 1.0 if direction == "minimize" else -1.0
    obj = multi_fidelity_objective(27)
    m = len(SPACE5.params) + 2
    seen_rungs = set()
    for _ in range(30):
        expected = _expected_fit(study, pruner.levels, m)
        trial = study.ask()
        if expected[0] == "complete":
            assert sampler.last_fit_rung is None
            assert sorted(sampler.last_fit_numbers) == sorted(
                t.number for t in study.completed_trials())
        elif expected[0] == "startup":
            assert sampler.last_fit_rung is None and sampler.last_fit_numbers == []
        else:
            assert sampler.last_fit_rung == expected[0]
            assert sorted(sampler.last_fit_numbers) == expected[1]
            seen_rungs.add(expected[0])
        try:
            value = obj(_Signed(trial, sign))
        except hp.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    assert max(seen_rungs) >= 1                   # the model used promoted trials' values
    assert sampler.last_fit_rung is None          # then the full budget took over
    assert any(t.state == TrialState.PRUNED for t in study.trials)
    pickle.loads(pickle.dumps(sampler))           # caches are not pickled


class _Signed:
    """The objective seen through a sign (to run the same function maximized)."""

    def __init__(self, trial, sign):
        self._t, self._s = trial, sign
        self.params = trial.params

    def report(self, step, value):
        self._t.report(step, self._s * value)

    def should_prune(self):
        return self._t.should_prune()


def _params(study):
    return [t.params for t in study.trials]


def test_nop_pruner_changes_nothing():
    obj = multi_fidelity_objective(5)
    runs = []
    for mf in (True, False):
        s = hp.Study(SPACE2, sampler=BayesSampler(seed=5, multi_fidelity=mf, n_startup_trials=5,
                                                  n_raw_samples=128, n_starts=4))
        s.optimize(obj, n_trials=14)
        runs.append(_params(s))
    assert runs[0] == runs[1]
    runs = []
    for mf in (True, False):
        s = hp.Study(SPACE2, sampler=GeneticSampler(6, multi_fidelity=mf, seed=5),
                     pruner=MedianPruner())
        s.optimize(obj, n_trials=30)
        runs.append(_params(s))
    assert runs[0] == runs[1]


def test_feature_off_ignores_rungs():
    sampler = BayesSampler(seed=0, multi_fidelity=False, n_raw_samples=128, n_starts=4)
    study = hp.Study(SPACE2, sampler=sampler, pruner=hp.Hyperband(1, 27, 3))
    study.optimize(multi_fidelity_objective(27), n_trials=25)
    assert sampler.last_fit_rung is None


def test_genetic_ranks_parents_on_the_highest_rung():
    P = 8
    sampler = GeneticSampler(P, seed=2)
    pruner = hp.ASHA(1, 27, 3)
    study = hp.Study(SPACE2, sampler=sampler, pruner=pruner)
    obj = multi_fidelity_objective(27)
    m = len(SPACE2.params) + 2
    used = set()
    for _ in range(60):
        expected = _expected_fit(study, pruner.levels, m)
        trial = study.ask()
        if expected[0] not in ("complete", "startup") and trial.number >= P:
            assert sampler.last_fit_rung == expected[0]
            used.add(expected[0])
            # the breeding population: the best P trials on that rung
            L, n_obs, genes, _, _ = sampler._rung_pop
            vals = {t.number: _ref_rung_value(t.intermediate_values, pruner.levels[L])
                    for t in study.trials if t.number in expected[1]}
            best = sorted(vals, key=lambda k: (vals[k], k))[:P]
            xs = sorted(round((study.trials[k].params["x"] + 1) / 2, 9) for k in best)
            assert n_obs == len(expected[1])
            assert sorted(np.round(genes[:, 0], 9).tolist()) == xs
        elif expected[0] == "complete":
            assert sampler.last_fit_rung is None
        try:
            value = obj(trial)
        except hp.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    assert used


def test_bayes_with_hyperband_beats_random_with_hyperband():
    """End to end: prunes, and the rung-fitted GP finds better points than random
    search under the same pruner and number of trials (mean over seeds)."""
    space = hp.Space({"x": hp.Float(-1, 1), "y": hp.Float(-1, 1), "z": hp.Float(-1, 1)})

    def objective(trial):
        p = trial.params
        f = (p["x"] - 0.3) ** 2 + (p["y"] + 0.2) ** 2 + 0.5 * (p["z"] - 0.6) ** 2
        for s in range(1, 28):
            v = f + 1.0 / s
            trial.report(s, v)
            if trial.should_prune():
                raise hp.TrialPruned()
        return v

    best = {"bayes": [], "random": []}
    for seed in range(3):
        for name in best:
            sampler = (BayesSampler(seed=seed, n_raw_samples=128, n_starts=4) if name == "bayes"
                       else hp.RandomSampler(seed=seed))
            study = hp.Study(space, sampler=sampler, pruner=hp.Hyperband(1, 27, 3, seed=seed))
            study.optimize(objective, n_trials=40)
            assert any(t.state == TrialState.PRUNED for t in study.trials)
            best[name].append(study.best_value - 1.0 / 27)
    assert np.mean(best["bayes"]) < np.mean(best["random"])


def test_sqlite_storage_gives_the_same_trials(tmp_path):
    """Rung values come from stored reports: SQLite and memory give the same run."""
    runs = []
    for storage in (None, f"sqlite:///{tmp_path / 'mf.db'}"):
        sampler = BayesSampler(seed=3, n_raw_samples=128, n_starts=4)
        study = hp.Study(SPACE5, sampler=sampler, storage=storage,
                         pruner=hp.Hyperband(1, 27, 3, asynchronous=False))
        rungs = []
        study.optimize(multi_fidelity_objective(27), n_trials=14,
                       callbacks=[lambda s, t: rungs.append(sampler.last_fit_rung)])
        runs.append((_params(study), rungs))
    assert runs[0] == runs[1]
    assert any(r is not None for r in runs[0][1])
