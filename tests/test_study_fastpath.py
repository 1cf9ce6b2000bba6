"""The in-memory ask/tell fast path (Study._ask_mem / _told_mem) keeps the cache exactly
what reading the storage back gives, and the compiled samplers' pieces match their
Python references bit for bit."""
import math
import struct
import threading

import numpy as np
import pytest

import hpcore as hp
from hpcore import TrialState
from hpcore._kernels import genetic as _g
from hpcore._kernels import rng as _rng
from hpcore._kernels.random_config import RandomDecoder
from hpcore.samplers.base import BaseSampler
from hpcore.samplers.genetic import _Genome
from hpcore.samplers.random import random_decoder
from hpcore.storage import InMemoryStorage


def space():
    return hp.Space({"x": hp.Float(-5, 5), "k": hp.Int(1, 10), "c": hp.Categorical(["a", "b"])})


def spaces():
    yield space()
    yield hp.Space({
        "lr": hp.Float(1e-5, 1e-1, log=True), "d": hp.Float(0.0, 0.5, step=0.05),
        "n": hp.Int(1, 512, log=True), "m": hp.Int(2, 20, step=3),
        "opt": hp.Categorical(["sgd", "adam", 3, None, 2.5]),
        "mom": hp.Float(0.0, 0.99, condition={"opt": ["sgd"]}),
        "nest": hp.Categorical([True, False], condition={"opt": ["sgd", 3]}),
    })
    # a child declared before its parent: topological order differs from the space's
    yield hp.Space({"child": hp.Int(0, 3, condition={"kind": ["b"]}),
                    "kind": hp.Categorical(["a", "b"]), "w": hp.Float(-1e3, 2e3)})


def _bits(cfg):
    return [(k, type(v).__name__, struct.pack("<d", v).hex() if type(v) is float else repr(v))
            for k, v in cfg.items()]


def _snapshot(t):
    return (t.number, t.trial_id, int(t.state), dict(t.params), t.values,
            dict(t.intermediate_values), dict(t.user_attrs), t.error)


def _read_back(study):
    """A fresh cache of the same stored study (read through trials_since alone)."""
    fresh = hp.Study(study.space, sampler=study.sampler, storage=study.storage,
                     name=study.name, directions=study.directions)
    return fresh


def _same_cache(a, b):
    assert [_snapshot(t) for t in a.trials] == [_snapshot(t) for t in b.trials]
    assert [t.number for t in a.completed_trials()] == [t.number for t in b.completed_trials()]
    assert [t.number for t in a.finished_trials()] == [t.number for t in b.finished_trials()]
    assert sorted(t.number for t in a.running_trials()) == sorted(
        t.number for t in b.running_trials())
    for t in a.running_trials():
        assert t.state == TrialState.RUNNING
    if len(a.directions) == 1 and a.completed_trials():
        assert a.best_trial.number == b.best_trial.number


# -- compiled pieces against their Python references -------------------------------------
@pytest.mark.parametrize("i", range(3))
def test_random_decoder_matches_decode_random_bit_for_bit(i):
    sp = list(spaces())[i]
    dec = random_decoder(sp)
    for n in range(3000):
        u = _rng.uniform_row(11, n, len(sp))
        ref = sp.decode_random(u)
        got = dec.sample(11, n)
        assert _bits(got) == _bits(ref)
        assert _bits(dec.decode(u)) == _bits(ref)
    assert random_decoder(sp) is dec            # built once per space


def test_random_decoder_checks_its_input():
    sp = space()
    dec = random_decoder(sp)
    with pytest.raises(ValueError, match="3 entries"):
        dec.decode(np.zeros(2))
    with pytest.raises(ValueError, match="index"):
        RandomDecoder([("x", 5, 0, 0.0, 1.0, 1.0, None)], 1)


def test_random_sampler_and_space_pickle_with_the_decoder():
    import pickle

    sp = space()
    s = hp.RandomSampler(seed=4)
    study = hp.Study(sp, sampler=s)
    study.ask()
    sp2 = pickle.loads(pickle.dumps(sp))
    assert _bits(random_decoder(sp2).sample(4, 9)) == _bits(random_decoder(sp).sample(4, 9))


