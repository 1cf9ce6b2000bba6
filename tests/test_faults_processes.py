"""Fault injection with real processes and signals (the process side of reliability).

Each scenario runs real OS processes (a study script, its spawned workers, a Dask
cluster) and hurts them (SIGTERM, SIGKILL, a silent TCP peer, a script without a main
guard, a worker that kills itself mid-trial).  Each ends with: ``optimize`` returned (or
the process exited), no trial RUNNING once the grace period passed and a process of the
study ran again, ``PRAGMA integrity_check`` ok, no orphan process.
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import hpcore as hp
from hpcore.executors import _dispatch, local

psutil = pytest.importorskip("psutil")

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(os.name != "posix", reason="POSIX signals")]

HERE = Path(__file__).resolve().parent
HB = dict(heartbeat_interval=0.2, grace_period=1.0)   # fast stale detection in the tests


# ---------------------------------------------------------------- helpers
def _space() -> hp.Space:
    return hp.Space({"x": hp.Float(0.0, 1.0), "k": hp.Int(0, 1000)})


def _integrity_ok(db: Path) -> None:
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _children() -> set[int]:
    """This process's descendants, less multiprocessing's own long-lived helper (the
    resource tracker lives as long as the process that started it, by design)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(p.cmdline()):
                out.add(p.pid)
        except psutil.Error:
            pass
    return out


def _assert_gone(pids, within: float = 5.0) -> None:
    """Every pid in ``pids`` has exited within ``within`` seconds (no orphans)."""
    deadline = time.monotonic() + within
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if _alive(p)]
    assert not left, f"orphan processes still running: {left}"


def _wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _markers(d: Path, prefix: str) -> list[int]:
    return sorted(int(p.name.split("-", 1)[1]) for p in d.glob(prefix + "-*"))


_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import hpcore as hp

    def objective(trial):
        d = os.environ["HP_MARK"]
        open(os.path.join(d, "pid-%d" % os.getpid()), "w").close()
        open(os.path.join(d, "running-%d" % trial.number), "w").close()
        if trial.number < int(os.environ["HP_HANG"]):
            time.sleep(60)              # still running when the signal comes
        return trial.params["x"]

    if __name__ == "__main__":
        db, n_jobs = sys.argv[1], int(sys.argv[2])
        study = hp.Study(hp.Space({"x": hp.Float(0.0, 1.0), "k": hp.Int(0, 1000)}),
                         sampler=hp.RandomSampler(seed=0), storage="sqlite:///" + db,
                         name="faults", heartbeat_interval=0.2, grace_period=1.0)
        study.optimize(objective, n_trials=int(sys.argv[3]), n_jobs=n_jobs)
        print("returned", flush=True)
