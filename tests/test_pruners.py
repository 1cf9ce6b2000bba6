"""Pruners: fold over the stored reports, integration with Study, resume, budgeted runs."""
from __future__ import annotations

import math

import numpy as np
import pytest

import hpcore as hp
from hpcore.kernels import make_rung_book
from hpcore.pruners import run_budgeted
from hpcore.pruners.median import MedianPruner

from test_kernels_halving import _info, random_stream, reference


class FakeStudy:
    """Just what a pruner reads: directions and reports_since."""

    def __init__(self, direction="minimize"):
        self.directions = [direction]
        self.log: list[tuple[int, int, float]] = []

    def reports_since(self, cursor):
        return self.log[cursor:], len(self.log)


PRUNERS = [
    ("asha", lambda: hp.ASHA(1, 27, 3), {}),
    ("sh", lambda: hp.SuccessiveHalving(1, 27, 3), {}),
    ("hyperband", lambda: hp.Hyperband(1, 27, 3, asynchronous=False), {}),
    ("hyperband", lambda: hp.Hyperband(1, 27, 3), {"asynchronous": True}),
]


@pytest.mark.parametrize("kind,make,kw", PRUNERS)
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_pruner_fold_equals_reference(kind, make, kw, direction):
    rng = np.random.default_rng(11)
    reports = random_stream(rng, 600, 27, tie_levels=5)
    study = FakeStudy(direction)
    pruner = make()
    got = []
    for t, s, v in reports:
        study.log.append((t, s, v))
        got.append(pruner.on_report(study, t, s, v))
    book = make_rung_book(kind, 1, 27, 3, direction=direction, **kw)
    ref = reference(_info(kind, 1, 27, 3, direction == "maximize", book, None,
                          kw.get("asynchronous", False)), reports)
    np.testing.assert_array_equal(np.array(got, np.uint8), ref)


def test_pruner_catches_up_in_batches():
    # Reports of other processes arrive in bulk: the decisions do not change.
    rng = np.random.default_rng(5)
    reports = random_stream(rng, 500, 27)
    one, many = FakeStudy(), FakeStudy()
    p1, p2 = hp.Hyperband(1, 27, 3, asynchronous=False), hp.Hyperband(1, 27, 3, asynchronous=False)
    d1 = []
    for t, s, v in reports:
        one.log.append((t, s, v))
        d1.append(p1.on_report(one, t, s, v))
    d2 = []
    for i, (t, s, v) in enumerate(reports):
        many.log.append((t, s, v))
        if i % 7 == 6 or i == len(reports) - 1:  # ask only now and then
            d2.append((i, p2.on_report(many, t, s, v)))
    for i, d in d2:
        assert d == d1[i]
    assert all(p1.book.is_pruned(t) == p2.book.is_pruned(t) for t in range(500))
    assert sum(d1) > 0


def test_median_pruner_reference():
    rng = np.random.default_rng(3)
    reports = random_stream(rng, 300, 10, nan_p=0.05)
    for direction in ("minimize", "maximize"):
        study, pruner = FakeStudy(direction), MedianPruner(n_startup_trials=3, n_warmup_steps=2)
        sign = 1.0 if direction == "minimize" else -1.0
        at_step: dict[int, list[float]] = {}
        best: dict[int, float] = {}
        pruned: set[int] = set()
        for t, s, v in reports:
            study.log.append((t, s, v))
            got = pruner.on_report(study, t, s, v)
            x = sign * v
            b = best.get(t, math.nan)
            best[t] = x if math.isnan(b) or (not math.isnan(x) and x < b) else b
            others = at_step.setdefault(s, [])
            if (t not in pruned and s >= 2 and len(others) >= 3
                    and (math.isnan(best[t]) or best[t] > np.median(others))):
                pruned.add(t)
            if not math.isnan(x):
                others.append(x)
            assert got == (t in pruned)
        assert 0 < len(pruned) < 300


