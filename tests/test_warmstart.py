"""Warm starts: Study.enqueue (once each, before the sampler, across processes) and
Study.add_trials (from another study, an Optuna study, dicts, a DataFrame)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import hpcore as hp
from hpcore.trial import TrialState

SPACE = {"x": hp.Float(-1.0, 1.0), "n": hp.Int(1, 16, log=True),
         "c": hp.Categorical(["a", "b"]),
         "y": hp.Float(0.0, 1.0, condition={"c": "b"})}


def obj(t):
    p = t.params
    return p["x"] ** 2 + 0.1 * p["n"] + p.get("y", 0.5)


def configs(k):
    return [{"x": i / k, "n": 1 + i % 16, "c": "a"} for i in range(k)]


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_enqueued_run_first_once_each(storage, tmp_path):
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    study = hp.Study(SPACE, storage=url, name="s", seed=0)
    queued = configs(3) + [{"x": 0.0, "n": 2, "c": "b", "y": 0.25}]
    for c in queued:
        study.enqueue(c)
    assert study.storage.n_queued(study._study_id) == 4
    study.optimize(obj, n_trials=8)
    trials = study.trials
    assert [t.params for t in trials[:4]] == queued
    assert all(t.system_attrs.get("enqueued") for t in trials[:4])
    assert not any(t.system_attrs.get("enqueued") for t in trials[4:])
    assert study.storage.n_queued(study._study_id) == 0
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_enqueue_validates_and_names_the_parameter():
    study = hp.Study(SPACE, seed=0)
    with pytest.raises(ValueError, match="'x'"):
        study.enqueue({"x": 3.0, "n": 2, "c": "a"})
    with pytest.raises(ValueError, match="'n' is missing"):
        study.enqueue({"x": 0.0, "c": "a"})
    with pytest.raises(ValueError, match="'y' is inactive"):
        study.enqueue({"x": 0.0, "n": 2, "c": "a", "y": 0.5})
    with pytest.raises(ValueError, match="'z'"):
        study.enqueue({"x": 0.0, "n": 2, "c": "a", "z": 1})
    with pytest.raises(TypeError, match="params must be a mapping"):
        study.enqueue([0.0, 2, "a"])
    assert study.storage.n_queued(study._study_id) == 0


WORKER = textwrap.dedent("""
    import json, sys
    import hpcore as hp
    url, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    study = hp.Study(storage=url, name="shared", sampler=hp.RandomSampler(seed=seed))
    ran = []
    def obj(t):
        ran.append((t.number, t.params))
        return t.params["x"] ** 2
    study.optimize(obj, n_trials=15)
    study.close()
    json.dump(ran, open(out, "w"))
