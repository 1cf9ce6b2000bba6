import os
import signal
import subprocess
import sys
import time

import pytest

import hpcore as hp
from hpcore import TrialState
from hpcore.storage import InMemoryStorage, SQLiteStorage

WORKER = os.path.join(os.path.dirname(__file__), "_study_worker.py")


def _start(url, name, n, sleep, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    return subprocess.Popen([sys.executable, WORKER, url, name, str(n), str(sleep), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def _complete(url, name):
    return [t for t in hp.load_study(name, url).trials if t.state == TrialState.COMPLETE]


def test_sigkill_mid_study_loses_no_finished_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    proc = _start(url, "kill", 1000, 0.02)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            seen = _complete(url, "kill")
            if len(seen) >= 15:
                break
            time.sleep(0.05)
        assert len(seen) >= 15
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    study = hp.load_study("kill", url, sampler=hp.RandomSampler(seed=0))
    after = {t.number: t for t in study.trials}
    for t in seen:                       # every trial finished before the kill is there
        assert after[t.number].state == TrialState.COMPLETE
        assert after[t.number].values == t.values and after[t.number].params == t.params
    n_before = len(after)
    assert sum(t.state == TrialState.RUNNING for t in after.values()) <= 1
    # ...and the study completes
    study.optimize(lambda t: 1.0, n_trials=10)
    assert len(study.trials) == n_before + 10
    assert len(study.completed_trials()) >= len(seen) + 10


def test_sigint_stops_cleanly(tmp_path):
    url = f"sqlite:///{tmp_path / 'int.db'}"
    proc = _start(url, "int", 1000, 0.05)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_complete(url, "int")) < 5:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # PYTHONFAULTHANDLER=1 (set by _start): SIGABRT dumps every thread's stack
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"the SIGINTed child did not exit within 30 s; its stacks:\n{err}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    trials = hp.load_study("int", url).trials
    assert all(t.state != TrialState.RUNNING for t in trials)        # nothing left dangling
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 5


def test_two_processes_share_a_grid_study_without_duplicates(tmp_path):
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    hp.Study(hp.Space({"a": hp.Int(0, 19), "b": hp.Categorical(["x", "y", "z"])}),
             sampler=hp.GridSampler(seed=0), storage=url, name="grid")
    procs = [_start(url, "grid", 1000, 0.001, "grid") for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "locked" not in err
    trials = hp.load_study("grid", url).trials
    configs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(configs) == 60 == len(set(configs))
    assert all(t.state == TrialState.COMPLETE for t in trials)


@pytest.mark.parametrize("make", [lambda p: InMemoryStorage(), lambda p: SQLiteStorage(str(p / "x.db"))])
def test_incremental_reads(tmp_path, make):
    st = make(tmp_path)
    sid, dirs, _ = st.get_or_create_study("s", None, {"x": {}})
    assert dirs == ["minimize"]
    t0, n0, _ = st.create_trial(sid)
    t1, n1, _ = st.create_trial(sid)
    assert (n0, n1) == (0, 1)
    changed, cur = st.trials_since(sid, 0)
    assert [t.number for t in changed] == [0, 1]
    st.set_trial_params(t1, {"x": 1})
    st.report(t1, 0, 0.5)
    st.report(t1, 1, float("nan"))
    st.finish_trial(t1, TrialState.COMPLETE, (2.0,))
    changed, cur2 = st.trials_since(sid, cur)
    assert [t.number for t in changed] == [1]
    t = changed[0]
    assert t.params == {"x": 1} and t.values == (2.0,) and t.intermediate_values[0] == 0.5
    assert t.intermediate_values[1] != t.intermediate_values[1]        # NaN kept
    assert st.trials_since(sid, cur2)[0] == []
    reports, rcur = st.reports_since(sid, 0)
    assert [(n, s) for n, s, _ in reports] == [(1, 0), (1, 1)]
    assert st.reports_since(sid, rcur)[0] == []
    with pytest.raises(ValueError, match="already finished"):
        st.finish_trial(t1, TrialState.COMPLETE, (1.0,))
    with pytest.raises(ValueError, match="already finished"):
        st.report(t1, 5, 1.0)


def test_sqlite_bad_path_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="SQLite"):
        SQLiteStorage(str(tmp_path / "no" / "such" / "dir" / "x.db"))


@pytest.mark.parametrize("make", [lambda p: InMemoryStorage(), lambda p: SQLiteStorage(str(p / "y.db"))])
def test_report_is_idempotent_for_re_run_tasks(tmp_path, make):
    st = make(tmp_path)
    sid, _, _ = st.get_or_create_study("s", None, None)
    tid, _, _ = st.create_trial(sid)
    st.report(tid, 3, 1.0)
    st.report(tid, 3, 0.5)           # the same step again (a re-run on another worker)
    assert st.get_trial(tid).intermediate_values == {3: 0.5}
