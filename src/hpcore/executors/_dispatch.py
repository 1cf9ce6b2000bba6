"""What every parallel executor shares: the worker-side trial runner, the parent-side
report server, and the dispatch loop (ask in the parent, run in workers, tell in the
parent).

Sampling stays in the parent, so a sampler sees every pending trial (batch Bayesian
optimization fantasizes them) and trial numbers stay unique.  Workers send each
``trial.report`` to the parent over an authenticated local connection; the parent
stores it and answers the pruner's verdict, so pruning works with any storage.
"""
from __future__ import annotations

import logging
import os
import pickle
import socket
import threading
import time
import traceback
from multiprocessing.connection import Client, Connection, answer_challenge, deliver_challenge
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from hpcore.executors._signals import interruption_error
from hpcore.samplers.base import StudyExhausted
from hpcore.trial import FrozenTrial, Trial, TrialPruned, TrialState

if TYPE_CHECKING:  # pragma: no cover
    from hpcore.study import Study

logger = logging.getLogger("hpcore")


# ------------------------------------------------------------------- serialization
def dumps_objective(objective: Callable) -> bytes:
    """Pickle the objective (cloudpickle when installed, so lambdas and closures work)."""
    try:
        import cloudpickle

        return cloudpickle.dumps(objective)
    except ImportError:
        pass
    try:
        return pickle.dumps(objective)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError("objective: parallel runs need a picklable objective (a module-level "
                        f"function), or install cloudpickle: {exc}") from None


# ------------------------------------------------------------------- parent side
#: Seconds a new connection may take to authenticate before it is dropped.
HANDSHAKE_TIMEOUT = 5.0
#: Connections authenticating at once; further ones are closed at once (a flood of
#: silent peers costs at most this many threads for HANDSHAKE_TIMEOUT seconds).
MAX_HANDSHAKES = 64