""")


def test_enqueued_once_each_with_four_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = hp.Study(SPACE, storage=url, name="shared", seed=0)
    queued = configs(24)
    for c in queued:
        study.enqueue(c)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), url, str(i), str(tmp_path / f"{i}.json")],
                              env=env, stderr=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    ran = [r for i in range(4) for r in json.load(open(tmp_path / f"{i}.json"))]
    assert len(ran) == 60
    trials = hp.Study(storage=url, name="shared").trials
    assert len(trials) == 60 and all(t.state == TrialState.COMPLETE for t in trials)
    enq = [t for t in trials if t.system_attrs.get("enqueued")]
    # each enqueued configuration ran exactly once ...
    assert sorted(json.dumps(t.params, sort_keys=True) for t in enq) == \
        sorted(json.dumps(c, sort_keys=True) for c in queued)
    # ... and before any sampled one (every ask took the queue while it was not empty)
    assert max(t.number for t in enq) < min(t.number for t in trials if t not in enq)
    assert study.storage.n_queued(study._study_id) == 0


# ------------------------------------------------------------------ add_trials
def test_add_trials_from_another_study(tmp_path):
    old = hp.Study(SPACE, storage=f"sqlite:///{tmp_path / 'old.db'}", name="old", seed=1)
    old.optimize(obj, n_trials=12)
    fail = old.ask()
    old.tell(fail, ValueError("boom"))
    pruned = old.ask()
    pruned.report(1, 0.9)
    old.tell(pruned, state=TrialState.PRUNED)
    new = hp.Study(SPACE, sampler=hp.BayesSampler(n_startup_trials=5, seed=0), name="new")
    numbers = new.add_trials(old.trials)
    assert numbers == list(range(14))
    got = new.trials
    assert [t.params for t in got] == [t.params for t in old.trials]
    assert [t.state for t in got] == [t.state for t in old.trials]
    assert got[-1].intermediate_values == {1: 0.9}
    assert new.best_value == old.best_value
    assert all(t.system_attrs == {"imported": True} for t in got)
    # the sampler starts from the imported history: past its start-up design at once
    new.optimize(obj, n_trials=1)
    assert new.sampler.last_fit_numbers == [t.number for t in got if t.state == TrialState.COMPLETE]
    # imported reports feed a pruner's rungs
    assert new.reports_since(0)[0] == [(13, 1, 0.9)]


def test_add_trials_from_a_dataframe_and_dicts():
    pd = pytest.importorskip("pandas")
    old = hp.Study(SPACE, seed=2)
    old.optimize(obj, n_trials=10)
    df = old.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    new = hp.Study(SPACE, name="from-df")
    new.add_trials(df)
    assert [t.params for t in new.trials] == [t.params for t in old.trials]   # NaN y dropped
    assert [t.values for t in new.trials] == [t.values for t in old.trials]
    assert all(type(t.params["n"]) is int for t in new.trials)
    new.add_trials([{"params": {"x": 0.5, "n": 4, "c": "a"}, "value": 1.5},
                    {"params_x": 0.1, "params_n": 2.0, "params_c": "b", "params_y": 0.3,
                     "value": 0.2, "user_attrs_note": "hand"},
                    {"params": {"x": 0.0, "n": 1, "c": "a"}, "state": "FAIL"}])
    t1, t2, t3 = new.trials[-3:]
    assert t1.values == (1.5,) and t2.params == {"x": 0.1, "n": 2, "c": "b", "y": 0.3}
    assert t2.user_attrs == {"note": "hand"} and t3.state == TrialState.FAIL
    assert new.best_value == 0.2


def test_add_trials_from_an_optuna_study():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ost = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ost.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2 + t.suggest_int("n", 1, 16, log=True)
                 + (t.suggest_categorical("c", ["a", "b"]) == "b"), n_trials=8)
    new = hp.Study({"x": hp.Float(-1.0, 1.0), "n": hp.Int(1, 16, log=True),
                    "c": hp.Categorical(["a", "b"])})
    new.add_trials(ost.trials)
    assert new.best_value == ost.best_value and new.best_params == ost.best_params


@pytest.mark.parametrize("row, match", [
    ({"params": {"x": 5.0, "n": 2, "c": "a"}, "value": 1.0}, r"trials\[1\]: parameter 'x'"),
    ({"params": {"x": 0.0, "c": "a"}, "value": 1.0}, "parameter 'n' is missing"),
    ({"params": {"x": 0.0, "n": 2.5, "c": "a"}, "value": 1.0}, "parameter 'n'"),
    ({"params": {"x": 0.0, "n": 2, "c": "z"}, "value": 1.0}, "parameter 'c'"),
    ({"params": {"x": 0.0, "n": 2, "c": "a", "w": 1}, "value": 1.0}, "unknown parameter 'w'"),
    ({"params": {"x": 0.0, "n": 2, "c": "a"}, "value": float("nan")}, "values: got a non-finite"),
    ({"params": {"x": 0.0, "n": 2, "c": "a"}}, "values: got None"),
    ({"params": {"x": 0.0, "n": 2, "c": "a"}, "value": 1.0, "state": "RUNNING"}, "state"),
])
def test_add_trials_bad_rows_raise_and_store_nothing(row, match):
    study = hp.Study(SPACE)
    good = {"params": {"x": 0.0, "n": 2, "c": "a"}, "value": 1.0}
    with pytest.raises(ValueError, match=match):
        study.add_trials([good, row])
    assert study.trials == []


def test_add_trials_bad_dataframe_row_names_row_and_parameter():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"params_x": [0.1, 9.0], "params_n": [2, 3], "params_c": ["a", "a"],
                       "value": [1.0, 2.0]})
    study = hp.Study(SPACE)
    with pytest.raises(ValueError, match=r"row 1: parameter 'x'"):
        study.add_trials(df)
    with pytest.raises(TypeError, match="trials must be"):
        study.add_trials({"x": 1})
    assert study.trials == []


def test_add_trials_multi_objective_checks_the_number_of_values():
    study = hp.Study({"x": hp.Float(0, 1)}, directions=["minimize", "maximize"])
    study.add_trials([{"params": {"x": 0.5}, "values_0": 1.0, "values_1": 2.0}])
    assert study.trials[0].values == (1.0, 2.0)
    with pytest.raises(ValueError, match="expected 2"):
        study.add_trials([{"params": {"x": 0.5}, "value": 1.0}])
