"""Dask executor: trials run as tasks on a ``dask.distributed`` cluster.

The study stays in the client process: it samples, stores and judges reports there
(the dispatch loop of :mod:`hpcore.executors._dispatch`); each trial is one task.  A
task reaches the client's :class:`~hpcore.executors._dispatch.ReportServer` through a
:class:`~hpcore.executors._dispatch.RemoteReporter` that each worker process opens
once per server and shares between its threads.

``dask`` is imported only when a :class:`DaskExecutor` is made, so ``import hpcore``
works without it (``pip install 'hpcore[dask]'``).

Security: reports travel over a plain TCP connection authenticated by a random
per-run key (``multiprocessing.connection`` HMAC handshake), not encrypted.  On a
shared network, bind the report server to an interface only the workers reach.
"""
from __future__ import annotations

import ipaddress
import os
import pickle
import threading
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlparse

from hpcore.executors._dispatch import ReportServer, RemoteReporter, dispatch, dumps_objective, run_trial

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["DaskExecutor"]

# ---------------------------------------------------------------- worker-side caches
# A worker process keeps one connection per report server (keyed by its address; the
# authkey is checked so a new server on a reused port gets a new connection) and the
# unpickled objective of each run.  Dask runs several tasks of a worker in threads.
_CACHE_LOCK = threading.Lock()
_REPORTERS: dict[tuple, tuple[bytes, RemoteReporter]] = {}
_OBJECTIVES: OrderedDict[str, Callable] = OrderedDict()
_MAX_OBJECTIVES = 8
_THREADS_SET: dict[str, int] = {}
_SHARES: dict[str, int] = {}          # run id -> this worker's thread share (auto mode)
_RUN_DATA: dict[str, tuple] = {}      # run id -> (pickled objective, report address, key)


def _address_key(address) -> tuple:
    return tuple(address) if isinstance(address, (list, tuple)) else (address,)


def _reporter_for(address, authkey: bytes) -> RemoteReporter:
    """This worker process's connection to the report server at ``address``."""
    key = _address_key(address)
    with _CACHE_LOCK:
        cached = _REPORTERS.get(key)
        if cached is not None and cached[0] == authkey:
            return cached[1]
        reporter = RemoteReporter(address, authkey)
        _REPORTERS[key] = (authkey, reporter)
    if cached is not None:  # a stale connection to a closed server on the same port
        _close_reporter(cached[1])
    return reporter


def _close_reporter(reporter: RemoteReporter) -> None:
    reporter.close()


def _put_run_data(run_id: str, payload: tuple) -> None:
    """(the run's worker plugin, at set-up) keep the run's objective, address and key."""
    with _CACHE_LOCK:
        _RUN_DATA[run_id] = tuple(payload)


def _drop_run_data(run_id: str) -> None:
    with _CACHE_LOCK:
        _RUN_DATA.pop(run_id, None)
        _OBJECTIVES.pop(run_id, None)
        _SHARES.pop(run_id, None)


def _objective_for(run_id: str, objective_bytes: bytes) -> Callable:
    with _CACHE_LOCK:
        objective = _OBJECTIVES.get(run_id)
        if objective is None:
            objective = pickle.loads(objective_bytes)
            _OBJECTIVES[run_id] = objective
            while len(_OBJECTIVES) > _MAX_OBJECTIVES:
                _OBJECTIVES.popitem(last=False)
        return objective


