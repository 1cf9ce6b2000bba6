"""Parallel executors: the local process pool (``n_jobs``) and ``DaskExecutor`` on a real
``distributed.LocalCluster``, plus several OS processes sharing one SQLite study."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # workers import the objectives from here (spawn copies sys.path)
    sys.path.insert(0, str(HERE))

import _objectives as O  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.pruners.base import BasePruner  # noqa: E402

pytestmark = pytest.mark.timeout(180)

THRESHOLD = 1.5


class ThresholdPruner(BasePruner):
    """Prunes a trial as soon as it reports a value above ``threshold``."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def on_report(self, study, number, step, value):
        return value > self.threshold


@pytest.fixture(params=["processes", "dask"])
def optimize(request):
    """``optimize(study, objective, **kw)`` on 2 local processes or the Dask cluster."""
    if request.param == "processes":
        return lambda study, objective, **kw: study.optimize(objective, n_jobs=2, **kw)
    client = request.getfixturevalue("dask_client")
    return lambda study, objective, **kw: study.optimize(
        objective, executor=hp.DaskExecutor(client), **kw)


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


# ---------------------------------------------------------------- both executors
def test_trials_complete_in_worker_processes(optimize):
    study = hp.Study(O.space(), sampler=hp.RandomSampler(seed=0))
    optimize(study, O.quadratic, n_trials=20)
    trials = study.trials
    assert [t.number for t in trials] == list(range(20))
    assert all(t.state == hp.TrialState.COMPLETE for t in trials)
    for t in trials:
        assert t.values == (pytest.approx(O.quadratic(hp.Trial(t.number, -1, t.params))),)
        assert t.user_attrs["pid"] != os.getpid()  # ran in a worker, attr came back
    assert study.best_value == min(t.values[0] for t in trials)


def test_report_and_prune(optimize):
    study = hp.Study(O.space(), sampler=hp.RandomSampler(seed=1), pruner=ThresholdPruner(THRESHOLD))
    optimize(study, O.reporting, n_trials=16)
    states = set()
    for t in study.trials:
        x = t.params["x"]
        over = [s for s in range(1, O.N_STEPS + 1) if x * s > THRESHOLD]
        last = over[0] if over else O.N_STEPS
        expected = {s: pytest.approx(x * s) for s in range(1, last + 1)}
        assert t.intermediate_values == expected, t.number
        if over:
            assert t.state == hp.TrialState.PRUNED, t.number
        else:
            assert t.state == hp.TrialState.COMPLETE, t.number
        assert t.values == (pytest.approx(x * last),)
        states.add(t.state)
    assert states == {hp.TrialState.PRUNED, hp.TrialState.COMPLETE}


def test_errors_and_nan_fail_and_the_study_goes_on(optimize):
    study = hp.Study(O.space(), sampler=hp.RandomSampler(seed=2))
    optimize(study, O.mixed, n_trials=12)
    trials = study.trials
    assert len(trials) == 12
    for t in trials:
        if t.number % 4 == 1:
            assert t.state == hp.TrialState.FAIL
            assert "ValueError: boom in trial %d" % t.number in t.error
        elif t.number % 4 == 2:
            assert t.state == hp.TrialState.FAIL
            assert "non-finite" in t.error and t.values is None
        else:
            assert t.state == hp.TrialState.COMPLETE and t.values == (float(t.number),)
    assert study.best_value == 0.0


def test_parallel_random_search_is_reproducible(optimize):
    serial = hp.Study(O.space(), sampler=hp.RandomSampler(seed=3))
    serial.optimize(O.quadratic, n_trials=12)
    parallel = hp.Study(O.space(), sampler=hp.RandomSampler(seed=3))
    optimize(parallel, O.quadratic, n_trials=12)
    assert {_key(t.params) for t in parallel.trials} == {_key(t.params) for t in serial.trials}
    assert {t.number: t.params for t in parallel.trials} == {t.number: t.params for t in serial.trials}


def test_grid_is_covered_exactly_once(optimize):
    sampler = hp.GridSampler(seed=4)
    study = hp.Study(O.grid_space(), sampler=sampler)
    optimize(study, O.slow_grid)  # no n_trials: stops when the grid is exhausted
    grid = sampler.grid(study)
    keys = [_key(t.params) for t in study.trials]
    assert len(keys) == len(grid) == 30
    assert sorted(keys) == sorted(_key(g) for g in grid)
    assert all(t.state == hp.TrialState.COMPLETE for t in study.trials)


def test_process_worker_crash_fails_only_its_trial_and_a_new_worker_starts():
    np = pytest.importorskip("numpy")
    study = hp.Study(O.space(), sampler=hp.RandomSampler(seed=8))
    study.optimize(O.crash_on_two, n_trials=10, n_jobs=np.int64(2))
    trials = study.trials
    assert len(trials) == 11   # 10 + the re-run of the lost one (not counted in n_trials)
    assert not [t for t in trials if t.state == hp.TrialState.RUNNING]
    assert trials[2].state == hp.TrialState.FAIL and "worker failed" in trials[2].error
    # only the dead worker's trial fails; its configuration is re-run (retries=1)
    assert [t.number for t in trials if t.state != hp.TrialState.COMPLETE] == [2]
    assert [t.params for t in trials].count(trials[2].params) == 2


