"""Local process pool: trials run in ``n_jobs`` worker processes of this machine.

Objectives are often not thread-safe and hold the GIL, so workers are processes,
started with ``spawn`` (never ``fork``: a forked child of a process that ran an OpenMP
region can hang).  Each worker limits OpenMP and BLAS to ``worker_threads`` threads.

The pool is our own (not ``concurrent.futures``, whose pool breaks as a whole when
one worker dies): one duplex pipe per worker, one trial at a time on it, so the
parent always knows which worker runs which trial.

- A worker that dies mid-trial (a crash, an OOM kill) fails only its own trial, which
  is re-queued per ``Study(retries=...)``; a new worker takes its place.
- Trials are asked only for workers that have started, so workers that die while
  starting leave no trial behind; :data:`MAX_STARTUP_FAILURES` such deaths in a row
  stop the run with :class:`WorkerStartupError` (the usual cause: a script without
  an ``if __name__ == "__main__":`` guard, which every spawned worker re-runs).
- Workers exit when the parent dies (a watchdog thread in each, and the pipe's end).
"""
from __future__ import annotations

import multiprocessing as mp
import numbers
import os
import pickle
import signal
import time
import traceback
from multiprocessing.connection import wait as mp_wait
from typing import TYPE_CHECKING, Any, Callable, Iterable

from hpcore.executors._dispatch import ReportServer, RemoteReporter, dispatch, dumps_objective, run_trial
from hpcore.executors._signals import watch_parent

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study
    from hpcore.trial import Trial

__all__ = ["MAX_STARTUP_FAILURES", "ProcessExecutor", "WorkerStartupError", "limit_threads"]

#: Worker deaths before start-up, in a row, that stop a run.
MAX_STARTUP_FAILURES = 3

_WORKER: dict[str, Any] = {}

_GUARD_HINT = (
    "With the {method!r} start method every worker process imports your main script "
    "again, so the code that creates and runs the study must sit under\n"
    "    if __name__ == \"__main__\":\n"
    "(see the README). Otherwise check that the script imports cleanly in a fresh "
    "process: its error is printed above.")


class WorkerStartupError(RuntimeError):
    """Worker processes of a :class:`ProcessExecutor` could not start."""


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


def _worker_main(conn, objective_bytes: bytes, address, authkey: bytes, n_threads: int,
                 parent_pid: int) -> None:
    """A worker: start, say ``ready``, then run the trials the parent sends, one at a time."""
    if os.getppid() != parent_pid and os.name == "posix":
        parent_pid = os.getppid()  # forkserver: our parent is the fork server
    watch_parent(parent_pid)
    try:
        limit_threads(n_threads)
        objective = pickle.loads(objective_bytes)
        reporter = RemoteReporter(address, authkey)
    except BaseException as exc:  # noqa: BLE001 - told to the parent, which stops the run
        try:
            conn.send(("init_error", "".join(traceback.format_exception(exc)).strip()))
        except Exception:  # noqa: BLE001
            pass
        return
    try:
        conn.send(("ready", os.getpid()))
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if msg is None:  # shut down
                return
            outcome = run_trial(objective, reporter, *msg)
            conn.send(("done", outcome))
    except KeyboardInterrupt:  # Ctrl-C reached the whole process group: quietly stop
        return
    except (EOFError, OSError, BrokenPipeError):
        return
    finally:
        reporter.close()