""")


def _start_script(tmp_path: Path, n_jobs: int, n_trials: int, hang: int) -> tuple:
    script = tmp_path / "run_study.py"
    script.write_text(_SCRIPT)
    mark = tmp_path / "marks"
    mark.mkdir()
    env = dict(os.environ, HP_MARK=str(mark), HP_HANG=str(hang))
    db = tmp_path / "faults.db"
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(n_jobs), str(n_trials)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, db, mark


def _reopen(db: Path) -> hp.Study:
    return hp.Study(_space(), sampler=hp.RandomSampler(seed=0), storage=f"sqlite:///{db}",
                    name="faults", **HB)


def _quick(trial) -> float:
    return trial.params["x"]


# ---------------------------------------------------------------- SIGTERM
@pytest.mark.parametrize("n_jobs", [1, 2], ids=["inline", "process-pool"])
def test_sigterm_fails_running_trials_terminated_and_exits(tmp_path, n_jobs):
    proc, db, mark = _start_script(tmp_path, n_jobs, n_trials=6, hang=100)
    _wait_for(lambda: len(_markers(mark, "running")) >= n_jobs, 60, "trials to start")
    workers = [p for p in _markers(mark, "pid") if p != proc.pid]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    assert took < 10, took
    _assert_gone(workers + [proc.pid])
    _integrity_ok(db)
    study = _reopen(db)
    trials = study.trials
    assert len(trials) == n_jobs
    assert all(t.state == hp.TrialState.FAIL and t.error == "terminated (SIGTERM)"
               for t in trials), [(t.state, t.error) for t in trials]
    study.close()


# ---------------------------------------------------------------- kill -9
@pytest.mark.parametrize("n_jobs", [1, 2], ids=["inline", "process-pool"])
def test_kill9_leaves_no_orphan_and_the_stale_sweep_retries(tmp_path, n_jobs):
    proc, db, mark = _start_script(tmp_path, n_jobs, n_trials=6, hang=n_jobs)
    _wait_for(lambda: len(_markers(mark, "running")) >= n_jobs, 60, "trials to start")
    workers = [p for p in _markers(mark, "pid") if p != proc.pid]
    assert len(workers) == (n_jobs if n_jobs > 1 else 0)
    proc.kill()
    proc.communicate(timeout=30)
    _assert_gone(workers)             # workers follow their dead parent
    time.sleep(HB["grace_period"] + 0.3)
    study = _reopen(db)               # any process of the study, running again
    study.optimize(_quick, n_trials=n_jobs)   # its first ask sweeps, then runs the re-queued
    trials = study.trials
    study.close()
    _integrity_ok(db)
    assert not [t for t in trials if t.state == hp.TrialState.RUNNING]
    stale = [t for t in trials if t.state == hp.TrialState.FAIL]
    assert len(stale) == n_jobs and all(t.error.startswith("stale: process gone") for t in stale)
    reruns = [t for t in trials if "retry_of" in t.system_attrs]
    assert sorted(t.system_attrs["retry_of"] for t in reruns) == sorted(t.number for t in stale)
    by_number = {t.number: t for t in trials}
    for t in reruns:   # the same configuration, run once more, to completion
        assert t.state == hp.TrialState.COMPLETE
        assert t.params == by_number[t.system_attrs["retry_of"]].params


# ---------------------------------------------------------------- report server
def test_silent_peer_costs_one_thread_for_the_handshake_timeout_only():
    study = hp.Study(_space())
    trial = study.ask()
    server = _dispatch.ReportServer(study, handshake_timeout=1.0)
    try:
        silent = socket.create_connection(server.address)
        t0 = time.monotonic()
        time.sleep(0.1)
        # a real worker connects and is served while the silent peer sits there
        reporter = _dispatch.RemoteReporter(server.address, server.authkey)
        t1 = time.monotonic()
        assert reporter.report(trial, 1, 0.5) is False
        assert time.monotonic() - t1 < 0.5
        # the server gives up on the silent peer after the handshake timeout
        silent.settimeout(10)
        while silent.recv(1024):
            pass
        dropped = time.monotonic() - t0
        assert 0.9 <= dropped < 3.0, dropped
        silent.close()
        # a peer with the wrong key is refused and the server goes on
        with pytest.raises(Exception):
            _dispatch.RemoteReporter(server.address, b"wrong key")
        assert reporter.report(trial, 2, 0.25) is False
        assert study.storage.get_trial(trial.trial_id).intermediate_values == {1: 0.5, 2: 0.25}
        reporter.close()
    finally:
        server.close()
    assert not [t for t in threading.enumerate() if t.name == "hpcore-report-conn"]


class _HostileServer(_dispatch.ReportServer):
    """A report server that a silent peer (and a garbage sender) reach first."""

    peers: list = []

    def __init__(self, study, host="127.0.0.1", **kw):
        kw["handshake_timeout"] = 1.0
        super().__init__(study, host, **kw)
        for payload in (None, b"\x00garbage that is no handshake"):
            s = socket.create_connection(self.address)
            if payload:
                s.sendall(payload)
            self.peers.append(s)


def test_silent_tcp_peer_does_not_stall_optimize(monkeypatch):
    monkeypatch.setattr(local, "ReportServer", _HostileServer)
    study = hp.Study(_space(), sampler=hp.RandomSampler(seed=1))
    t0 = time.monotonic()
    study.optimize(_report_twice, n_trials=6, n_jobs=2)
    took = time.monotonic() - t0
    for s in _HostileServer.peers:
        s.close()
    assert took < 30, took
    trials = study.trials
    assert len(trials) == 6 and all(t.state == hp.TrialState.COMPLETE for t in trials)
    assert all(t.intermediate_values == {0: t.params["x"], 1: t.params["x"]} for t in trials)


def _report_twice(trial) -> float:
    for step in range(2):
        trial.report(step, trial.params["x"])
    return trial.params["x"]


# ---------------------------------------------------------------- README without a main guard
_NO_GUARD = textwrap.dedent("""
    import hpcore as hp

    space = hp.Space({"lr": hp.Float(1e-5, 1e-1, log=True)})

    def objective(trial):
        return trial.params["lr"]

    study = hp.Study(space, sampler=hp.BayesSampler(seed=0), pruner=hp.ASHA(1, 27, eta=3),
                     direction="minimize", storage="sqlite:///{db}", name="mlp")
    study.optimize(objective, n_trials=20, n_jobs=4)   # 4 worker processes