def test_bad_arguments():
    with pytest.raises(ValueError, match="eta"):
        hp.ASHA(1, 27, 1)
    with pytest.raises(ValueError, match="max_resource"):
        hp.Hyperband(10, 5)
    with pytest.raises(ValueError, match="n_configs"):
        hp.SuccessiveHalving(1, 27, 3, n_configs=5)
    with pytest.raises(ValueError, match="seed"):
        hp.Hyperband(1, 27, seed=-1)
    with pytest.raises(ValueError, match="n_startup_trials"):
        MedianPruner(n_startup_trials=-1)
    study = FakeStudy()
    study.directions = ["minimize", "maximize"]
    with pytest.raises(ValueError, match="single-objective"):
        hp.ASHA(1, 27).on_report(study, 0, 1, 0.0)


def test_hyperband_bracket_of():
    hb = hp.Hyperband(1, 81, 3)
    s = [hb.bracket_of(t) for t in range(143)]
    assert sorted(set(s)) == [0, 1, 2, 3, 4] and s.count(4) == 81 and s.count(0) == 5


# --------------------------------------------------------------------------- with Study
SPACE = {"x": hp.Float(0.0, 1.0), "y": hp.Float(0.0, 1.0)}


def curve(params, step):
    return (params["x"] - 0.3) ** 2 + 0.5 * (params["y"] - 0.6) ** 2 + 1.0 / step


def objective(trial):
    v = math.nan
    for step in range(1, 28):
        v = curve(trial.params, step)
        trial.report(step, v)
        if trial.should_prune():
            raise hp.TrialPruned()
    return v


@pytest.mark.parametrize("make", [lambda: hp.ASHA(1, 27, 3), lambda: hp.SuccessiveHalving(1, 27, 3),
                                  lambda: hp.Hyperband(1, 27, 3),
                                  lambda: hp.Hyperband(1, 27, 3, asynchronous=False),
                                  lambda: MedianPruner()])
def test_study_stores_pruned_trials(make):
    study = hp.Study(SPACE, sampler=hp.RandomSampler(seed=1), pruner=make())
    study.optimize(objective, n_trials=60)
    trials = study.trials
    pruned = [t for t in trials if t.state == hp.TrialState.PRUNED]
    done = [t for t in trials if t.state == hp.TrialState.COMPLETE]
    assert pruned and done and len(pruned) + len(done) == 60
    for t in pruned:
        last = max(t.intermediate_values)
        assert last < 27
        assert t.values == (t.intermediate_values[last],)
        for step, v in t.intermediate_values.items():
            assert v == pytest.approx(curve(t.params, step))
    for t in done:
        assert len(t.intermediate_values) == 27
    # the completed best beats most pruned trials
    assert study.best_value <= np.median([t.values[0] for t in pruned])


