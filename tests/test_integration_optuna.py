"""The Optuna adapter: seeds, pending trials, incremental reads, conversions, pruners.

(Optuna's own sampler test classes run in ``test_integration_optuna_suites.py``.)
"""
from __future__ import annotations

import math
import subprocess
import sys

import pytest

optuna = pytest.importorskip("optuna")

import hpcore as hp  # noqa: E402
from hpcore.integrations.optuna import (RELATIVE_PARAMS_KEY, as_optuna_pruner,  # noqa: E402
                                        as_optuna_sampler, to_hpcore_distribution,
                                        to_hpcore_space, to_optuna_distribution)

optuna.logging.set_verbosity(optuna.logging.WARNING)
FD, ID, CD = (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution,
              optuna.distributions.CategoricalDistribution)


def objective(t):
    x = t.suggest_float("x", -5.0, 5.0)
    lr = t.suggest_float("lr", 1e-4, 1.0, log=True)
    n = t.suggest_int("n", 1, 64, log=True)
    k = t.suggest_int("k", 0, 10, step=2)
    c = t.suggest_categorical("c", ["a", "b", "c"])
    return (x - 1.0) ** 2 + (math.log10(lr) + 2) ** 2 + 0.01 * n + 0.1 * k + (c != "b")


def make(kind, seed=0):
    return {
        "bayes": lambda: hp.BayesSampler(n_startup_trials=4, seed=seed),
        "genetic": lambda: hp.GeneticSampler(population_size=4, seed=seed),
        "qmc": lambda: hp.QMCSampler(seed=seed),
        "random": lambda: hp.RandomSampler(seed=seed),
    }[kind]()


def run(kind, seed, n_trials=12, reseed=False):
    s = as_optuna_sampler(make(kind, seed))
    if reseed:
        s.reseed_rng()
    study = optuna.create_study(sampler=s)
    study.optimize(objective, n_trials=n_trials)
    return study, s


# ------------------------------------------------------------------ samplers
@pytest.mark.parametrize("kind", ["bayes", "genetic", "qmc", "random"])
def test_same_seed_same_trials_other_seed_other_trials(kind):
    a, sa = run(kind, 3)
    b, _ = run(kind, 3, reseed=True)     # reseed_rng keeps the seeded sequence
    c, _ = run(kind, 4)
    pa = [t.params for t in a.trials]
    assert pa == [t.params for t in b.trials]
    assert pa != [t.params for t in c.trials]
    # relative sampling took over after the first trial (the view saw the trials)
    assert sa._view is not None and len(sa._view.completed_trials()) == 11
    assert all(RELATIVE_PARAMS_KEY + ":0" in t.system_attrs for t in a.trials[1:])


def test_bayes_relative_params_come_from_the_gp():
    hs = hp.BayesSampler(n_startup_trials=4, seed=0)
    study = optuna.create_study(sampler=as_optuna_sampler(hs))
    study.optimize(objective, n_trials=30)
    # the last suggestion was fitted on the COMPLETE trials, by their Optuna numbers
    assert hs.last_fit_numbers == list(range(29))
    rand = optuna.create_study(sampler=as_optuna_sampler(hp.RandomSampler(seed=0)))
    rand.optimize(objective, n_trials=30)
    assert study.best_value < 0.1 < rand.best_value      # the optimum is 0.01


def test_genetic_multi_objective_breeds_in_optuna():
    hs = hp.GeneticSampler(population_size=4, seed=0)
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=as_optuna_sampler(hs))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1 - t.suggest_float("x", 0, 1) ** 0.5
                              + t.suggest_float("y", 0, 1)), n_trials=30)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert hs.generation >= 3