""")


def test_readme_snippet_without_main_guard_stops_with_a_clear_error(tmp_path):
    db = tmp_path / "runs.db"
    script = tmp_path / "snippet.py"
    script.write_text(_NO_GUARD.replace("{db}", str(db)))
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=90, cwd=tmp_path)
    took = time.monotonic() - t0
    assert out.returncode != 0
    tail = out.stderr[out.stderr.rfind("WorkerStartupError"):]
    assert "died while starting" in tail, out.stderr[-3000:]
    assert 'if __name__ == "__main__":' in out.stderr
    assert took < 60, took
    _integrity_ok(db)
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 0
    finally:
        con.close()


# ---------------------------------------------------------------- a worker dies mid-trial
def _kill_one_worker(trial) -> float:
    """Trial 1 kills its own worker while trials 0, 2 are mid-run on the others."""
    trial.set_user_attr("pid", os.getpid())
    if trial.number == 1:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.8 if trial.number in (0, 2) else 0.05)
    return trial.params["x"]


def test_a_killed_worker_fails_and_retries_only_its_own_trial(tmp_path):
    db = tmp_path / "pool.db"
    study = hp.Study(_space(), sampler=hp.RandomSampler(seed=2), storage=f"sqlite:///{db}",
                     name="pool", retries=1)
    before = _children()
    study.optimize(_kill_one_worker, n_trials=8, n_jobs=3)
    trials = study.trials
    study.close()
    _integrity_ok(db)
    assert len(trials) == 9   # 8 + the re-run of the lost one (not counted in n_trials)
    bad = [t for t in trials if t.state != hp.TrialState.COMPLETE]
    assert [t.number for t in bad] == [1], [(t.number, t.state, t.error) for t in bad]
    assert "worker failed" in bad[0].error and "SIGKILL" in bad[0].error
    assert trials[0].state == trials[2].state == hp.TrialState.COMPLETE  # beside it, unharmed
    [rerun] = [t for t in trials if t.system_attrs.get("retry_of") == 1]
    assert rerun.params == trials[1].params and rerun.state == hp.TrialState.COMPLETE
    assert bad[0].system_attrs.get("retried_by") == rerun.number
    now = _children()
    _assert_gone(now - before)


# ---------------------------------------------------------------- true exception names
class BoomError(Exception):
    pass


def _boom_or_sleep(trial) -> float:
    if trial.number == 1:
        raise BoomError("boom in a worker")
    if trial.number == 3:
        return 10 ** 400                     # overflows float64
    time.sleep(0.2)
    return trial.params["x"]


def test_parallel_exceptions_keep_their_true_names():
    study = hp.Study(_space(), sampler=hp.RandomSampler(seed=3))
    study.optimize(_boom_or_sleep, n_trials=6, n_jobs=2)
    trials = study.trials
    assert trials[1].state == hp.TrialState.FAIL and "BoomError: boom in a worker" in trials[1].error
    assert trials[3].state == hp.TrialState.FAIL and trials[3].values is None
    assert [t.number for t in trials if t.state != hp.TrialState.COMPLETE] == [1, 3]
    assert not [t for t in trials if t.error and "KeyboardInterrupt" in t.error]


def test_a_parent_side_error_fails_the_trials_in_flight_with_its_name(tmp_path, monkeypatch):
    class CallbackError(Exception):
        pass

    def callback(study, frozen):
        raise CallbackError("bad callback")

    monkeypatch.setenv("HP_SYNC", str(tmp_path))   # spawned workers inherit it
    study = hp.Study(_space(), sampler=hp.RandomSampler(seed=4))
    with pytest.raises(CallbackError):
        study.optimize(_slow_x, n_trials=6, n_jobs=2, callbacks=[callback])
    trials = study.trials
    assert not [t for t in trials if t.state == hp.TrialState.RUNNING]
    aborted = [t for t in trials if t.state == hp.TrialState.FAIL]
    assert aborted and all(t.error == "aborted: CallbackError: bad callback" for t in aborted)


def _slow_x(trial) -> float:
    """Trial 0 ends only once trial 1 runs on the other worker (which then sleeps)."""
    flag = os.path.join(os.environ["HP_SYNC"], "odd-started")
    if trial.number % 2:
        open(flag, "w").close()
        time.sleep(3.0)
    else:
        _wait_for(lambda: os.path.exists(flag), 60, "trial 1 to start")
    return trial.params["x"]


# ---------------------------------------------------------------- many processes, one file
_MANY = textwrap.dedent("""
    import os, sys, time
    import hpcore as hp

    db, ready, idx, n, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    open(os.path.join(ready, "ready" + idx), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(ready)) < total and time.monotonic() < deadline:   # start together
        time.sleep(0.005)
    study = hp.Study(hp.Space({"x": hp.Float(0.0, 1.0), "k": hp.Int(0, 1000)}),
                     sampler=hp.RandomSampler(seed=int(idx)), storage="sqlite:///" + db,
                     name="many")
    def objective(trial):
        trial.set_user_attr("proc", int(idx))
        trial.report(0, trial.params["x"])
        return trial.params["x"]
    study.optimize(objective, n_trials=n)
    study.close()