@pytest.mark.parametrize("i", range(3))
def test_gene_encoder_and_decode_match_python_bit_for_bit(i):
    sp = list(spaces())[i]
    g = _Genome(sp)
    s = hp.RandomSampler(seed=2)
    study = hp.Study(sp, sampler=s)
    for n in range(2000):
        p = s.sample(study, n)
        fill = (lambda n=n: _rng.uniform_row(5, n, len(sp)))
        assert g.encode(p, fill).tobytes() == g.encode_py(p, fill).tobytes()
        x = g.encode(p, fill)
        u = [(xi + 0.5) / lv if kind else xi for xi, (_, _, kind, lv, _) in zip(x.tolist(), g._plan)]
        assert _bits(g.decode(x)) == _bits(sp._decode_random_floats(u))
    # values the compiled encoder leaves to Python: the same result or the same error
    name = g.names[0]
    dist = sp.params[name]
    odd = dict(s.sample(study, 0))
    if isinstance(dist, hp.Float):
        odd[name] = np.float64(odd[name])
        assert g.encode(odd, np.zeros(len(sp))).tobytes() == g.encode_py(odd, np.zeros(len(sp))).tobytes()


def _dominates_ref(a, b):
    strict = False
    for x, y in zip(a, b):
        if x > y or x != x or y != y:
            return False
        if x < y:
            strict = True
    return strict


def test_crowded_pair_matches_the_python_contest():
    rng = np.random.default_rng(0)
    for trial in range(500):
        n, m, k = int(rng.integers(2, 30)), int(rng.integers(2, 4)), int(rng.integers(1, 4))
        F = np.round(rng.normal(size=(n, m)), 1)        # ties and equal rows
        if trial % 7 == 0:
            F[rng.integers(n), rng.integers(m)] = np.nan
        crowd = np.round(rng.exponential(size=n), 1)
        crowd[rng.integers(n)] = np.inf
        draws = rng.integers(0, n, size=2 * k).astype(np.int64)
        ref = []
        rows = F.tolist()
        for j in range(2):
            w = int(draws[j * k])
            for c in draws[j * k + 1:(j + 1) * k].tolist():
                if _dominates_ref(rows[c], rows[w]) or (
                        not _dominates_ref(rows[w], rows[c]) and crowd[c] > crowd[w]):
                    w = c
            ref.append(w)
        assert list(_g.crowded_pair(draws, k, F, crowd)) == ref
    with pytest.raises(IndexError):
        _g.crowded_pair(np.array([0, 5], dtype=np.int64), 1, np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError):
        _g.crowded_pair(np.array([0], dtype=np.int64), 1, np.zeros((3, 2)), np.zeros(3))


# -- the study's cache on the fast path --------------------------------------------------
def test_fast_path_cache_equals_storage_read_back():
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=1))
    assert study._mem
    for i in range(40):
        t = study.ask()
        if i % 5 == 1:
            t.report(0, 3.0)
            study.tell(t, state=TrialState.PRUNED)
        elif i % 7 == 2:
            study.tell(t, float("nan"))
        else:
            t.set_user_attr("i", i)
            study.tell(t, float(i % 11))
    _same_cache(study, _read_back(study))
    assert [t.number for t in study.trials] == list(range(40))


def test_tell_returns_the_stored_finished_trial():
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=1))
    t = study.ask(budget=2.0)
    t.report(1, 5.0)
    ft = study.tell(t, 1.5)
    assert ft.state == TrialState.COMPLETE and ft.values == (1.5,)
    assert ft.params == t.params and ft.intermediate_values == {1: 5.0}
    assert ft.system_attrs == {"budget": 2.0}
    assert ft.datetime_complete is not None and ft.duration >= 0
    assert study.trials[0] is ft is study.best_trial


def test_running_trials_between_ask_and_tell():
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=1))
    a, b = study.ask(), study.ask()
    run = {t.number: t for t in study.running_trials()}
    assert set(run) == {0, 1}
    assert run[0].params == a.params and run[1].params == b.params
    c = study.ask()
    study.tell(b, 1.0)
    assert {t.number for t in study.running_trials()} == {0, 2}
    assert study.running_trials()[0].params in (a.params, c.params)
    study.tell(c, 2.0)
    study.tell(a, 3.0)
    assert study.running_trials() == []
    assert [t.number for t in study.completed_trials()] == [1, 2, 0]
    _same_cache(study, _read_back(study))


class _Peeking(BaseSampler):
    """Reads the study while sampling, as GeneticSampler / BayesSampler do."""

    def __init__(self, seed=0):
        super().__init__(seed)
        self.seen = []

    def sample(self, study, number):
        self.seen.append(sorted((t.number, dict(t.params)) == (number, {}) or t.number
                                for t in study.running_trials()))
        study.completed_trials()
        return {"x": 0.5, "k": 2, "c": "a"}


def test_a_sampler_reading_the_study_sees_its_own_new_trial():
    s = _Peeking()
    study = hp.Study(space(), sampler=s)
    t0 = study.ask()
    t1 = study.ask()
    assert s.seen == [[True], [0, True]]     # its own trial RUNNING with no params yet
    assert {t.number: t.params for t in study.running_trials()} == {0: t0.params, 1: t1.params}
    study.tell(t0, 1.0)
    study.tell(t1, 2.0)
    _same_cache(study, _read_back(study))