# ---------------------------------------------------------------- Dask specifics
def test_dask_slots_and_validation(dask_client):
    assert hp.DaskExecutor(dask_client)._slots() == 2
    assert hp.DaskExecutor(dask_client, n_slots=5)._slots() == 5
    with pytest.raises(TypeError, match="client"):
        hp.DaskExecutor(object())
    with pytest.raises(ValueError, match="worker_threads"):
        hp.DaskExecutor(dask_client, worker_threads=0)
    with pytest.raises(ValueError, match="n_slots"):
        hp.DaskExecutor(dask_client, n_slots=0)
    with pytest.raises(ValueError, match="host"):
        hp.DaskExecutor(dask_client, host="0.0.0.0")
    assert hp.DaskExecutor(dask_client)._report_host() == "127.0.0.1"


def test_dask_one_report_connection_per_worker_and_thread_limit(dask_client):
    from hpcore.executors import dask as hd

    study = hp.Study(O.space(), sampler=hp.RandomSampler(seed=5))
    study.optimize(O.worker_identity, n_trials=10,
                   executor=hp.DaskExecutor(dask_client, worker_threads=2))
    trials = study.trials
    assert all(t.state == hp.TrialState.COMPLETE for t in trials)
    assert all(len(t.intermediate_values) == 3 for t in trials)
    assert {t.user_attrs["omp"] for t in trials} == {"2"}
    reporters: dict[int, set] = {}
    for t in trials:
        reporters.setdefault(t.user_attrs["pid"], set()).add(t.user_attrs["reporter"])
    assert all(len(ids) == 1 for ids in reporters.values()), reporters
    # the run's connections and objective are dropped on the workers afterwards
    left = dask_client.run(lambda: (len(hd._REPORTERS), len(hd._OBJECTIVES)))
    assert set(left.values()) == {(0, 0)}


def test_dask_threads_of_one_worker_share_its_connection():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        study = hp.Study(O.space(), sampler=hp.RandomSampler(seed=6),
                         pruner=ThresholdPruner(THRESHOLD + 1))
        study.optimize(O.worker_identity, n_trials=8, executor=hp.DaskExecutor(client))
    trials = study.trials
    assert len({t.user_attrs["reporter"] for t in trials}) == 1
    for t in trials:
        x = t.params["x"]
        assert t.intermediate_values == {s: pytest.approx(x + s) for s in range(3)}
        # in-process workers leave the client's thread settings alone
        assert t.user_attrs["omp"] == os.environ.get("OMP_NUM_THREADS")


def test_import_hpcore_does_not_need_dask():
    code = textwrap.dedent("""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("dask", "distributed"):
                    raise ImportError("blocked: " + name)

        sys.meta_path.insert(0, Block())
        import hpcore as hp
        assert "dask" not in sys.modules and "distributed" not in sys.modules
        assert "DaskExecutor" in hp.__all__
        try:
            hp.DaskExecutor(None)
        except ImportError as exc:
            assert "hpcore[dask]" in str(exc), exc
        else:
            raise AssertionError("DaskExecutor without dask must raise ImportError")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------- SQLite, two processes
_SHARED_SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {here!r})
    import hpcore as hp
    import _objectives as O

    db, ready, idx = sys.argv[1], sys.argv[2], sys.argv[3]
    open(os.path.join(ready, "ready" + idx), "w").close()
    deadline = time.monotonic() + 60
    while len(os.listdir(ready)) < 2 and time.monotonic() < deadline:  # start together
        time.sleep(0.002)
    study = hp.Study(O.grid_space(), sampler=hp.GridSampler(seed=7),
                     storage="sqlite:///" + db, name="shared-grid")
    study.optimize(O.slow_grid)
""")


def test_two_processes_share_one_sqlite_grid_study(tmp_path):
    db = tmp_path / "shared.db"
    ready = tmp_path / "ready"
    ready.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(_SHARED_SCRIPT.format(here=str(HERE)))
    procs = [subprocess.Popen([sys.executable, str(script), str(db), str(ready), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "locked" not in err.lower(), err
    study = hp.load_study("shared-grid", f"sqlite:///{db}", sampler=hp.GridSampler(seed=7))
    trials = study.trials
    grid = study.sampler.grid(study)
    assert len(grid) == 30
    assert sorted(t.number for t in trials) == list(range(30))
    assert sorted(_key(t.params) for t in trials) == sorted(_key(g) for g in grid)
    assert all(t.state == hp.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both processes took part
    study.storage.close()