class ReportServer:
    """Serves workers' report / user-attribute calls for one study, in threads.

    The accept thread only accepts: each new connection is authenticated (the
    ``multiprocessing.connection`` HMAC challenge, both ways, before anything is
    unpickled) on its own thread under a ``handshake_timeout`` deadline, then served
    on that thread.  A peer that connects and sends nothing costs one thread for
    ``handshake_timeout`` seconds and delays nobody else.

    Parameters
    ----------
    study : Study
        Receives ``study.report`` / ``study.set_user_attr`` calls.
    host : str
        Interface to listen on: ``"127.0.0.1"`` for local workers, an address the
        workers reach for a cluster.
    handshake_timeout : float
        Seconds a connection may take to authenticate.
    on_start : callable, optional
        ``on_start(trial_id, number) -> bool`` answers a worker's ``start`` call
        (whether to run the trial); default: always run.
    """

    def __init__(self, study: "Study", host: str = "127.0.0.1",
                 handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 on_start: Callable[[int, int], bool] | None = None) -> None:
        if not handshake_timeout > 0:
            raise ValueError(f"handshake_timeout must be > 0, got {handshake_timeout!r}")
        self.study = study
        self.authkey = os.urandom(32)
        self.handshake_timeout = float(handshake_timeout)
        self._on_start = on_start
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name == "posix":
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, 0))
            self._sock.listen(128)
        except OSError:
            self._sock.close()
            raise
        self._sock.settimeout(0.5)  # the accept loop notices close() even without a wake-up
        self.address = self._sock.getsockname()[:2]
        self._closed = False
        self._slots = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._conns_lock = threading.Lock()
        self._conns: set = set()
        self._thread = threading.Thread(target=self._accept_loop, name="hpcore-reports", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._closed:
                    return
                time.sleep(0.05)  # e.g. out of file descriptors: do not spin
                continue
            if self._closed or not self._slots.acquire(blocking=False):
                sock.close()
                continue
            try:
                threading.Thread(target=self._handshake_and_serve, args=(sock,),
                                 name="hpcore-report-conn", daemon=True).start()
            except RuntimeError:  # pragma: no cover - cannot start a thread
                self._slots.release()
                sock.close()

    def _handshake_and_serve(self, sock: socket.socket) -> None:
        try:
            conn = self._authenticate(sock)
        finally:
            self._slots.release()
        if conn is not None:
            self._serve(conn)

    def _authenticate(self, sock: socket.socket) -> Connection | None:
        """The HMAC handshake under a deadline; ``None`` if the peer fails or stalls."""
        sock.setblocking(True)
        guard = sock.dup()  # shutting it down ends a blocked read on the connection
        state = {"done": False}
        lock = threading.Lock()

        def expire() -> None:
            with lock:
                if not state["done"]:
                    state["done"] = True
                    try:
                        guard.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        timer = threading.Timer(self.handshake_timeout, expire)
        timer.daemon = True
        conn = Connection(sock.detach())
        timer.start()
        ok = False
        try:
            deliver_challenge(conn, self.authkey)
            answer_challenge(conn, self.authkey)
            with lock:
                ok = not state["done"]
                state["done"] = True
        except Exception:  # noqa: BLE001 - bad key, garbage, EOF, reset, timeout
            ok = False
        finally:
            timer.cancel()
            guard.close()
        if not ok:
            conn.close()
            return None
        with self._conns_lock:
            if self._closed:
                conn.close()
                return None
            self._conns.add(conn)
        return conn

    def _serve(self, conn: Connection) -> None:
        try:
            while True:
                try:
                    msg = conn.recv()
                except Exception:  # noqa: BLE001 - EOF, reset, a closed server
                    return
                try:
                    reply = ("ok", self._handle(*msg))
                except Exception as exc:  # noqa: BLE001 - sent back to the worker
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                try:
                    conn.send(reply)
                except Exception:  # noqa: BLE001
                    return
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()

    def _handle(self, op: str, trial_id: int, number: int, *args: Any) -> Any:
        ref = _TrialRef(trial_id, number)
        if op == "report":
            return self.study.report(ref, *args)
        if op == "attr":
            return self.study.set_user_attr(ref, *args)
        if op == "start":
            return True if self._on_start is None else bool(self._on_start(trial_id, number))
        raise ValueError(f"unknown operation {op!r}")

    def close(self) -> None:
        """Stop accepting and end every served connection."""
        self._closed = True
        try:
            self._sock.close()
        except OSError:  # pragma: no cover
            pass
        self._thread.join(timeout=2.0)
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.close()
            except OSError:  # pragma: no cover
                pass


class _TrialRef:
    __slots__ = ("trial_id", "number")

    def __init__(self, trial_id: int, number: int) -> None:
        self.trial_id, self.number = trial_id, number


# ------------------------------------------------------------------- worker side
class RemoteReporter:
    """A worker's connection to the parent's :class:`ReportServer` (thread-safe)."""

    def __init__(self, address, authkey: bytes) -> None:
        self._conn = Client(tuple(address) if isinstance(address, list) else address, authkey=authkey)
        self._lock = threading.Lock()

    def call(self, *msg: Any) -> Any:
        with self._lock:
            self._conn.send(msg)
            status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"hpcore parent refused {msg[0]}: {value}")
        return value

    def report(self, trial: Trial, step: int, value: float) -> bool:
        return self.call("report", trial.trial_id, trial.number, step, value)

    def set_attr(self, trial: Trial, key: str, value: Any) -> None:
        self.call("attr", trial.trial_id, trial.number, key, value)

    def start(self, trial_id: int, number: int) -> bool:
        """Ask the parent whether to run this trial (False: it was already started once,
        by a worker that is gone)."""
        return bool(self.call("start", trial_id, number))

    def close(self) -> None:
        try:
            self._conn.close()
        except OSError:  # pragma: no cover - already closed
            pass


def run_trial(objective: Callable, reporter: RemoteReporter | None, number: int, trial_id: int,
              params: dict, budget: Any) -> tuple:
    """Run one trial in a worker; returns ``(kind, payload)`` for the parent's tell.

    ``kind`` is ``"ok"`` (payload: the result), ``"pruned"`` (the intermediate
    values), ``"interrupted"`` (Ctrl-C reached the worker) or ``"fail"`` (the
    traceback, with the exception's true name).
    """
    trial = Trial(number, trial_id, params,
                  reporter=reporter.report if reporter else None,
                  attr_setter=reporter.set_attr if reporter else None, budget=budget)
    try:
        result = objective(trial)
    except TrialPruned:
        return ("pruned", trial.intermediate_values)
    except KeyboardInterrupt:
        return ("interrupted", trial.intermediate_values)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a FAIL
        return ("fail", "".join(traceback.format_exception(exc)).strip())
    except BaseException as exc:  # SystemExit from the objective: its trial fails
        return ("fail", f"{type(exc).__name__}: {exc}")
    try:
        pickle.dumps(result)
    except Exception:  # noqa: BLE001
        return ("fail", f"the objective returned an unpicklable {type(result).__name__}")
    return ("ok", result)


