"""A resumed study runs the same algorithm: stored sampler/pruner (class + constructor
arguments as JSON), rebuilt by load_study, a warning when the caller passes others;
the retry queue through ``tell(..., retry=True)``."""
import warnings

import pytest

import hpcore as hp
from hpcore import TrialState
from hpcore._persist import from_config, to_config
from hpcore.pruners.base import BasePruner
from hpcore.samplers.base import BaseSampler

SAMPLERS = [hp.RandomSampler(seed=3), hp.QMCSampler(method="halton", seed=1, block=64),
            hp.GridSampler({"x": [0.1, 0.2]}, seed=4, shuffle=False),
            hp.BayesSampler(n_startup_trials=3, seed=2, min_points=4, kernel="rbf"),
            hp.GeneticSampler(20, elitism=3, crossover="blend", seed=1)]
PRUNERS = [hp.NopPruner(), hp.MedianPruner(3, 2), hp.SuccessiveHalving(1, 27, 3),
           hp.Hyperband(1, 27, 3, asynchronous=False, seed=5), hp.ASHA(1, 9, 3)]


@pytest.mark.parametrize("obj", SAMPLERS + PRUNERS, ids=lambda o: type(o).__name__)
def test_every_sampler_and_pruner_round_trips(obj):
    base = BaseSampler if isinstance(obj, BaseSampler) else BasePruner
    cfg = to_config(obj)
    again = from_config(cfg, base)
    assert type(again) is type(obj) and to_config(again) == cfg


def test_load_study_rebuilds_sampler_and_pruner(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = hp.Study({"x": hp.Float(0, 1)}, sampler=hp.BayesSampler(n_startup_trials=3, seed=7),
                     pruner=hp.ASHA(1, 9, 3), storage=url, name="r")
    study.optimize(lambda t: t.params["x"], n_trials=2)
    study.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = hp.load_study("r", url)
    assert isinstance(again.sampler, hp.BayesSampler) and again.sampler.seed == 7
    assert again.sampler.n_startup_trials == 3
    assert isinstance(again.pruner, hp.ASHA) and again.pruner.max_resource == 9
    # the resumed study proposes what the original would have
    a = again.ask()
    b = hp.Study({"x": hp.Float(0, 1)}, sampler=hp.BayesSampler(n_startup_trials=3, seed=7))
    b.optimize(lambda t: t.params["x"], n_trials=2)
    assert b.ask().params == a.params


def test_a_different_sampler_is_used_with_a_warning(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    hp.Study({"x": hp.Float(0, 1)}, sampler=hp.RandomSampler(seed=1), storage=url, name="w")
    with pytest.warns(UserWarning, match="created with sampler RandomSampler.*seed=1.*QMCSampler"):
        s = hp.load_study("w", url, sampler=hp.QMCSampler(seed=2))
    assert isinstance(s.sampler, hp.QMCSampler)
    with warnings.catch_warnings():            # the same one again: no warning
        warnings.simplefilter("error")
        hp.load_study("w", url, sampler=hp.RandomSampler(seed=1))


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_tell_retry_requeues_once_with_links(tmp_path, storage):
    st = hp.InMemoryStorage() if storage == "memory" else f"sqlite:///{tmp_path / 'q.db'}"
    study = hp.Study({"x": hp.Float(0, 1)}, storage=st, name="q", retries=1)
    t0 = study.ask()
    study.tell(t0, state=TrialState.FAIL, error="worker died", retry=True)
    t1 = study.ask()                      # the queued configuration comes first
    assert t1.params == t0.params
    study.tell(t1, state=TrialState.FAIL, error="worker died", retry=True)
    t2 = study.ask()                      # attempt 1 == retries: not queued again
    assert t2.params != t0.params
    trials = study.trials
    assert trials[1].system_attrs == {"retry_of": 0, "attempt": 1}
    assert trials[0].system_attrs["retried_by"] == 1
    assert "retried_by" not in trials[1].system_attrs
    study.close()


def test_retries_is_validated():
    with pytest.raises(ValueError, match="retries"):
        hp.Study({"x": hp.Float(0, 1)}, retries=-1)
    with pytest.raises(ValueError, match="grace_period"):
        hp.SQLiteStorage(":memory:", heartbeat_interval=5.0, grace_period=1.0)