def test_bayes_refuses_multi_objective():
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=as_optuna_sampler(hp.BayesSampler(seed=0)))
    with pytest.raises(ValueError, match="single-objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)


def test_running_trials_are_pending_with_their_relative_params():
    hs = hp.BayesSampler(n_startup_trials=3, seed=0)
    s = as_optuna_sampler(hs)
    study = optuna.create_study(sampler=s)
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=5)
    t1 = study.ask()
    t1.suggest_float("x", 0, 1)            # relative params drawn for x and y; only x suggested
    rel = t1._relative_params
    assert set(rel) == {"x", "y"}
    t2 = study.ask()
    t2.suggest_float("x", 0, 1)
    pending = s._view.running_trials()
    assert [p.number for p in pending] == [t1.number]
    assert pending[0].params == rel       # y known from the stored relative params
    assert t2._relative_params != rel     # the fantasy moved the second proposal


def test_each_finished_trial_is_converted_once():
    s = as_optuna_sampler(hp.RandomSampler(seed=0))
    study = optuna.create_study(sampler=s)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=60)
    # trials 1..59 read the study (trial 0 had no search space yet): by the last one the
    # 59 finished trials were each converted exactly once, not once per suggestion
    assert s._view.n_converted == 59


def test_adapters_pickle_and_resume_the_same_sequence():
    import pickle

    a, sa = run("genetic", 5, n_trials=12)
    sb = pickle.loads(pickle.dumps(sa))     # caches dropped, rebuilt from the study
    pb = pickle.loads(pickle.dumps(as_optuna_pruner(hp.ASHA(1, 9))))
    assert sb._view is None and isinstance(pb.hp_pruner, hp.ASHA)
    b = optuna.create_study(sampler=sb)
    b.optimize(objective, n_trials=12)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_failed_and_nan_trials_are_not_observations():
    s = as_optuna_sampler(hp.BayesSampler(n_startup_trials=2, seed=0))
    study = optuna.create_study(sampler=s)

    def obj(t):
        x = t.suggest_float("x", 0, 1)
        if t.number % 3 == 2:
            return float("nan")
        return x

    study.optimize(obj, n_trials=12)
    done = s._view.completed_trials()
    assert [t.number for t in done] == [t.number for t in study.trials[:-1]
                                        if t.state == optuna.trial.TrialState.COMPLETE]


# ------------------------------------------------------------------ conversions
@pytest.mark.parametrize("d", [FD(-1.0, 2.0), FD(1e-5, 1.0, log=True), FD(0.0, 1.0, step=0.25),
                               ID(0, 10), ID(1, 100, log=True), ID(-4, 8, step=4),
                               CD(("a", 1, None, True))])
def test_distributions_round_trip(d):
    h = to_hpcore_distribution(d, "p")
    assert to_optuna_distribution(h) == d


def test_conversion_errors_name_the_parameter():
    with pytest.raises(ValueError, match="'lr'"):
        to_hpcore_space({"lr": FD(1.0, 1.0)})
    with pytest.raises(TypeError, match="'u'"):
        to_hpcore_space({"u": "not a distribution"})
    cond = hp.Space({"a": hp.Categorical(["x", "y"]), "b": hp.Float(0, 1, condition={"a": "x"})})
    with pytest.raises(ValueError, match="'b'"):
        to_optuna_distribution(cond["b"])
    with pytest.raises(TypeError, match="hpcore sampler"):
        as_optuna_sampler(optuna.samplers.RandomSampler())
    with pytest.raises(TypeError, match="hpcore pruner"):
        as_optuna_pruner(optuna.pruners.MedianPruner())