# ------------------------------------------------------------------- the loop
class Runner(Protocol):
    """What :func:`dispatch` needs from an executor's backend for one run."""

    def free_slots(self, n_pending: int) -> int:
        """How many more trials may be submitted now (``n_pending`` are in flight)."""

    def submit(self, trial: Trial) -> Any:
        """Start ``trial``; return a hashable handle."""

    def wait(self, handles: list, timeout: float) -> Iterable[tuple[Any, tuple]]:
        """``(handle, outcome)`` of trials that ended within ``timeout`` seconds.

        An outcome is run_trial's ``(kind, payload)``, or ``("lost", message)`` when
        the process running it died (the trial fails and its configuration is
        re-queued per ``Study(retries=...)``).  May raise to stop the run.
        """

    def cancel_all(self, handles: list) -> None:
        """Stop every trial in flight (the run is being aborted)."""


def _tell_outcome(study: "Study", trial: Trial, kind: str, payload: Any) -> FrozenTrial:
    if kind == "ok":
        return study.tell(trial, payload)
    if kind == "pruned":
        trial.intermediate_values = dict(payload)
        return study.tell(trial, state=TrialState.PRUNED)
    if kind == "interrupted":
        return study.tell(trial, state=TrialState.FAIL,
                          error="interrupted (KeyboardInterrupt) in the worker")
    if kind == "lost":
        return study.tell(trial, state=TrialState.FAIL, error=str(payload), retry=True)
    return study.tell(trial, state=TrialState.FAIL, error=str(payload))


def finish_outcome(study: "Study", trial: Trial, outcome: tuple) -> FrozenTrial | None:
    """Tell ``study`` the outcome a worker sent back; ``None`` when the trial had
    already been finished elsewhere (e.g. failed as stale by another process)."""
    kind, payload = outcome
    try:
        return _tell_outcome(study, trial, kind, payload)
    except Exception as exc:  # noqa: BLE001 - the result could not be recorded as it is
        try:
            still_running = study.storage.get_trial(trial.trial_id).state == TrialState.RUNNING
        except Exception:  # noqa: BLE001 - the storage itself fails: report the first error
            raise exc from None
        if not still_running:
            logger.warning("trial %d was finished elsewhere before its worker's result came "
                           "back (%s: %s)", trial.number, type(exc).__name__, exc)
            return None
        return study.tell(trial, state=TrialState.FAIL,
                          error=f"could not record the result: {type(exc).__name__}: {exc}")


def _requeued(study: "Study", frozen: FrozenTrial) -> bool:
    """Whether ``tell(..., retry=True)`` queued ``frozen``'s configuration for a re-run."""
    if frozen.state != TrialState.FAIL or not frozen.params:
        return False
    attempt = study.storage.get_trial(frozen.trial_id).system_attrs.get("attempt", 0)
    return attempt < study.retries


def dispatch(study: "Study", budget, callbacks, show_progress: bool, runner: Runner) -> None:
    """Keep the runner's slots busy until the budget or the sampler runs out.

    Trials are asked here (in the parent) only when the runner has a free slot, so a
    pool whose workers cannot start leaves no trial behind.  On any exception
    (Ctrl-C, SIGTERM, a callback's error, a pool that cannot start) the trials in
    flight are stopped and FAIL with the true cause, then the exception propagates.
    """
    pending: dict[Any, Trial] = {}
    exhausted = False
    try:
        while True:
            while (not exhausted and budget.may_start()
                   and runner.free_slots(len(pending)) > 0):
                try:
                    trial = study.ask()
                except StudyExhausted:
                    exhausted = True
                    break
                budget.started()
                try:
                    handle = runner.submit(trial)
                except BaseException as exc:  # never leave an asked trial RUNNING
                    study.tell(trial, state=TrialState.FAIL,
                               error=f"could not start: {type(exc).__name__}: {exc}")
                    raise
                pending[handle] = trial
            if not pending and (exhausted or not budget.may_start()):
                return
            for handle, outcome in runner.wait(list(pending), 0.2):
                trial = pending.pop(handle)
                frozen = finish_outcome(study, trial, outcome)
                if frozen is not None:
                    if outcome[0] == "lost" and _requeued(study, frozen):
                        budget.refund()   # the re-run of a lost trial is not a new trial
                    study.after_trial(frozen, callbacks, show_progress)
    except BaseException as exc:
        error = interruption_error(exc)
        try:
            runner.cancel_all(list(pending))
        finally:
            for trial in pending.values():
                try:
                    study.tell(trial, state=TrialState.FAIL, error=error)
                except Exception:  # noqa: BLE001 - finished meanwhile, or storage gone
                    pass
        raise
