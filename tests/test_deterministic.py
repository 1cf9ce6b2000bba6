"""Lagged (deterministic) parallel runs: optimize(..., deterministic=True, lag=q) gives
the same trials inline, with 2 and 4 process workers and on a 2-worker Dask cluster."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # workers import the objectives from here (spawn copies sys.path)
    sys.path.insert(0, str(HERE))

import _det_objectives as D  # noqa: E402

import hpcore as hp  # noqa: E402

LAG = 4
N_TRIALS = 20


def _samplers():
    return {"bayes": lambda: hp.BayesSampler(seed=3, n_startup_trials=5),
            "genetic": lambda: hp.GeneticSampler(population_size=6, seed=3)}


def _record(study: hp.Study) -> list[tuple]:
    return [(t.number, t.state.name, tuple(sorted(t.params.items())), t.values)
            for t in study.trials]


def _overlapped(study: hp.Study) -> bool:
    """Whether two trials ran at the same time (the run really was parallel)."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in study.trials)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


def _run(make_sampler, how, client=None, parallel=None, **kw) -> list[tuple]:
    study = hp.Study(D.space(), sampler=make_sampler())
    if how == "dask":
        kw["executor"] = hp.DaskExecutor(client)
    else:
        kw["n_jobs"] = how
    study.optimize(D.shuffled_quadratic, n_trials=N_TRIALS, **kw)
    if parallel is not None:
        parallel.append(_overlapped(study))
    return _record(study)


@pytest.mark.parametrize("name", ["bayes", "genetic"])
def test_same_trials_inline_2_4_processes_and_dask(name, dask_client):
    make = _samplers()[name]
    ref = _run(make, 1, lag=LAG)
    assert len(ref) == N_TRIALS and all(r[1] == "COMPLETE" for r in ref)
    assert len({r[2] for r in ref}) == N_TRIALS          # the sampler did search
    parallel: list[bool] = []
    for how in (2, 4, "dask"):
        got = _run(make, how, client=dask_client, parallel=parallel, lag=LAG)
        assert got == ref, f"{name}: {how} workers differ from the inline run"
    # the cluster's two workers were up from the start: its trials did overlap (process
    # pools start their workers during the run, so on a loaded machine they may not)
    assert parallel[-1], "the Dask run never ran two trials at once"


def test_without_the_mode_worker_counts_differ(dask_client):
    """The control: the same seeded BayesSampler study, deterministic=False, inline and
    on the 2-worker cluster, gives other trials (the test above could fail).  (Dask,
    not a process pool: its workers are up before the run, so two trials surely run at
    once; a pool's spawned workers can start so slowly on a loaded machine that one of
    them runs every trial.)"""
    make = _samplers()["bayes"]
    parallel: list[bool] = []
    assert _run(make, "dask", client=dask_client, parallel=parallel) != _run(make, 1)
    assert parallel == [True]


def test_default_lag_and_two_optimize_calls_continue_one_run():
    make = _samplers()["bayes"]
    ref = _run(make, 2, deterministic=True)        # default lag: n_jobs = 2
    study = hp.Study(D.space(), sampler=make())
    study.optimize(D.shuffled_quadratic, n_trials=8, lag=2)
    study.optimize(D.shuffled_quadratic, n_trials=N_TRIALS - 8, lag=2)
    assert _record(study) == ref


def test_the_sampler_sees_the_lagged_history_and_asks_wait_for_it():
    sampler = D.RecordingSampler(seed=1)
    study = hp.Study(D.space(), sampler=sampler)
    study.optimize(D.shuffled_quadratic, n_trials=16, n_jobs=2, lag=1)
    assert sorted(sampler.seen) == list(range(16))
    for n, (completed, pending, really_running) in sampler.seen.items():
        assert completed == list(range(max(0, n - 1)))          # finished, number order
        assert pending == ([n - 1] if n >= 1 else [])            # the window, as pending
        assert all(k >= n - 1 for k in really_running)           # nothing older still runs
    assert study.sampler is sampler                               # restored after the run
    assert all(t.state == hp.TrialState.COMPLETE for t in study.trials)


def test_lag_zero_is_sequential():
    sampler = D.RecordingSampler(seed=2)
    study = hp.Study(D.space(), sampler=sampler)
    study.optimize(D.shuffled_quadratic, n_trials=6, n_jobs=2, lag=0)
    for n, (completed, pending, really_running) in sampler.seen.items():
        assert completed == list(range(n)) and pending == [] and really_running == []


def test_bad_arguments_name_the_parameter():
    study = hp.Study(D.space(), sampler=hp.RandomSampler(seed=0))
    with pytest.raises(ValueError, match="lag"):
        study.optimize(D.shuffled_quadratic, n_trials=1, lag=-1)
    with pytest.raises(TypeError, match="lag"):
        study.optimize(D.shuffled_quadratic, n_trials=1, lag=1.5)
    with pytest.raises(TypeError, match="deterministic"):
        study.optimize(D.shuffled_quadratic, n_trials=1, deterministic="yes")

    class Opaque:
        def run(self, study, objective, budget, callbacks, show_progress):  # pragma: no cover
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="lag"):
        study.optimize(D.shuffled_quadratic, n_trials=1, deterministic=True, executor=Opaque())
    assert study.trials == []


def test_a_pruner_warns_that_its_decisions_are_not_covered():
    study = hp.Study(D.space(), sampler=hp.RandomSampler(seed=0), pruner=hp.MedianPruner())
    with pytest.warns(UserWarning, match="pruning decisions"):
        study.optimize(D.shuffled_quadratic, n_trials=2, deterministic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hp.Study(D.space(), sampler=hp.RandomSampler(seed=0)).optimize(
            D.shuffled_quadratic, n_trials=2, deterministic=True)


@pytest.mark.slow
def test_bayes_past_100_observations_bounded_refits_and_cholesky_appends():
    """Beyond 100 observations BayesSampler refits every refit_every observations and
    extends its Cholesky factor in between: both schedules follow the lagged history."""
    def make():
        return hp.BayesSampler(seed=5, n_startup_trials=5, refit_every=3)

    def run(n_jobs):
        study = hp.Study(D.space(), sampler=make())
        study.optimize(D.shuffled_quadratic, n_trials=125, n_jobs=n_jobs, lag=2)
        return _record(study)

    assert run(2) == run(1)


def test_a_batch_ask_in_lagged_mode_goes_one_trial_at_a_time_within_the_lag():
    from hpcore._deterministic import _Gate, _LaggedStudy, LaggedView

    study = hp.Study(D.space(), sampler=hp.RandomSampler(seed=0))
    gate = _Gate(1, 0)
    proxy = _LaggedStudy(study, gate, LaggedView(study))
    batch = proxy.ask_batch(4)     # trial 0, then 1 (0 may run), then 2 must wait for 0
    assert [t.number for t in batch] == [0, 1]
    proxy.tell(batch[0], 1.0)
    assert [t.number for t in proxy.ask_batch(4)] == [2]
    with pytest.raises(ValueError, match="q"):
        proxy.ask_batch(0)
