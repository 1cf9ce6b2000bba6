"""Study.ask_batch / tell_batch, the storages' batch methods, sample_batch (issue 18)."""
from __future__ import annotations

import logging
import sqlite3
import time

import numpy as np
import pytest

import hpcore as hp
from hpcore.trial import TrialState


def _space():
    return hp.Space({
        "x": hp.Float(-5.0, 5.0),
        "lr": hp.Float(1e-5, 1e-1, log=True),
        "n": hp.Int(1, 8),
        "opt": hp.Categorical(["sgd", "adam"]),
        "m": hp.Float(0.0, 0.99, condition={"opt": "sgd"}),
    })


def _f(p):
    return (p["x"] - 1.0) ** 2 + np.log10(p["lr"]) ** 2 * 0.01 + 0.1 * p["n"]


@pytest.fixture(params=["memory", "sqlite"])
def storage(request, tmp_path):
    if request.param == "memory":
        return None
    return hp.SQLiteStorage(str(tmp_path / "s.db"))


def _commits(storage):
    """Count the BEGIN IMMEDIATE statements this thread's connection runs."""
    seen = []
    storage._conn().set_trace_callback(lambda sql: seen.append(sql)
                                       if sql.startswith("BEGIN IMMEDIATE") else None)
    return seen


def test_ask_batch_gives_q_distinct_running_trials(storage):
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=3), storage=storage)
    trials = st.ask_batch(7)
    assert [t.number for t in trials] == list(range(7))
    assert len({t.trial_id for t in trials}) == 7
    for t in trials:
        assert st.space.validate(t.params) == t.params
    running = {t.number: t for t in st.running_trials()}
    assert sorted(running) == list(range(7))
    for t in trials:
        assert running[t.number].params == t.params
        assert st.storage.get_trial(t.trial_id).state == TrialState.RUNNING
    st.close()


def test_random_batch_equals_sequential_by_number(storage):
    a = hp.Study(_space(), sampler=hp.RandomSampler(seed=11), storage=storage)
    b = hp.Study(_space(), sampler=hp.RandomSampler(seed=11))
    batch = a.ask_batch(5) + a.ask_batch(3)
    seq = [b.ask() for _ in range(8)]
    assert [t.params for t in batch] == [t.params for t in seq]
    a.close()


def test_tell_batch_finishes_all_and_matches_tell(storage):
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=storage)
    trials = st.ask_batch(6)
    vals = [_f(t.params) for t in trials]
    vals[2] = float("nan")                       # a bad value FAILs its trial only
    trials[4].report(1, 9.0)
    states = [None] * 6
    states[4] = TrialState.PRUNED
    out = st.tell_batch(trials, vals, states=states)
    assert [o.number for o in out] == [t.number for t in trials]
    assert [o.state for o in out] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL,
                                      TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert "non-finite" in out[2].error
    assert out[4].values == (9.0,)
    stored = {t.number: t for t in st.trials}
    for o in out:
        assert stored[o.number].state == o.state
        assert stored[o.number].values == o.values
    assert st.best_value == min(v for i, v in enumerate(vals) if i not in (2, 4))
    assert st.running_trials() == []
    st.close()


def test_sqlite_batch_is_one_transaction(tmp_path):
    s = hp.SQLiteStorage(str(tmp_path / "t.db"), heartbeat_interval=None)
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=s)
    st.ask()                                      # connection made, study set up
    seen = _commits(s)
    trials = st.ask_batch(8)
    assert len(seen) == 2                         # create the 8 trials; store 8 params
    seen.clear()
    st.tell_batch(trials, [_f(t.params) for t in trials])
    assert len(seen) == 1
    seen.clear()
    for _ in range(3):
        st.tell(st.ask(), 1.0)
    assert len(seen) == 9                         # per trial: create, params, finish