def test_two_studies_on_one_storage_see_each_other():
    storage = InMemoryStorage()
    a = hp.Study(space(), sampler=hp.RandomSampler(seed=1), storage=storage, name="s")
    b = hp.load_study("s", storage)
    for i in range(30):
        ta = a.ask()
        tb = b.ask()
        if i % 2:
            a.tell(ta, float(i))
            b.tell(tb, float(-i))
        else:
            b.tell(tb, float(-i))
            a.tell(ta, float(i))
    _same_cache(a, b)
    _same_cache(a, _read_back(a))
    assert len(a.trials) == 60 and a.best_value == -29.0 == b.best_value


def test_concurrent_writers_keep_the_cache_true():
    storage = InMemoryStorage()
    main = hp.Study(space(), sampler=hp.RandomSampler(seed=1), storage=storage, name="s")
    other = hp.load_study("s", storage)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            t = other.ask()
            t.report(0, 1.0)
            other.tell(t, 0.5)

    th = threading.Thread(target=writer)
    th.start()
    try:
        for i in range(300):
            t = main.ask()
            main.tell(t, float(i))
    finally:
        stop.set()
        th.join()
    _same_cache(main, _read_back(main))


def test_queued_and_given_configurations_take_the_general_way():
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=1))
    study.enqueue({"x": 1.0, "k": 3, "c": "b"})
    t = study.ask()
    assert t.params == {"x": 1.0, "k": 3, "c": "b"}
    study.tell(t, 1.0)
    t = study.ask(params={"x": 2.0, "k": 4, "c": "a"})
    study.tell(t, 2.0)
    t = study.ask()
    study.tell(t, 0.5)
    assert study.trials[0].system_attrs == {"enqueued": True}
    _same_cache(study, _read_back(study))
    assert study.best_trial.number == 2


def test_exhausted_grid_leaves_no_phantom_trial():
    study = hp.Study({"c": hp.Categorical(["a", "b"])}, sampler=hp.GridSampler(seed=0))
    for _ in range(2):
        t = study.ask()
        study.tell(t, 1.0)
    with pytest.raises(hp.StudyExhausted):
        study.ask()
    assert study.running_trials() == []
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    _same_cache(study, _read_back(study))


def test_sampler_error_fails_the_trial_on_the_fast_path():
    class Broken(BaseSampler):
        def sample(self, study, number):
            raise RuntimeError("boom")

    study = hp.Study(space(), sampler=Broken(seed=0))
    with pytest.raises(RuntimeError, match="boom"):
        study.ask()
    (t,) = study.trials
    assert t.state == TrialState.FAIL and "sampler failed: RuntimeError: boom" in t.error
    assert study.running_trials() == []


def test_tell_twice_and_stale_trials_on_the_fast_path():
    storage = InMemoryStorage(heartbeat_interval=60.0, grace_period=120.0)
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=1), storage=storage)
    t = study.ask()
    study.tell(t, 1.0)
    with pytest.raises(ValueError, match="already finished"):
        study.tell(t, 2.0)
    t2 = study.ask()
    study.close()                       # its heartbeat stops: the sweep may fail it
    assert study.fail_stale_trials(grace_period=1e-9) == [t2.number]
    ft = study.tell(t2, 3.0)            # failed as stale meanwhile: a warning, not stored
    assert ft.state == TrialState.FAIL and ft.error.startswith("stale: process gone")
    assert study.trials[1].state == TrialState.FAIL
    _same_cache(study, _read_back(study))


def test_int_trial_numbers_and_batches_mix_with_the_fast_path():
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=1))
    t = study.ask()
    batch = study.ask_batch(3)
    study.tell(t.number, 1.0)
    t2 = study.ask()
    study.tell_batch(batch, [2.0, 3.0, None], states=[None, None, TrialState.PRUNED])
    study.tell(t2, 0.1)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 + [
        TrialState.PRUNED, TrialState.COMPLETE]
    assert study.best_trial.number == t2.number
    _same_cache(study, _read_back(study))


def test_multi_objective_values_fast_path_and_checks():
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=1), directions=["minimize"] * 2)
    ft = study.tell(study.ask(), (1.0, 2.0))
    assert ft.values == (1.0, 2.0) and ft.state == TrialState.COMPLETE
    ft = study.tell(study.ask(), [3.0, np.float64(4.0)])
    assert ft.values == (3.0, 4.0) and type(ft.values[1]) is float
    assert study.tell(study.ask(), (1.0, math.inf)).state == TrialState.FAIL
    assert study.tell(study.ask(), (1.0,)).state == TrialState.FAIL
    assert study.tell(study.ask(), (True, 1.0)).state == TrialState.FAIL