class _Worker:
    __slots__ = ("proc", "conn", "ready", "handle")

    def __init__(self, proc, conn) -> None:
        self.proc, self.conn = proc, conn
        self.ready = False
        self.handle: Any = None   # the trial it runs (its trial_id), or None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Pool:
    """``n`` worker processes, each with its own pipe; the runner of :func:`dispatch`."""

    def __init__(self, n: int, ctx, initargs: tuple, start_method: str) -> None:
        self.n, self.ctx, self.initargs, self.start_method = n, ctx, initargs, start_method
        self.workers: list[_Worker] = []
        self.startup_failures = 0
        self.closing = False
        for _ in range(n):
            self._spawn()

    def _spawn(self) -> None:
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_worker_main, name="hpcore-worker",
                                args=(child_conn, *self.initargs, os.getpid()))
        try:
            proc.start()
        finally:
            child_conn.close()
        self.workers.append(_Worker(proc, parent_conn))

    # -- Runner ---------------------------------------------------------------------
    def free_slots(self, n_pending: int) -> int:
        return sum(1 for w in self.workers if w.ready and w.handle is None)

    def submit(self, trial: "Trial") -> Any:
        for w in self.workers:
            if w.ready and w.handle is None:
                w.handle = trial.trial_id
                try:
                    w.conn.send((trial.number, trial.trial_id, trial.params, trial.budget))
                except OSError:  # it just died: wait() sees its sentinel and fails this trial
                    pass
                return w.handle
        raise RuntimeError("no idle worker")  # pragma: no cover - dispatch checks free_slots

    def wait(self, handles: list, timeout: float) -> Iterable[tuple[Any, tuple]]:
        by_obj: dict[Any, _Worker] = {}
        for w in self.workers:
            by_obj[w.conn] = w
            by_obj[w.proc.sentinel] = w
        ready = mp_wait(list(by_obj), timeout)
        done: list[tuple[Any, tuple]] = []
        dead: list[_Worker] = []
        for obj in ready:  # messages first: a worker may send its result, then die
            w = by_obj[obj]
            if obj is not w.conn or w in dead:
                continue
            try:
                kind, payload = w.conn.recv()
            except (EOFError, OSError):
                dead.append(w)
                continue
            if kind == "ready":
                w.ready = True
                self.startup_failures = 0
            elif kind == "done":
                done.append((w.handle, payload))
                w.handle = None
            elif kind == "init_error":
                raise WorkerStartupError(
                    f"ProcessExecutor: a worker process could not set up the objective:\n{payload}")
        for obj in ready:
            w = by_obj[obj]
            if obj is w.proc.sentinel and w not in dead:
                dead.append(w)
        for w in dead:
            done.extend(self._bury(w))
        return done

    def _bury(self, w: _Worker) -> list[tuple[Any, tuple]]:
        """A worker died: fail (and re-queue) its trial, or count a start-up death."""
        w.proc.join(timeout=5.0)
        if w.proc.exitcode is None:  # its pipe broke but it lives on: make sure it ends
            w.proc.kill()
            w.proc.join(timeout=5.0)
        w.conn.close()
        self.workers.remove(w)
        how = _describe_exit(w.proc.exitcode)
        out = []
        if w.handle is not None:
            out.append((w.handle, ("lost", f"worker failed: its process died ({how}) "
                                              "while running this trial")))
        elif not w.ready:
            self.startup_failures += 1
            if self.startup_failures >= MAX_STARTUP_FAILURES:
                raise WorkerStartupError(
                    f"ProcessExecutor: {self.startup_failures} worker processes in a row died "
                    f"while starting ({how}), before running any trial. "
                    + _GUARD_HINT.format(method=self.start_method))
        if not self.closing:
            self._spawn()
        return out

    def cancel_all(self, handles: list) -> None:
        self.terminate()

    # -- shutdown -------------------------------------------------------------------
    def shutdown(self) -> None:
        """Ask idle workers to exit, then make sure every worker is gone."""
        self.closing = True
        for w in self.workers:
            if w.handle is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        deadline = time.monotonic() + 2.0
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        self.terminate()

    def terminate(self) -> None:
        self.closing = True
        for w in self.workers:
            if w.proc.exitcode is None:
                w.proc.terminate()
        deadline = time.monotonic() + 2.0
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.proc.exitcode is None:
                w.proc.kill()
                w.proc.join(timeout=2.0)
            w.conn.close()
        self.workers = []


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

    Notes
    -----
    Run a script that uses it under ``if __name__ == "__main__":``: spawned workers
    import the main script again.  Without the guard every worker dies at start-up and
    the run stops with :class:`WorkerStartupError` (no trial is created).
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

    def __repr__(self) -> str:
        return (f"ProcessExecutor(n_jobs={self.n_jobs}, worker_threads={self.worker_threads}, "
                f"start_method={self.start_method!r})")

    def run(self, study: "Study", objective: Callable, budget, callbacks, show_progress: bool) -> None:
        """Run the study's trials until ``budget`` (an ``optimize`` run budget) is spent."""
        objective_bytes = dumps_objective(objective)
        server = ReportServer(study)
        pool = None
        try:
            initargs = (objective_bytes, server.address, server.authkey, self.worker_threads)
            pool = _Pool(self.n_jobs, mp.get_context(self.start_method), initargs,
                         self.start_method)
            dispatch(study, budget, callbacks, show_progress, pool)
        finally:
            try:
                if pool is not None:
                    pool.shutdown()
            finally:
                server.close()