def test_sqlite_ask_batch_atomic_under_injected_failure(tmp_path):
    path = str(tmp_path / "a.db")
    s = hp.SQLiteStorage(path, heartbeat_interval=None)
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=s)
    st.tell(st.ask(), 1.0)
    con = sqlite3.connect(path)
    con.execute("CREATE TRIGGER boom BEFORE INSERT ON trials WHEN NEW.number = 3 "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    con.commit()
    with pytest.raises(sqlite3.DatabaseError, match="injected failure"):
        st.ask_batch(5)                           # numbers 1..5: the 3rd insert fails
    assert len(st.trials) == 1                    # nothing of the batch was created
    assert con.execute("SELECT n_trials FROM studies").fetchone()[0] == 1
    con.execute("DROP TRIGGER boom")
    con.commit()
    assert [t.number for t in st.ask_batch(2)] == [1, 2]


def test_sqlite_tell_batch_atomic_under_injected_failure(tmp_path):
    path = str(tmp_path / "b.db")
    s = hp.SQLiteStorage(path, heartbeat_interval=None)
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=s)
    trials = st.ask_batch(6)
    con = sqlite3.connect(path)
    con.execute("CREATE TRIGGER boom BEFORE UPDATE OF state ON trials WHEN NEW.number = 4 "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
    con.commit()
    with pytest.raises(sqlite3.DatabaseError, match="injected failure"):
        st.tell_batch(trials, [1.0] * 6)
    states = [r[0] for r in con.execute("SELECT state FROM trials ORDER BY number")]
    assert states == [int(TrialState.RUNNING)] * 6   # the first four were rolled back
    con.execute("DROP TRIGGER boom")
    con.commit()
    assert [o.state for o in st.tell_batch(trials, [1.0] * 6)] == [TrialState.COMPLETE] * 6


def test_tell_batch_refuses_finished_trial_and_stores_nothing(storage):
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=storage)
    trials = st.ask_batch(3)
    st.tell(trials[1], 2.0)
    with pytest.raises(ValueError, match="trial 1 is already finished"):
        st.tell_batch(trials, [1.0, 1.0, 1.0])
    assert sorted(t.number for t in st.running_trials()) == [0, 2]
    with pytest.raises(ValueError, match="trial 0 appears twice"):
        st.tell_batch([trials[0], trials[0]], [1.0, 1.0])
    assert sorted(t.number for t in st.running_trials()) == [0, 2]
    st.close()


def test_tell_batch_skips_trial_failed_as_stale(tmp_path, caplog):
    s = hp.SQLiteStorage(str(tmp_path / "c.db"), heartbeat_interval=None)
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=s, retries=0)
    trials = st.ask_batch(3)
    time.sleep(0.02)
    assert s.fail_stale_trials(st._study_id, 0.01) == [0, 1, 2]
    more = st.ask_batch(2)
    with caplog.at_level(logging.WARNING, logger="hpcore"):
        out = st.tell_batch(trials[1:] + more, [1.0, 2.0, 3.0, 4.0])
    assert "failed as stale" in caplog.text
    assert [o.state for o in out] == [TrialState.FAIL, TrialState.FAIL,
                                      TrialState.COMPLETE, TrialState.COMPLETE]
    assert out[0].error.startswith("stale: process gone")
    assert st.trials[3].values == (3.0,)


def test_ask_batch_takes_queued_first_and_once(storage):
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=storage)
    cfg = {"x": 0.5, "lr": 1e-3, "n": 2, "opt": "adam"}
    st.enqueue(cfg)
    st.enqueue(dict(cfg, x=0.25))
    trials = st.ask_batch(4)
    assert [t.params for t in trials[:2]] == [cfg, dict(cfg, x=0.25)]
    assert st.trials[0].system_attrs.get("enqueued") is True
    assert st.storage.n_queued(st._study_id) == 0
    assert st.trials[2].params == trials[2].params and trials[2].params != cfg
    st.close()


def test_ask_batch_retry_queue_and_budget(storage):
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=storage, retries=1)
    t = st.ask(budget=3.0)
    st.tell(t, state=TrialState.FAIL, error="worker lost", retry=True)
    batch = st.ask_batch(2, budget=3.0)
    assert batch[0].params == t.params and batch[0].budget == 3.0
    assert st.trials[1].system_attrs["retry_of"] == 0
    assert st.trials[0].system_attrs["retried_by"] == 1
    assert batch[1].budget == 3.0 and st.trials[2].system_attrs["budget"] == 3.0
    st.close()


def test_ask_batch_exhausted_grid_returns_fewer_then_raises(storage):
    space = hp.Space({"a": hp.Categorical([1, 2, 3])})
    st = hp.Study(space, sampler=hp.GridSampler(seed=0), storage=storage)
    first = st.ask_batch(5)
    assert sorted(t.params["a"] for t in first) == [1, 2, 3]
    assert len(st.trials) == 3                    # the two unfilled trials were discarded
    with pytest.raises(hp.StudyExhausted):
        st.ask_batch(2)
    assert len(st.running_trials()) == 3
    st.close()


