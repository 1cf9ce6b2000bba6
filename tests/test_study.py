import math

import numpy as np
import pytest

import hpcore as hp
from hpcore import TrialState


def space():
    return hp.Space({"x": hp.Float(-5, 5), "k": hp.Int(1, 10), "c": hp.Categorical(["a", "b"])})


def quad(trial):
    p = trial.params
    return (p["x"] - 1) ** 2 + p["k"] + (0 if p["c"] == "a" else 0.5)


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_optimize_and_best(tmp_path, storage):
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    study = hp.Study(space(), sampler=hp.RandomSampler(seed=3), storage=url)
    study.optimize(quad, n_trials=60)
    trials = study.trials
    assert [t.number for t in trials] == list(range(60))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    values = [t.value for t in trials]
    assert study.best_value == min(values)
    assert study.best_params == trials[int(np.argmin(values))].params
    assert all(t.duration is not None and t.duration >= 0 for t in trials)


def test_maximize():
    study = hp.Study(space(), direction="maximize", seed=0)
    study.optimize(quad, n_trials=30)
    assert study.best_value == max(t.value for t in study.trials)


def test_failures_nan_and_non_numbers_fail_and_study_goes_on():
    def objective(trial):
        n = trial.number
        if n == 1:
            raise RuntimeError("exploded")
        if n == 2:
            return float("nan")
        if n == 3:
            return float("inf")
        if n == 4:
            return "abc"
        if n == 5:
            return None
        return float(n)

    study = hp.Study(space(), seed=0)
    study.optimize(objective, n_trials=8)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.COMPLETE
    assert states[1:6] == [TrialState.FAIL] * 5
    assert states[6:] == [TrialState.COMPLETE] * 2
    assert "exploded" in study.trials[1].error
    assert "non-finite" in study.trials[2].error
    assert study.best_value == 0.0          # NaN never becomes the best


def test_keyboard_interrupt_stops_cleanly(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"

    def objective(trial):
        if trial.number == 3:
            raise KeyboardInterrupt
        return 1.0

    study = hp.Study(space(), storage=url, name="k", seed=0)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=10)
    again = hp.load_study("k", url)
    states = [t.state for t in again.trials]
    assert states == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert "interrupted" in again.trials[3].error
    again.optimize(lambda t: 2.0, n_trials=2)
    assert len(again.trials) == 6


def test_ask_tell_interface():
    study = hp.Study(space(), seed=1)
    t1, t2 = study.ask(), study.ask()
    assert (t1.number, t2.number) == (0, 1)
    assert len(study.running_trials()) == 2
    study.tell(t2, 3.0)
    study.tell(t1, ValueError("bad"))
    assert study.trials[0].state == TrialState.FAIL and "bad" in study.trials[0].error
    assert study.best_value == 3.0
    with pytest.raises(ValueError, match="already finished"):
        study.tell(t2, 1.0)
    t3 = study.ask()
    study.tell(t3.number, 0.5)          # by number
    assert study.best_value == 0.5


def test_pruned_keeps_last_value_and_intermediates():
    study = hp.Study(space(), seed=1)
    t = study.ask()
    t.report(1, 0.9)
    t.report(2, 0.7)
    ft = study.tell(t, state=TrialState.PRUNED)
    stored = study.trials[0]
    assert stored.state == TrialState.PRUNED == ft.state
    assert stored.values == (0.7,)
    assert stored.intermediate_values == {1: 0.9, 2: 0.7}
    with pytest.raises(ValueError, match="step 2"):
        t2 = study.ask()
        t2.report(2, 1.0)
        t2.report(2, 1.0)


def test_trial_pruned_exception_marks_pruned():
    def objective(trial):
        trial.report(0, 5.0)
        raise hp.TrialPruned()

    study = hp.Study(space(), seed=0)
    study.optimize(objective, n_trials=3)
    assert all(t.state == TrialState.PRUNED and t.values == (5.0,) for t in study.trials)


def test_user_attrs_and_dataframe():
    def objective(trial):
        trial.set_user_attr("note", f"n{trial.number}")
        return trial.params["x"]

    study = hp.Study(space(), seed=0)
    study.optimize(objective, n_trials=4)
    df = study.to_dataframe()
    assert list(df["number"]) == [0, 1, 2, 3]
    assert list(df["user_attrs_note"]) == ["n0", "n1", "n2", "n3"]
    assert {"value", "params_x", "params_k", "params_c", "duration", "state"} <= set(df.columns)