def test_optuna_stays_optional():
    code = ("import sys; sys.modules['optuna'] = None\n"
            "import hpcore, hpcore.integrations\n"
            "assert 'optuna' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "try:\n    import hpcore.integrations.optuna\nexcept ImportError as e:\n"
            "    assert 'pip install' in str(e) and 'optuna' in str(e), e\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


# ------------------------------------------------------------------ pruners
def curves_objective(curves, pruned_at):
    def obj(t):
        t.suggest_float("x", 0, 1)
        for step, v in enumerate(curves[t.number], start=1):
            t.report(v, step)
            if t.should_prune():
                pruned_at[t.number] = step
                raise optuna.TrialPruned()
        return curves[t.number][-1]
    return obj


def run_pruner(pruner, curves, direction="minimize"):
    pruned_at: dict[int, int] = {}
    study = optuna.create_study(direction=direction, pruner=as_optuna_pruner(pruner),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(curves_objective(curves, pruned_at), n_trials=len(curves))
    return pruned_at, study


def test_asha_hand_computed():
    # ASHA(1, 9, eta=3): rungs at steps 1, 3, 9; a trial entering a rung holding `count`
    # results goes on iff it ranks in the top max(1, count // 3).
    curves = [[5] * 9, [3] * 9, [7] * 9, [4] * 9, [1] * 9, [2] * 9]
    pruned_at, study = run_pruner(hp.ASHA(1, 9, eta=3), curves)
    # t0 alone; t1 best of 2 at rung 1; t2 (7) 3rd of 3 at rung 1 -> stop at 1;
    # t3 (4) 2nd of 4, top 1 -> stop at 1; t4 (1) first everywhere; t5 (2): rung 1 2nd of 6
    # (top 2) goes on, rung 3 holds 5, 3, 1, 2: 2nd of 4, top 1 -> stop at 3.
    assert pruned_at == {2: 1, 3: 1, 5: 3}
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED", "COMPLETE", "PRUNED"]


def test_median_hand_computed_maximize():
    # MedianPruner(n_startup_trials=2): at each step, prune when the trial's best so far is
    # worse than the median of the values reported before at that step (>= 2 of them).
    curves = [[1, 2, 3], [3, 4, 5], [1, 1, 1], [2, 3, 6]]
    pruned_at, _ = run_pruner(hp.MedianPruner(n_startup_trials=2), curves, "maximize")
    # t2 at step 1: best 1 < median(1, 3) = 2 -> stop.  t3: step 1: 2 vs median(1, 3, 1) = 1
    # goes on; step 2: best 3 vs median(2, 4) = 3, not worse; step 3: 6 vs 4: goes on.
    assert pruned_at == {2: 1}


@pytest.mark.parametrize("make_pruner", [lambda: hp.SuccessiveHalving(1, 9, eta=3),
                                         lambda: hp.Hyperband(1, 9, eta=3),
                                         lambda: hp.ASHA(1, 27, eta=3)])
def test_pruner_decisions_match_an_hpcore_study(make_pruner):
    rng = __import__("numpy").random.default_rng(0)
    curves = [list(rng.uniform(0, 1) + rng.uniform(0, 1, 27).cumsum()[::-1] / 27)
              for _ in range(40)]
    pruned_optuna, _ = run_pruner(make_pruner(), curves)
    native = hp.Study({"x": hp.Float(0, 1)}, pruner=make_pruner(), seed=0)
    pruned_native = {}
    for i, curve in enumerate(curves):
        trial = native.ask()
        for step, v in enumerate(curve, start=1):
            trial.report(step, v)
            if trial.should_prune():
                pruned_native[i] = step
                native.tell(trial, state=hp.TrialState.PRUNED)
                break
        else:
            native.tell(trial, curve[-1])
    assert pruned_optuna == pruned_native
    assert 0 < len(pruned_native) < len(curves)


def test_pruner_sees_other_trials_reports():
    # two trials interleaved through ask/tell: the second's verdict counts the first's
    # reports although the first never called should_prune at that step
    study = optuna.create_study(pruner=as_optuna_pruner(hp.ASHA(1, 3, eta=3)))
    a, b = study.ask(), study.ask()
    a.report(0.1, 1)
    b.report(0.5, 1)
    assert b.should_prune()       # rung 1 holds 0.1 and 0.5: b is 2nd, top max(1, 2 // 3) = 1
    assert not a.should_prune()