def test_batch_errors_are_named():
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0))
    with pytest.raises(ValueError, match="q must be >= 1"):
        st.ask_batch(0)
    for bad in (2.5, "3", True, None):
        with pytest.raises(TypeError, match="q must be an int"):
            st.ask_batch(bad)
    with pytest.raises(ValueError, match="budget"):
        st.ask_batch(2, budget=-1.0)
    trials = st.ask_batch(2)
    with pytest.raises(ValueError, match="values must have one entry per trial"):
        st.tell_batch(trials, [1.0])
    with pytest.raises(ValueError, match="states must have one entry per trial"):
        st.tell_batch(trials, [1.0, 2.0], states=[None])
    with pytest.raises(TypeError, match="trial must be a Trial"):
        st.tell_batch(["a", "b"], [1.0, 2.0])
    assert st.tell_batch([], []) == []
    assert len(st.running_trials()) == 2          # nothing was told


def test_sampler_failure_in_batch_fails_sampled_and_requeues_taken(storage):
    class Boom(hp.RandomSampler):
        def sample_batch(self, study, numbers):
            raise RuntimeError("model blew up")

    st = hp.Study(_space(), sampler=Boom(seed=0), storage=storage)
    cfg = {"x": 0.5, "lr": 1e-3, "n": 2, "opt": "adam"}
    st.enqueue(cfg)
    with pytest.raises(RuntimeError, match="model blew up"):
        st.ask_batch(3)
    assert st.running_trials() == []
    errors = [t.error for t in st.trials]
    assert all(e and "sampler failed" in e for e in errors)
    assert st.storage.n_queued(st._study_id) == 1  # the enqueued configuration is back
    st.close()


def test_heartbeats_cover_the_batch(tmp_path):
    s = hp.SQLiteStorage(str(tmp_path / "h.db"), heartbeat_interval=30.0)
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=s)
    trials = st.ask_batch(4)
    assert set(st._heartbeat._owned) == {t.trial_id for t in trials}
    st.tell_batch(trials[:3], [1.0, 2.0, 3.0])
    assert set(st._heartbeat._owned) == {trials[3].trial_id}
    st.close()


def _prefilled(sampler, n, storage=None):
    st = hp.Study(_space(), sampler=sampler, storage=storage)
    for _ in range(n):
        t = st.ask()
        st.tell(t, _f(t.params))
    return st


def test_genetic_batch_equals_sequential_without_tells_between():
    a = _prefilled(hp.GeneticSampler(population_size=8, seed=5), 20)
    b = _prefilled(hp.GeneticSampler(population_size=8, seed=5), 20)
    batch = a.ask_batch(6)
    seq = [b.ask() for _ in range(6)]
    assert [t.params for t in batch] == [t.params for t in seq]
    assert a.sampler.generation >= 1 and all(t.number >= 8 for t in batch)   # bred, not start-up


@pytest.mark.parametrize("strategy", ["auto", "sequential", "pool"])
def test_bayes_batch_fits_and_keeps_points_apart(strategy):
    # the pool fits once per batch; sequential ("auto" up to 16) once per point
    sampler = hp.BayesSampler(seed=2, n_startup_trials=8, n_raw_samples=128, n_starts=4,
                              batch_strategy=strategy)
    st = _prefilled(sampler, 12)
    st.ask()                                      # running trial of "another worker"
    fits = []
    orig = sampler._fit
    sampler._fit = lambda *a, **k: fits.append(1) or orig(*a, **k)
    trials = st.ask_batch(5)
    assert len(fits) == (1 if strategy == "pool" else 5)
    U = np.array([st.space.encode(t.params) for t in st.running_trials()])
    U = np.where(np.isnan(U), 0.5, U)
    D = np.sqrt(((U[:, None] - U[None]) ** 2).sum(-1))[np.triu_indices(len(U), 1)]
    assert len(U) == 6 and D.min() > sampler.pending_radius
    for t in trials:
        assert st.space.validate(t.params) == t.params


