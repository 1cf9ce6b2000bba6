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


def _objective_for(run_id: str, objective_bytes: bytes) -> Callable:
    with _CACHE_LOCK:
        objective = _OBJECTIVES.get(run_id)
        if objective is None:
            objective = pickle.loads(objective_bytes)
            _OBJECTIVES[run_id] = objective
            while len(_OBJECTIVES) > _MAX_OBJECTIVES:
                _OBJECTIVES.popitem(last=False)
        return objective


def _limit_worker_threads(n_threads: int, client_pid: int, client_host: str) -> None:
    """Limit OpenMP/BLAS once per worker process (not in the client's own process, as a
    ``processes=False`` cluster would be); OpenMP's setting is per calling thread."""
    import socket

    if os.getpid() == client_pid and socket.gethostname() == client_host:
        return
    from hpcore._kernels import _openmp

    with _CACHE_LOCK:
        if _THREADS_SET.get("n") != n_threads:
            from hpcore.executors.local import limit_threads

            limit_threads(n_threads)
            _THREADS_SET["n"] = n_threads
    _openmp.set_num_threads(n_threads)


def _run_on_worker(objective_bytes: bytes, run_id: str, address, authkey: bytes,
                   n_threads: int, client: tuple, number: int, trial_id: int, params: dict,
                   budget: Any) -> tuple:
    _limit_worker_threads(n_threads, *client)
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
        _OBJECTIVES.pop(run_id, None)
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


def _worker_hosts(client) -> list[str | None]:
    hosts = []
    for addr in client.scheduler_info().get("workers", {}):
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
    worker_threads : int
        OpenMP/BLAS threads a trial may use in a worker process (default 1, so that
        the worker's task threads do not oversubscribe its cores).
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

    def __init__(self, client, worker_threads: int = 1, n_slots: int | None = None,
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
        if isinstance(worker_threads, bool) or not isinstance(worker_threads, int) or worker_threads < 1:
            raise ValueError(f"worker_threads must be an int >= 1, got {worker_threads!r}")
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
        # On every worker: a copy held by one worker only dies with it, and Dask then
        # cancels every trial task for "lost dependencies".
        [runner.obj_future] = client.scatter([objective_bytes], hash=False, broadcast=True)
        runner.client_id = (os.getpid(), socket.gethostname())
        try:
            dispatch(study, budget, callbacks, show_progress, runner)
        finally:
            try:
                client.run(_forget_run, run_id, server.address, server.authkey)
            except Exception:  # noqa: BLE001 - best effort: a worker may be gone
                pass
            client.cancel([runner.obj_future])
            server.close()


class _DaskRunner:
    """The :func:`~hpcore.executors._dispatch.dispatch` runner over Dask futures."""

    def __init__(self, executor: DaskExecutor, client, n_slots: int) -> None:
        self.executor, self.client, self.n_slots = executor, client, n_slots
        self.server: ReportServer | None = None
        self.run_id = ""
        self.obj_future = None
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
            _run_on_worker, self.obj_future, self.run_id, self.server.address,
            self.server.authkey, self.executor.worker_threads, self.client_id, trial.number,
            trial.trial_id, trial.params, trial.budget, pure=False,
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