def _cpu_count() -> int:
    """CPUs this worker process may run on (its affinity mask: a SLURM or container
    allocation, not the whole node)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def thread_shares(cpus: dict[str, int], workers: dict[str, dict]) -> dict[str, int]:
    """Each worker's OpenMP/BLAS threads per task: the CPUs of its host divided by the
    task threads of all workers on that host (at least 1), so that every task thread
    of a host running at once uses at most the host's cores.

    ``cpus``: worker address -> CPUs its process may use; ``workers``: the scheduler's
    ``scheduler_info()["workers"]`` (``host``, ``nthreads`` per address)."""
    per_host: dict[str, int] = {}
    for addr, info in workers.items():
        host = info.get("host") or urlparse(addr).hostname or addr
        per_host[host] = per_host.get(host, 0) + max(1, int(info.get("nthreads") or 1))
    shares = {}
    for addr, info in workers.items():
        host = info.get("host") or urlparse(addr).hostname or addr
        shares[addr] = max(1, int(cpus.get(addr, 1)) // per_host[host])
    return shares


def _set_share(run_id: str, n: int) -> None:
    """(``client.run`` on the workers of one share) remember this worker's share."""
    with _CACHE_LOCK:
        _SHARES[run_id] = int(n)


def _limit_worker_threads(n_threads: int | None, run_id: str, client_pid: int,
                          client_host: str) -> None:
    """Limit OpenMP/BLAS once per worker process (not in the client's own process, as a
    ``processes=False`` cluster would be); OpenMP's setting is per calling thread, so
    each task sets it again.  ``n_threads=None``: the share the run set on this worker
    (1 on a worker that joined after the run started)."""
    import socket

    if os.getpid() == client_pid and socket.gethostname() == client_host:
        return
    from hpcore._kernels import _openmp

    if n_threads is None:
        n_threads = _SHARES.get(run_id, 1)
    with _CACHE_LOCK:
        if _THREADS_SET.get("n") != n_threads:
            from hpcore.executors.local import limit_threads

            limit_threads(n_threads)
            _THREADS_SET["n"] = n_threads
    _openmp.set_num_threads(n_threads)


def _run_on_worker(run_id: str, n_threads: int | None, client: tuple, number: int,
                   trial_id: int, params: dict, budget: Any) -> tuple:
    # the run's data (objective, report address, key) came once per worker with the
    # run's plugin, so a task carries only the trial's number, params and budget
    run_data = _RUN_DATA.get(run_id)
    if run_data is None:   # the plugin did not reach this worker (it ended meanwhile)
        return ("lost", f"worker failed: no data of run {run_id[:8]} on this worker")
    objective_bytes, address, authkey = run_data
    _limit_worker_threads(n_threads, run_id, *client)
    reporter = _reporter_for(address, authkey)
    if not reporter.start(trial_id, number):
        # Dask re-ran this task because the worker that ran it first died: the trial
        # is failed (and re-queued) by the client, not run twice under one number
        return ("superseded", None)
    return run_trial(_objective_for(run_id, objective_bytes), reporter,
                     number, trial_id, params, budget)


def _forget_run(run_id: str, address, authkey: bytes) -> None:
    """Drop a finished run's objective and close its report connection (on each worker)."""
    key = _address_key(address)
    with _CACHE_LOCK:
        _RUN_DATA.pop(run_id, None)
        _OBJECTIVES.pop(run_id, None)
        _SHARES.pop(run_id, None)
        cached = _REPORTERS.get(key)
        if cached is not None and cached[0] == authkey:
            del _REPORTERS[key]
        else:
            cached = None
    if cached is not None:
        _close_reporter(cached[1])