def test_bayes_batch_during_startup_equals_sequential():
    a = _prefilled(hp.BayesSampler(seed=4, n_startup_trials=10), 3)
    b = _prefilled(hp.BayesSampler(seed=4, n_startup_trials=10), 3)
    assert [t.params for t in a.ask_batch(4)] == [b.ask().params for _ in range(4)]


def test_bayes_batch_strategy_is_validated():
    with pytest.raises(ValueError, match="batch_strategy"):
        hp.BayesSampler(batch_strategy="greedy")


def test_bayes_sequential_batch_maximizes_under_fantasies(monkeypatch):
    # "sequential": one acquisition maximization per point, each on the model with
    # the batch's earlier points appended as fantasies
    from hpcore.samplers import bayes

    sampler = hp.BayesSampler(seed=3, n_startup_trials=8, n_raw_samples=128, n_starts=4,
                              batch_strategy="sequential")
    st = _prefilled(sampler, 12)
    sizes = []
    orig = bayes.maximize_acquisition
    monkeypatch.setattr(bayes, "maximize_acquisition",
                        lambda model, **k: sizes.append(len(model.y)) or orig(model, **k))
    st.ask_batch(4)
    assert sizes == [12, 13, 14, 15]
    sizes.clear()
    sampler.batch_strategy = "pool"      # one maximization (the 4 above pending)
    st.ask_batch(5)
    assert sizes == [16]
    sizes.clear()
    sampler.batch_strategy = "auto"      # beyond 16: the pool
    st.ask_batch(17)
    assert sizes == [21]


def test_bayes_sequential_batch_equals_asks_without_tells():
    a = _prefilled(hp.BayesSampler(seed=6, n_startup_trials=8), 12)
    b = _prefilled(hp.BayesSampler(seed=6, n_startup_trials=8), 12)
    assert [t.params for t in a.ask_batch(4)] == [b.ask().params for _ in range(4)]


def test_bayes_startup_counts_started_trials():
    # 8 of 10 start-up trials finished: a batch of 8 gets the design's last 2 points
    # (Sobol points 8 and 9, as sequential asks would) and 6 from one GP fit
    sampler = hp.BayesSampler(seed=4, n_startup_trials=10, n_raw_samples=128, n_starts=4)
    st = _prefilled(sampler, 8)
    fits = []
    orig = sampler._fit
    sampler._fit = lambda *a, **k: fits.append(1) or orig(*a, **k)
    trials = st.ask_batch(8)
    design = hp.QMCSampler("sobol", seed=4)
    assert [t.params for t in trials[:2]] == [design.sample(st, n) for n in (8, 9)]
    assert len(fits) == 6
    assert all(t.params != design.sample(st, t.number) for t in trials[2:])
    U = np.array([st.space.encode(t.params) for t in st.running_trials()])
    U = np.where(np.isnan(U), 0.5, U)
    D = np.sqrt(((U[:, None] - U[None]) ** 2).sum(-1))[np.triu_indices(len(U), 1)]
    assert D.min() > sampler.pending_radius


def test_bayes_startup_with_workers_waits_for_half_the_design():
    # sequential asks with RUNNING trials of other workers: the GP takes over once
    # n_startup_trials are started and at least half of them have finished
    design = hp.QMCSampler("sobol", seed=4)
    st = _prefilled(hp.BayesSampler(seed=4, n_startup_trials=10), 4)
    pending = [st.ask() for _ in range(6)]           # 4 done, 10 started: still design
    assert [t.params for t in pending] == [design.sample(st, t.number) for t in pending]
    assert st.ask().params == design.sample(st, 10)
    st.tell(pending[0], _f(pending[0].params))       # 5 done, 11 started: the GP
    t = st.ask()
    assert st.sampler.last_fit_numbers and t.params != design.sample(st, t.number)


def test_in_memory_cache_shares_finished_trials_copy_on_write():
    st = hp.Study(_space(), sampler=hp.RandomSampler(seed=0))
    t = st.ask()
    st.tell(t, 1.0)
    cached = st.trials[0]
    assert cached is st.storage._trials[cached.trial_id]   # one object, not two
    st.set_user_attr(t, "k", 1)                  # a change replaces the stored object
    assert cached.user_attrs == {}
    assert st.trials[0].user_attrs == {"k": 1}
    assert st.storage.get_trial(t.trial_id) is not st.trials[0]