def _states(study):
    return [(t.number, t.state) for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.parametrize("make", [lambda: hp.Hyperband(1, 27, 3), lambda: hp.ASHA(1, 27, 3),
                                  lambda: hp.Hyperband(1, 27, 3, asynchronous=False),
                                  lambda: hp.SuccessiveHalving(1, 27, 3)])
def test_resumed_study_keeps_its_rungs(tmp_path, make):
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    whole = hp.Study(SPACE, sampler=hp.RandomSampler(seed=4), pruner=make())
    whole.optimize(objective, n_trials=70)
    first = hp.Study(SPACE, sampler=hp.RandomSampler(seed=4), pruner=make(), storage=url, name="r")
    first.optimize(objective, n_trials=35)
    del first
    resumed = hp.load_study("r", url, sampler=hp.RandomSampler(seed=4), pruner=make())
    resumed.optimize(objective, n_trials=35)
    assert _states(resumed) == _states(whole)
    assert sum(s == hp.TrialState.PRUNED for _, s in _states(whole)) > 10


def test_two_processes_share_rungs(tmp_path):
    # Two Study objects on one SQLite file (as two processes would be), trials alternating:
    # each pruner sees the other's reports, so decisions equal a single stream's.
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = hp.Study(SPACE, sampler=hp.RandomSampler(seed=2), pruner=hp.ASHA(1, 27, 3), storage=url,
                 name="s")
    b = hp.load_study("s", url, sampler=hp.RandomSampler(seed=2), pruner=hp.ASHA(1, 27, 3))
    ref = hp.Study(SPACE, sampler=hp.RandomSampler(seed=2), pruner=hp.ASHA(1, 27, 3))
    for i in range(40):
        (a if i % 2 else b).optimize(objective, n_trials=1)
    ref.optimize(objective, n_trials=40)
    assert _states(a) == _states(ref)


def test_any_sampler_with_any_pruner():
    for sampler in (hp.QMCSampler(seed=0), hp.GridSampler({"x": [0.1, 0.3, 0.5, 0.9],
                                                           "y": [0.2, 0.6]})):
        study = hp.Study(SPACE, sampler=sampler, pruner=hp.Hyperband(1, 27, 3))
        study.optimize(objective, n_trials=8)
        assert len(study.trials) == 8


def test_run_budgeted_successive_halving_and_hyperband():
    calls = []

    def budgeted(trial):
        calls.append((trial.number, trial.budget))
        return curve(trial.params, trial.budget)

    study = hp.Study(SPACE, sampler=hp.RandomSampler(seed=0))
    runs = run_budgeted(study, budgeted, min_resource=1, max_resource=27, eta=3, hyperband=False)
    assert len(runs) == 1 and [len(r) for r in runs[0]["trials"]] == [27, 9, 3, 1]
    by_number = {t.number: t for t in study.trials}
    assert [b for _, b in calls] == [1] * 27 + [3] * 9 + [9] * 3 + [27]
    for i in range(3):  # the promoted are the best of their rung, same params
        rung = runs[0]["trials"][i]
        vals = np.array([by_number[n].values[0] for n in rung])
        keep = [rung[j] for j in np.argsort(vals, kind="stable")[:len(runs[0]["trials"][i + 1])]]
        nxt = runs[0]["trials"][i + 1]
        assert [by_number[n].params for n in nxt] == [by_number[n].params for n in keep]
        assert [by_number[n].user_attrs["config"] for n in nxt] == \
            [by_number[n].user_attrs["config"] for n in keep]
    assert by_number[runs[0]["best"]].user_attrs["budget"] == 27
    assert isinstance(study.sampler, hp.RandomSampler)  # restored

    study = hp.Study(SPACE, sampler=hp.RandomSampler(seed=0), direction="maximize")
    runs = run_budgeted(study, lambda t: -curve(t.params, t.budget), min_resource=1,
                        max_resource=9, eta=3)
    assert [r["s"] for r in runs] == [2, 1, 0]
    assert [[len(x) for x in r["trials"]] for r in runs] == [[9, 3, 1], [5, 1], [3]]
    assert len(study.trials) == 9 + 3 + 1 + 5 + 1 + 3


def test_run_budgeted_failures_rank_last():
    def flaky(trial):
        if trial.params["x"] < 0.5:
            raise RuntimeError("boom")
        return curve(trial.params, trial.budget)

    study = hp.Study(SPACE, sampler=hp.RandomSampler(seed=3))
    runs = run_budgeted(study, flaky, min_resource=1, max_resource=9, eta=3, hyperband=False)
    by_number = {t.number: t for t in study.trials}
    for n in runs[0]["trials"][1]:
        assert by_number[n].params["x"] >= 0.5 or all(
            by_number[m].state == hp.TrialState.FAIL for m in runs[0]["trials"][0]
            if by_number[m].params["x"] >= 0.5)
    with pytest.raises(ValueError, match="n_iterations"):
        run_budgeted(study, flaky, min_resource=1, max_resource=9, n_iterations=0)


@pytest.mark.slow
def test_pruning_with_process_pool():
    # Workers report to the parent, whose pruner folds the shared report stream.
    study = hp.Study(SPACE, sampler=hp.RandomSampler(seed=5), pruner=hp.ASHA(1, 27, 3))
    study.optimize(objective, n_trials=16, n_jobs=2)
    states = [t.state for t in study.trials]
    assert len(states) == 16 and hp.TrialState.PRUNED in states
    for t in study.trials:
        if t.state == hp.TrialState.PRUNED:
            assert t.values == (t.intermediate_values[max(t.intermediate_values)],)