# ---------------------------------------------------------------- client side
def _is_local_host(host: str | None) -> bool:
    if not host or host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _workers_info(client) -> dict[str, dict]:
    """Every worker's scheduler record (some Dask versions list only 5 by default)."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # pragma: no cover - a Dask without the argument lists them all
        info = client.scheduler_info()
    return info.get("workers", {})


def _worker_hosts(client) -> list[str | None]:
    hosts = []
    for addr in _workers_info(client):
        parsed = urlparse(addr)
        hosts.append(None if parsed.scheme == "inproc" else parsed.hostname)
    return hosts


class DaskExecutor:
    """Run trials as tasks on a Dask cluster.

    Use as ``study.optimize(objective, n_trials=100, executor=hp.DaskExecutor(client))``.
    Sampling, storage and pruning decisions stay in this (the client's) process; each
    trial is one task (``client.submit(..., pure=False)``), and its ``trial.report``
    calls reach this process over a TCP connection that the worker opens once and
    shares between its threads.

    Parameters
    ----------
    client : distributed.Client
        A synchronous client of the cluster.
    worker_threads : int or None
        OpenMP/BLAS threads a trial may use in a worker process.  ``None`` (default):
        each worker's share of its host, measured when ``optimize`` starts: the CPUs
        the worker process may run on (its affinity mask) divided by the task threads
        (``nthreads``) of all workers on that host, at least 1, so the trials running
        at once on a host never use more threads than it has cores (a
        ``LocalCluster(n_workers=2, threads_per_worker=1)`` on 8 cores: 4 threads per
        trial).  A worker that joins later uses 1.  An int: that many everywhere.
    n_slots : int, optional
        Trials in flight at once; default: the cluster's total worker threads
        (``sum(client.nthreads().values())``, read when ``optimize`` starts).
    host : str, optional
        Address of this machine that the workers can reach; the report server listens
        on it.  Default: ``"127.0.0.1"`` when every worker runs on this machine (a
        ``LocalCluster``), else the local IP address that routes to the scheduler.
        Set it for clusters behind NAT or with several networks (e.g.
        ``host="10.0.0.5"``); ``"0.0.0.0"`` is refused, since workers must be told
        one address to connect to.
    """

    def __init__(self, client, worker_threads: int | None = None, n_slots: int | None = None,
                 host: str | None = None) -> None:
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - exercised without dask
            raise ImportError("DaskExecutor needs dask.distributed: "
                              "pip install 'hpcore[dask]'") from exc
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
        if getattr(client, "asynchronous", False):
            raise ValueError("client: DaskExecutor needs a synchronous Client "
                             "(asynchronous=False)")
        if worker_threads is not None and (isinstance(worker_threads, bool)
                                           or not isinstance(worker_threads, int)
                                           or worker_threads < 1):
            raise ValueError(f"worker_threads must be an int >= 1 or None, got {worker_threads!r}")
        if n_slots is not None and (isinstance(n_slots, bool) or not isinstance(n_slots, int)
                                    or n_slots < 1):
            raise ValueError(f"n_slots must be an int >= 1 or None, got {n_slots!r}")
        if host is not None:
            if not isinstance(host, str) or not host:
                raise TypeError("host must be a non-empty str (an address the workers reach)")
            if host in ("0.0.0.0", "::", ""):
                raise ValueError(f"host: give an address the workers can connect to, not {host!r}")
        self.client = client
        self.worker_threads = worker_threads
        self.n_slots = n_slots
        self.host = host

    def __repr__(self) -> str:
        return (f"DaskExecutor(client={self.client!r}, worker_threads={self.worker_threads}, "
                f"n_slots={self.n_slots}, host={self.host!r})")

    def parallel_slots(self) -> int:
        """Trials in flight at once: ``n_slots``, else the cluster's worker threads now
        (the default lag of ``optimize(..., deterministic=True)``)."""
        if self.n_slots is not None:
            return self.n_slots
        return max(1, sum(self.client.nthreads().values()))

    _slots = parallel_slots

    def _report_host(self) -> str:
        if self.host is not None:
            return self.host
        hosts = _worker_hosts(self.client)
        if all(_is_local_host(h) for h in hosts):
            return "127.0.0.1"
        from distributed.utils import get_ip

        scheduler = urlparse(self.client.scheduler.address).hostname or "8.8.8.8"
        return get_ip(scheduler)

    def run(self, study: "Study", objective: Callable, budget, callbacks, show_progress: bool) -> None:
        """Run the study's trials on the cluster until ``budget`` is spent.

        A trial whose worker dies is re-run by Dask as the same task; that second start
        is refused, the trial FAILs "worker died" and its configuration is re-queued
        per ``Study(retries=...)``, so the study's next ``ask()`` re-runs it as a new,
        linked trial.
        """
        import socket

        client = self.client
        runner = _DaskRunner(self, client, self._slots())
        objective_bytes = dumps_objective(objective)
        server = ReportServer(study, host=self._report_host(), on_start=runner.on_start)
        runner.server = server
        run_id = uuid.uuid4().hex
        runner.run_id = run_id
        # The objective (with the data it captures) and the report key travel once per
        # worker, in a worker plugin: it also reaches workers that join later, and it
        # is no task dependency (a scattered future could be "lost" with a dying worker,
        # and Dask cancels every task depending on it).
        from hpcore.executors._dask_plugin import RunData

        plugin = RunData(run_id, (objective_bytes, server.address, server.authkey),
                         _put_run_data, _drop_run_data)
        runner.client_id = (os.getpid(), socket.gethostname())
        registered = False
        try:
            client.register_plugin(plugin)
            registered = True
            if self.worker_threads is None:
                self._set_shares(run_id)
            dispatch(study, budget, callbacks, show_progress, runner)
        finally:
            try:
                client.run(_forget_run, run_id, server.address, server.authkey)
            except Exception:  # noqa: BLE001 - best effort: a worker may be gone
                pass
            if registered:
                try:
                    client.unregister_worker_plugin(plugin.name)
                except Exception:  # noqa: BLE001 - best effort, as above
                    pass
            server.close()


    def _set_shares(self, run_id: str) -> None:
        """Tell each worker its thread share (one ``client.run`` per distinct share)."""
        client = self.client
        cpus = client.run(_cpu_count, on_error="ignore")   # a worker gone meanwhile: 1
        shares = thread_shares(cpus, _workers_info(client))
        by_value: dict[int, list[str]] = {}
        for addr, n in shares.items():
            by_value.setdefault(n, []).append(addr)
        for n, addrs in by_value.items():
            client.run(_set_share, run_id, n, workers=addrs, on_error="ignore")


class _DaskRunner:
    """The :func:`~hpcore.executors._dispatch.dispatch` runner over Dask futures."""

    def __init__(self, executor: DaskExecutor, client, n_slots: int) -> None:
        self.executor, self.client, self.n_slots = executor, client, n_slots
        self.server: ReportServer | None = None
        self.run_id = ""
        self.client_id: tuple = ()
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._started: set[int] = set()
        self._futures: dict[Any, Any] = {}   # handle (trial_id) -> future

    def on_start(self, trial_id: int, number: int) -> bool:
        """A task asks whether to run its trial: only its first start may."""
        with self._lock:
            if trial_id in self._started:
                return False
            self._started.add(trial_id)
            return True

    def free_slots(self, n_pending: int) -> int:
        return self.n_slots - n_pending

    def submit(self, trial) -> Any:
        fut = self.client.submit(
            _run_on_worker, self.run_id, self.executor.worker_threads,
            self.client_id, trial.number, trial.trial_id, trial.params, trial.budget, pure=False,
            key=f"hpcore-trial-{trial.number}-{self.run_id[:8]}")
        fut.add_done_callback(lambda _f: self.wake.set())
        self._futures[trial.trial_id] = fut
        return trial.trial_id

    def wait(self, handles: list, timeout: float) -> list[tuple[Any, tuple]]:
        self.wake.clear()
        done = [h for h in handles if self._futures[h].done()]
        if not done and self.wake.wait(timeout):
            done = [h for h in handles if self._futures[h].done()]
        return [(h, self._outcome(h, self._futures.pop(h))) for h in done]

    def _outcome(self, handle: Any, fut) -> tuple:
        try:
            outcome = fut.result()
        except Exception as exc:  # noqa: BLE001 - the task could not run or its workers died
            name = type(exc).__name__
            if name in ("KilledWorker", "FutureCancelledError", "CancelledError"):
                return ("lost", f"worker failed: {name}: {exc}")
            return ("fail", f"worker failed: {name}: {exc}")
        if outcome[0] == "superseded":
            return ("lost", "worker failed: its process died while running this trial "
                            "(Dask re-ran its task)")
        return outcome

    def cancel_all(self, handles: list) -> None:
        futs = [self._futures[h] for h in handles if h in self._futures]
        if futs:
            self.client.cancel(futs)