def test_multi_objective_pareto_front():
    def objective(trial):
        x = trial.params["x"]
        return x ** 2, (x - 2) ** 2

    study = hp.Study(space(), directions=["minimize", "minimize"], seed=0)
    study.optimize(objective, n_trials=40)
    front = study.best_trials
    # brute force: a trial is on the front when no other trial dominates it
    ys = [t.values for t in study.trials]
    expect = [t.number for t, y in zip(study.trials, ys)
              if not any(all(a <= b for a, b in zip(o, y)) and o != y for o in ys)]
    assert sorted(t.number for t in front) == expect
    # every trial with x in [0, 2] is Pareto-optimal for (x^2, (x-2)^2)
    assert {t.number for t in study.trials if 0 <= t.params["x"] <= 2} <= set(expect)
    with pytest.raises(ValueError, match="best_trials"):
        _ = study.best_trial


def test_objective_with_wrong_number_of_values_fails():
    study = hp.Study(space(), directions=["minimize", "maximize"], seed=0)
    study.optimize(lambda t: 1.0, n_trials=1)
    assert study.trials[0].state == TrialState.FAIL and "2 values" in study.trials[0].error


def test_argument_errors():
    with pytest.raises(ValueError, match="direction"):
        hp.Study(space(), direction="down")
    with pytest.raises(ValueError, match="either direction or directions"):
        hp.Study(space(), direction="minimize", directions=["minimize"])
    with pytest.raises(TypeError, match="sampler"):
        hp.Study(space(), sampler="random")
    with pytest.raises(ValueError, match="space is required"):
        hp.Study(None)
    with pytest.raises(ValueError, match="storage"):
        hp.Study(space(), storage="postgres://x")
    study = hp.Study(space())
    with pytest.raises(TypeError, match="objective"):
        study.optimize(3, n_trials=1)
    with pytest.raises(ValueError, match="n_trials"):
        study.optimize(quad, n_trials=-1)
    with pytest.raises(ValueError, match="timeout"):
        study.optimize(quad, timeout=0)
    with pytest.raises(ValueError, match="n_jobs"):
        study.optimize(quad, n_trials=1, n_jobs=0)
    with pytest.raises(ValueError, match="no completed trial"):
        _ = study.best_value
    with pytest.raises(TypeError, match="step"):
        study.ask().report("1", 1.0)


def test_timeout_stops():
    import time

    study = hp.Study(space(), seed=0)

    def slow(trial):
        time.sleep(0.05)
        return 1.0

    t0 = time.monotonic()
    study.optimize(slow, timeout=0.3)
    assert time.monotonic() - t0 < 1.5
    assert 2 <= len(study.trials) <= 10


def test_callbacks_see_each_trial():
    seen = []
    study = hp.Study(space(), seed=0)
    study.optimize(quad, n_trials=5, callbacks=[lambda s, t: seen.append((t.number, t.state))])
    assert seen == [(i, TrialState.COMPLETE) for i in range(5)]


def test_reopen_with_different_space_or_direction_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    hp.Study(space(), storage=url, name="s")
    with pytest.raises(ValueError, match="different search space"):
        hp.Study(hp.Space({"y": hp.Float(0, 1)}), storage=url, name="s")
    with pytest.raises(ValueError, match="directions"):
        hp.Study(space(), storage=url, name="s", direction="maximize")


def test_incremental_cache_matches_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    a = hp.Study(space(), storage=url, name="c", seed=1)
    b = hp.load_study("c", url)
    a.optimize(quad, n_trials=5)
    assert len(b.trials) == 5 and b.best_value == a.best_value
    b.optimize(quad, n_trials=5)
    assert len(a.completed_trials()) == 10
    assert [t.number for t in a.trials] == list(range(10))
    assert math.isclose(a.best_value, min(t.value for t in b.trials))


def test_ask_with_params_and_budget():
    study = hp.Study(space(), seed=0)
    t = study.ask(params={"x": 0.5, "k": 3, "c": "b"}, budget=9)
    assert t.params == {"x": 0.5, "k": 3, "c": "b"} and t.budget == 9
    study.tell(t, 1.0)
    assert study.trials[0].system_attrs == {"budget": 9, "given": True}
    assert not study.trials[0].sampled
    with pytest.raises(ValueError, match="'k'"):
        study.ask(params={"x": 0.5, "k": 99, "c": "b"})
    with pytest.raises(ValueError, match="budget"):
        study.ask(budget=0)
    with pytest.raises(TypeError, match="budget"):
        study.ask(budget="9")
