"""Fault injection on the storage side, with real processes and signals (issue 14a).

kill -9 mid-trial -> after the grace period the next process fails the stale trial,
re-runs its configuration once (linked), BayesSampler does not see it as pending;
a live process's long trial survives another process's sweep; a full disk during ask
leaves no half-made trial; non-real results FAIL; load_study of a missing study writes
nothing; the checked-in v0 file migrates; a newer file is refused untouched; read-only
mode works in a read-only directory; overflowing bounds are refused.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import hpcore as hp
from hpcore import TrialState
from hpcore._schema import CURRENT_VERSION

HERE = os.path.dirname(__file__)
WORKER = os.path.join(HERE, "_fault_worker.py")
V0_FILE = os.path.join(HERE, "data", "v0_study.db")


def _run(path, *args, timeout=120):
    return subprocess.run([sys.executable, WORKER, str(path), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def _integrity(path):
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def _trials(path):
    st = hp.SQLiteStorage(str(path), read_only=True)
    try:
        return hp.load_study("faults", st).trials
    finally:
        st.close()


def test_kill9_mid_trial_then_resume_fails_stale_and_reruns_once(tmp_path):
    db = tmp_path / "f.db"
    proc = subprocess.Popen([sys.executable, WORKER, str(db), "hang", "100", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(str(db) + ".hang"):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        time.sleep(0.5)                       # a couple of heartbeats of the hung trial
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    hung = json.load(open(str(db) + ".hang"))
    before = _trials(db)
    assert [t.state for t in before] == [TrialState.COMPLETE] * 5 + [TrialState.RUNNING]
    assert _integrity(db) == "ok"
    time.sleep(1.2)                           # past the grace period (1 s)

    out = _run(db, "resume", 6)
    assert out.returncode == 0, out.stderr
    pending_seen = json.loads(out.stdout.strip().splitlines()[-1])["pending_seen"]
    assert all(5 not in seen for seen in pending_seen)     # never fantasized the dead trial
    after = _trials(db)
    assert _integrity(db) == "ok"
    assert not [t for t in after if t.state == TrialState.RUNNING]
    for a, b in zip(before[:5], after[:5]):                # finished trials intact
        assert (a.state, a.params, a.values, a.datetime_complete) == \
               (b.state, b.params, b.values, b.datetime_complete)
    dead = after[5]
    assert dead.state == TrialState.FAIL and dead.error.startswith("stale: process gone")
    reruns = [t for t in after if t.system_attrs.get("retry_of") == 5]
    assert len(reruns) == 1                                # re-run exactly once
    rerun = reruns[0]
    assert rerun.params == hung["params"] and rerun.state == TrialState.COMPLETE
    assert rerun.system_attrs["attempt"] == 1 and dead.system_attrs["retried_by"] == rerun.number
    assert len(after) == 6 + 6                             # the re-run is one of the 6 asked


def test_a_live_process_long_trial_survives_another_process_sweep(tmp_path):
    db = tmp_path / "live.db"
    hp.Study({"x": hp.Float(-5.0, 5.0), "k": hp.Int(1, 9)}, storage=hp.SQLiteStorage(str(db)),
             name="faults", sampler=hp.RandomSampler(seed=0))
    long = subprocess.Popen([sys.executable, WORKER, str(db), "long", "1", "3.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        st = hp.SQLiteStorage(str(db), heartbeat_interval=0.2, grace_period=1.0)
        other = hp.load_study("faults", st)
        t_end = time.monotonic() + 2.5                     # sweeps for longer than the grace
        seen_running = 0
        while time.monotonic() < t_end:
            assert other.fail_stale_trials() == []
            seen_running += len(other.running_trials())
            time.sleep(0.2)
        assert seen_running > 0                            # it did sweep over a live trial
        out, err = long.communicate(timeout=60)
    finally:
        if long.poll() is None:
            long.kill()
    assert long.returncode == 0, err
    assert [t.state for t in _trials(db)] == [TrialState.COMPLETE]


def test_fail_stale_trials_by_hand_and_retries_zero(tmp_path):
    st = hp.SQLiteStorage(str(tmp_path / "h.db"), heartbeat_interval=0.2, grace_period=0.5)
    study = hp.Study({"x": hp.Float(0, 1)}, storage=st, name="h", retries=0)
    sid, _, _ = st.get_study("h")
    t = st.start_trial(sid, params={"x": 0.5})            # a trial nobody beats for
    assert study.fail_stale_trials() == []
    time.sleep(0.7)
    assert study.fail_stale_trials() == [t.number]
    assert st.n_queued(sid) == 0                           # retries=0: not queued
    nxt = study.ask()
    assert "retry_of" not in st.get_trial(nxt.trial_id).system_attrs
    study.close()


def test_full_disk_during_ask_leaves_no_half_made_trial(tmp_path):
    st = hp.SQLiteStorage(str(tmp_path / "full.db"))
    big = "y" * 200_000

    class FillingSampler(hp.RandomSampler):
        def sample(self, study, number):
            conn = study.storage._conn()            # this thread's connection: cap the file
            conn.execute("VACUUM")                  # no free pages left to fill
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            return {"c": big}

    study = hp.Study({"c": hp.Categorical(["a", big])}, storage=st, name="full",
                     sampler=FillingSampler(seed=0))
    with pytest.raises(sqlite3.OperationalError, match="full"):
        study.ask()
    st._conn().execute("PRAGMA max_page_count = 1073741823")
    assert study.trials == []                               # neither RUNNING nor param-less
    study.sampler = hp.RandomSampler(seed=0)
    t = study.ask()
    study.tell(t, 1.0)
    assert [x.state for x in study.trials] == [TrialState.COMPLETE]
    assert _integrity(tmp_path / "full.db") == "ok"
    study.close()


@pytest.mark.parametrize("bad, reason", [(10 ** 400, "overflows a float"), ("1.5", "not a real"),
                                         (1 + 2j, "not a real"), (None, "not a real"),
                                         (float("inf"), "non-finite")])
def test_non_real_results_fail_with_their_reason(tmp_path, bad, reason):
    study = hp.Study({"x": hp.Float(0, 1)}, storage=f"sqlite:///{tmp_path / 'o.db'}", name="o")
    study.optimize(lambda t: bad, n_trials=2)               # returns, raises nothing
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all(reason in t.error for t in trials)
    study.close()


def test_load_study_missing_name_or_file_writes_nothing(tmp_path):
    db = tmp_path / "m.db"
    hp.Study({"x": hp.Float(0, 1)}, storage=f"sqlite:///{db}", name="there")
    before = db.read_bytes()
    with pytest.raises(hp.StudyNotFound, match="'missing'.*'there'") as info:
        hp.load_study("missing", f"sqlite:///{db}")
    assert isinstance(info.value, KeyError)
    conn = sqlite3.connect(str(db))
    assert conn.execute("SELECT name FROM studies").fetchall() == [("there",)]
    conn.close()
    assert db.read_bytes() == before or _integrity(db) == "ok"
    nofile = tmp_path / "nope.db"
    with pytest.raises(hp.StudyNotFound, match="does not exist"):
        hp.load_study("x", f"sqlite:///{nofile}")
    assert not nofile.exists()
    with pytest.raises(hp.StudyNotFound):
        hp.load_study("x", hp.InMemoryStorage())


def test_v0_file_of_the_previous_release_migrates(tmp_path):
    db = tmp_path / "v0.db"
    shutil.copy(V0_FILE, db)
    conn = sqlite3.connect(str(db))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()
    st = hp.SQLiteStorage(str(db), heartbeat_interval=0.2, grace_period=1.0)
    study = hp.load_study("v0", st)
    conn = sqlite3.connect(str(db))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    conn.close()
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL,
                                                                     TrialState.RUNNING]
    assert [t.values for t in trials[:3]] == [(0.25,), (1.5625,), (4.0,)]
    assert [t.params["x"] for t in trials] == [0.5, -1.25, 2.0, 3.0, 4.0]
    assert trials[1].intermediate_values == {1: 2.5625} and trials[2].user_attrs == {"note": "t2"}
    assert trials[3].error == "boom" and study.best_params == {"x": 0.5, "c": "a"}
    t = study.ask()          # the v0 RUNNING trial is long stale: failed, its config re-run
    assert t.params == {"x": 4.0, "c": "a"}
    study.tell(t, 16.0)
    assert study.trials[4].error.startswith("stale: process gone")
    assert not study.running_trials()
    assert _integrity(db) == "ok"
    study.close()
    st.close()
    st2 = hp.SQLiteStorage(str(db))                        # and opens again as current
    assert len(hp.load_study("v0", st2).trials) == 6


def test_newer_file_version_is_refused_untouched(tmp_path):
    db = tmp_path / "new.db"
    hp.Study({"x": hp.Float(0, 1)}, storage=f"sqlite:///{db}", name="s").storage.close()
    conn = sqlite3.connect(str(db))
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    for ro in (False, True):
        with pytest.raises(hp.StorageVersionError, match=f"version {CURRENT_VERSION + 1}.*newer"):
            hp.SQLiteStorage(str(db), read_only=ro)
    assert db.read_bytes() == before


def _make_readonly_dir(path):
    """chmod 555 does not stop root: also set the immutable attribute where possible."""
    os.chmod(path, 0o555)
    if os.geteuid() != 0:
        return True
    ok = shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)],
                                                   capture_output=True).returncode == 0
    return bool(ok)


def test_read_only_mode_in_a_read_only_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    study = hp.Study({"x": hp.Float(0, 1)}, storage=f"sqlite:///{d / 's.db'}", name="s",
                     sampler=hp.QMCSampler(seed=3))
    for _ in range(3):
        t = study.ask()
        study.tell(t, t.params["x"])
    best = study.best_value
    study.close()
    study.storage.close()
    enforced = _make_readonly_dir(d)
    try:
        if enforced:
            with pytest.raises(OSError):
                open(d / "probe", "w")
        ro = hp.load_study("s", f"sqlite:///{d / 's.db'}?mode=ro")
        assert ro.storage.read_only and len(ro.trials) == 3 and ro.best_value == best
        assert isinstance(ro.sampler, hp.QMCSampler) and ro.sampler.seed == 3
        with pytest.raises(PermissionError, match="read-only"):
            ro.ask()
        with pytest.raises(PermissionError, match="read-only"):
            hp.Study({"x": hp.Float(0, 1)}, storage=ro.storage, name="other")
        assert sorted(os.listdir(d)) == ["s.db"]          # nothing created beside it
        if not enforced:
            pytest.skip("cannot make a directory read-only for root here (no chattr): "
                        "the read-only connection was tested, not the directory")
    finally:
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(d)], capture_output=True)
        os.chmod(d, 0o755)


@pytest.mark.parametrize("dist, match", [
    (lambda: hp.Float(-1e308, 1e308), "'wide'.*overflows float64"),
    (lambda: hp.Float(-1.7e308, 1.7e308, step=1e307), "'wide'.*overflows"),
    (lambda: hp.Float(0.0, 1.0, step=5e-324), "'wide'.*2\\*\\*53 levels"),
    (lambda: hp.Int(0, 10 ** 30), "'wide'.*64-bit"),
])
def test_bounds_whose_range_overflows_are_refused(dist, match):
    with pytest.raises(ValueError, match=match):
        hp.Space({"wide": dist()})


def test_processes_opening_one_v0_file_at_once_migrate_it_once(tmp_path):
    db = tmp_path / "race.db"
    shutil.copy(V0_FILE, db)
    code = ("import sys, hpcore as hp; st = hp.SQLiteStorage(sys.argv[1], heartbeat_interval=None);"
            "print(len(hp.load_study('v0', st).trials))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == "5"
    conn = sqlite3.connect(str(db))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    cols = [r[1] for r in conn.execute("PRAGMA table_info(trials)")]
    assert cols.count("heartbeat") == 1
    conn.close()
    assert _integrity(db) == "ok"