""")


def _many_processes(tmp_path: Path, n_procs: int, n_trials: int) -> None:
    db = tmp_path / "many.db"
    ready = tmp_path / "ready"
    ready.mkdir()
    script = tmp_path / "many.py"
    script.write_text(_MANY)
    hp.Study(_space(), storage=f"sqlite:///{db}", name="many").close()  # create it once
    procs = [subprocess.Popen([sys.executable, str(script), str(db), str(ready), str(i),
                               str(n_trials), str(n_procs)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n_procs)]
    outs = [p.communicate(timeout=300) for p in procs]
    errors = [(p.returncode, err[-500:]) for p, (_, err) in zip(procs, outs)
              if p.returncode != 0 or "Error" in err]
    assert not errors, errors
    _integrity_ok(db)
    study = hp.Study(_space(), storage=f"sqlite:///{db}", name="many")
    trials = study.trials
    study.close()
    assert sorted(t.number for t in trials) == list(range(n_procs * n_trials))  # none lost/dup
    assert all(t.state == hp.TrialState.COMPLETE for t in trials)
    per_proc = {}
    for t in trials:
        per_proc[t.user_attrs["proc"]] = per_proc.get(t.user_attrs["proc"], 0) + 1
        assert t.intermediate_values == {0: t.values[0]}
    assert per_proc == {i: n_trials for i in range(n_procs)}
    _assert_gone([p.pid for p in procs])


def test_8_processes_x_10_trials_on_one_sqlite_study(tmp_path):
    _many_processes(tmp_path, 8, 10)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_32_processes_x_25_trials_on_one_sqlite_study(tmp_path):
    _many_processes(tmp_path, 32, 25)


# ---------------------------------------------------------------- Dask worker killed
def _dask_kill_once(trial) -> float:
    """The first trial that finds no marker file kills its Dask worker process."""
    marker = os.path.join(os.environ["HP_DASK_MARK"], "killed")
    if trial.number == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return trial.params["x"]


def test_dask_worker_killed_mid_trial_is_retried_and_the_study_completes(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("HP_DASK_MARK", str(tmp_path))
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    db = tmp_path / "dask.db"
    study = hp.Study(_space(), sampler=hp.RandomSampler(seed=5), storage=f"sqlite:///{db}",
                     name="dask", retries=1)
    before = _children()   # long-lived helpers of earlier tests (e.g. a forkserver) are not ours
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        study.optimize(_dask_kill_once, n_trials=8, executor=hp.DaskExecutor(client))
        worker_pids = _children() - before
    trials = study.trials
    study.close()
    _integrity_ok(db)
    assert (tmp_path / "killed").exists()
    assert len(trials) == 9 and not [t for t in trials if t.state == hp.TrialState.RUNNING]
    bad = [t for t in trials if t.state != hp.TrialState.COMPLETE]
    assert [t.number for t in bad] == [1], [(t.number, t.state, t.error) for t in bad]
    assert "worker failed" in bad[0].error
    [rerun] = [t for t in trials if t.system_attrs.get("retry_of") == 1]
    assert rerun.params == trials[1].params and rerun.state == hp.TrialState.COMPLETE
    _assert_gone(worker_pids, within=15)


# ---------------------------------------------------------------- small seams
def test_handle_sigterm_installs_restores_and_respects_a_user_handler():
    from hpcore.executors import Terminated, handle_sigterm

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with handle_sigterm():
            with pytest.raises(Terminated) as info:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            assert info.value.code == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

        def mine(signum, frame):
            pass

        signal.signal(signal.SIGTERM, mine)
        with handle_sigterm():
            assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_get_executor_picks_the_default_and_checks_its_input():
    from hpcore.executors import ProcessExecutor, get_executor

    assert get_executor(1) is None
    assert isinstance(get_executor(3), ProcessExecutor) and get_executor(3).n_jobs == 3
    ex = ProcessExecutor(2)
    assert get_executor(5, ex) is ex
    with pytest.raises(TypeError, match="executor"):
        get_executor(1, object())
    with pytest.raises(TypeError, match="n_jobs"):
        get_executor(2.0)
    with pytest.raises(ValueError, match="handshake_timeout"):
        _dispatch.ReportServer(hp.Study(_space()), handshake_timeout=0)
