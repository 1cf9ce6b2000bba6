"""DaskExecutor in practice: thread shares per worker, data sent once per worker, the
report server refusing peers without the run's key."""
from __future__ import annotations

import os
import sys
from multiprocessing import AuthenticationError
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _dask_objectives as DO  # noqa: E402

import hpcore as hp  # noqa: E402
from hpcore.executors import _dispatch  # noqa: E402

distributed = pytest.importorskip("distributed")
pytest.importorskip("threadpoolctl")


def _space():
    return hp.Space({"x": hp.Float(0.0, 1.0)})


#: A worker environment that would oversubscribe (Dask's own default is 1 thread):
#: the executor must cap the pools at the worker's share all the same.
GREEDY_ENV = {"OMP_NUM_THREADS": "8", "OPENBLAS_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", env=GREEDY_ENV) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def test_thread_shares_split_each_host_between_its_task_threads():
    from hpcore.executors.dask import thread_shares

    workers = {"tcp://a:1": {"host": "a", "nthreads": 2}, "tcp://a:2": {"host": "a", "nthreads": 2},
               "tcp://b:1": {"host": "b", "nthreads": 1}, "tcp://c:1": {"host": "c", "nthreads": 8}}
    cpus = {"tcp://a:1": 16, "tcp://a:2": 16, "tcp://b:1": 6, "tcp://c:1": 4}
    assert thread_shares(cpus, workers) == {"tcp://a:1": 4, "tcp://a:2": 4, "tcp://b:1": 6,
                                            "tcp://c:1": 1}


def test_no_trial_exceeds_its_workers_thread_share(client):
    share = max(1, _cpus() // 2)        # two workers of one thread on this host
    study = hp.Study(_space(), sampler=hp.RandomSampler(seed=0))
    study.optimize(DO.thread_report, n_trials=8, executor=hp.DaskExecutor(client))
    trials = study.trials
    assert len(trials) == 8 and all(t.state == hp.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials} - {os.getpid()}) >= 1
    for t in trials:
        pools = t.user_attrs["pools"]
        assert pools, "threadpoolctl found no thread pool in the worker"
        assert all(n <= share for _, n in pools), (share, pools)
        assert t.user_attrs["kernel_threads"] == share
    # the run's share is dropped on the workers afterwards
    from hpcore.executors import dask as hd

    assert set(client.run(lambda: len(hd._SHARES)).values()) == {0}


def test_a_lone_worker_gets_every_core_of_its_host():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        study = hp.Study(_space(), sampler=hp.RandomSampler(seed=0))
        study.optimize(DO.thread_report, n_trials=2, executor=hp.DaskExecutor(c))
        fixed = hp.Study(_space(), sampler=hp.RandomSampler(seed=0))
        fixed.optimize(DO.thread_report, n_trials=2,
                       executor=hp.DaskExecutor(c, worker_threads=1))
    assert {t.user_attrs["kernel_threads"] for t in study.trials} == {_cpus()}
    assert all(n <= _cpus() for t in study.trials for _, n in t.user_attrs["pools"])
    assert {t.user_attrs["kernel_threads"] for t in fixed.trials} == {1}


def test_captured_data_is_sent_once_per_worker_not_per_trial(client, monkeypatch):
    import pickle

    sizes = []
    submit = client.submit

    def recording_submit(fn, *args, **kw):
        sizes.append(len(pickle.dumps([a for a in args if not isinstance(a, distributed.Future)])))
        return submit(fn, *args, **kw)

    monkeypatch.setattr(client, "submit", recording_submit)
    before = client.run(DO.loads)
    study = hp.Study(_space(), sampler=hp.RandomSampler(seed=1))
    study.optimize(DO.DataObjective(200_000), n_trials=16, executor=hp.DaskExecutor(client))
    # a task carries the trial (number, params, ...), not the 1.6 MB objective or the key
    assert len(sizes) == 16 and max(sizes) < 1024, sizes
    assert all(t.state == hp.TrialState.COMPLETE for t in study.trials)
    after = client.run(DO.loads)
    per_worker = {w: after[w] - before.get(w, 0) for w in after}
    workers_used = len({t.user_attrs["pid"] for t in study.trials})
    assert sum(per_worker.values()) == workers_used, per_worker   # one unpickling each
    assert all(n <= 1 for n in per_worker.values()), per_worker


def test_the_report_server_on_a_network_address_needs_the_key():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:   # no packet is sent
        try:
            s.connect(("10.255.255.255", 1))
            host = s.getsockname()[0]
        except OSError:
            host = "127.0.0.1"
    if host.startswith("127."):
        pytest.skip("no network interface besides loopback")
    study = hp.Study(_space())
    server = _dispatch.ReportServer(study, host=host, handshake_timeout=2.0)
    try:
        assert server.address[0] == host
        for key in (b"wrong key", b""):
            with pytest.raises((AuthenticationError, EOFError, ConnectionError, OSError)):
                _dispatch.RemoteReporter(server.address, key).call("attr", 0, 0, "k", 1)
        trial = study.ask()
        reporter = _dispatch.RemoteReporter(server.address, server.authkey)
        reporter.set_attr(trial, "k", 1)
        reporter.close()
        assert study.trials[0].user_attrs == {"k": 1}
    finally:
        server.close()
