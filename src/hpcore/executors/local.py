"""Local process pool: trials run in ``n_jobs`` worker processes of this machine.

Objectives are often not thread-safe and hold the GIL, so workers are processes,
started with ``spawn`` (never ``fork``: a forked child of a process that ran an OpenMP
region can hang).  Each worker limits OpenMP and BLAS to ``worker_threads`` threads.
"""
from __future__ import annotations

import multiprocessing as mp
import numbers
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from concurrent.futures import wait as futures_wait
from typing import TYPE_CHECKING, Any, Callable

from hpcore.executors._dispatch import (ReportServer, RemoteReporter, dispatch, dumps_objective,
                                        run_trial, wait_with_timeout)

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

__all__ = ["ProcessExecutor", "limit_threads"]

_WORKER: dict[str, Any] = {}


def limit_threads(n: int) -> None:
    """Limit OpenMP (our kernels) and BLAS to ``n`` threads in this process."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    from hpcore._kernels import _openmp

    _openmp.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        _WORKER["threadpool_limits"] = threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        pass


def _init_worker(objective_bytes: bytes, address, authkey: bytes, n_threads: int) -> None:
    import pickle

    limit_threads(n_threads)
    _WORKER["objective"] = pickle.loads(objective_bytes)
    _WORKER["reporter"] = RemoteReporter(address, authkey)


def _run_in_worker(number: int, trial_id: int, params: dict, budget: Any) -> tuple:
    return run_trial(_WORKER["objective"], _WORKER["reporter"], number, trial_id, params, budget)


class ProcessExecutor:
    """Run trials in a pool of local worker processes.

    Parameters
    ----------
    n_jobs : int
        Worker processes (-1: one per core).
    worker_threads : int
        OpenMP/BLAS threads per worker (default 1, so ``n_jobs`` workers do not
        oversubscribe the cores).
    start_method : {"spawn", "forkserver"}
    """

    def __init__(self, n_jobs: int = -1, worker_threads: int = 1, start_method: str = "spawn") -> None:
        # NumPy integers are accepted, as Study.optimize accepts them
        if isinstance(n_jobs, numbers.Integral) and not isinstance(n_jobs, bool):
            n_jobs = int(n_jobs)
        if isinstance(worker_threads, numbers.Integral) and not isinstance(worker_threads, bool):
            worker_threads = int(worker_threads)
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
            raise ValueError(f"n_jobs must be >= 1 or -1 (all cores), got {n_jobs!r}")
        if isinstance(worker_threads, bool) or not isinstance(worker_threads, int) or worker_threads < 1:
            raise ValueError(f"worker_threads must be an int >= 1, got {worker_threads!r}")
        if start_method not in ("spawn", "forkserver"):
            raise ValueError("start_method must be 'spawn' or 'forkserver' (fork is unsafe with OpenMP)")
        self.n_jobs = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
        self.worker_threads = worker_threads
        self.start_method = start_method

    def run(self, study: "Study", objective: Callable, budget, callbacks, show_progress: bool) -> None:
        """Run the study's trials until ``budget`` (an ``optimize`` run budget) is spent."""
        server = ReportServer(study)
        initargs = (dumps_objective(objective), server.address, server.authkey, self.worker_threads)

        def new_pool():
            return ProcessPoolExecutor(
                max_workers=self.n_jobs, mp_context=mp.get_context(self.start_method),
                initializer=_init_worker, initargs=initargs)

        pools = [new_pool()]

        def submit(trial):
            args = (_run_in_worker, trial.number, trial.trial_id, trial.params, trial.budget)
            try:
                return pools[0].submit(*args)
            except BrokenProcessPool:
                # a worker died (crash, OOM kill): its trials have failed; start a new pool
                pools[0].shutdown(wait=False, cancel_futures=True)
                pools[0] = new_pool()
                return pools[0].submit(*args)

        def wait_any(futs):
            return wait_with_timeout(
                lambda t: list(futures_wait(futs, timeout=t, return_when=FIRST_COMPLETED)[0]))

        def cancel_all(futs):
            for f in futs:
                f.cancel()
            for proc in list((getattr(pools[0], "_processes", None) or {}).values()):
                proc.terminate()

        try:
            dispatch(study, budget, callbacks, show_progress, self.n_jobs, submit, wait_any,
                     lambda f: f.result(), cancel_all)
        finally:
            pools[0].shutdown(wait=True, cancel_futures=True)
            server.close()
