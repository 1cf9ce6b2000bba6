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
import threading
import time
import traceback
from multiprocessing.connection import Client, Listener
from typing import TYPE_CHECKING, Any, Callable

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
class ReportServer:
    """Serves workers' report / user-attribute calls for one study, in threads."""

    def __init__(self, study: "Study", host: str = "127.0.0.1") -> None:
        self.study = study
        self.authkey = os.urandom(16)
        self._listener = Listener((host, 0), authkey=self.authkey)
        self.address = self._listener.address
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="hpcore-reports", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):
                if self._closed:
                    return
                continue
            except Exception:  # noqa: BLE001 - a bad handshake must not stop the server
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        with conn:
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    reply = ("ok", self._handle(*msg))
                except Exception as exc:  # noqa: BLE001 - sent back to the worker
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                try:
                    conn.send(reply)
                except OSError:
                    return

    def _handle(self, op: str, trial_id: int, number: int, *args: Any) -> Any:
        ref = _TrialRef(trial_id, number)
        if op == "report":
            return self.study._report(ref, *args)
        if op == "attr":
            return self.study._set_user_attr(ref, *args)
        raise ValueError(f"unknown operation {op!r}")

    def close(self) -> None:
        self._closed = True
        try:  # wake the blocking accept()
            Client(self.address, authkey=self.authkey).close()
        except OSError:
            pass
        self._listener.close()


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


def run_trial(objective: Callable, reporter: RemoteReporter | None, number: int, trial_id: int,
              params: dict, budget: Any) -> tuple:
    """Run one trial in a worker; returns ``(kind, payload)`` for the parent's tell."""
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
    try:
        pickle.dumps(result)
    except Exception:  # noqa: BLE001
        return ("fail", f"the objective returned an unpicklable {type(result).__name__}")
    return ("ok", result)


# ------------------------------------------------------------------- the loop
def finish_from_worker(study: "Study", trial: Trial, outcome: tuple) -> FrozenTrial:
    """Tell ``study`` the outcome a worker sent back."""
    kind, payload = outcome
    if kind == "ok":
        return study.tell(trial, payload)
    if kind == "pruned":
        trial.intermediate_values = dict(payload)
        return study.tell(trial, state=TrialState.PRUNED)
    if kind == "interrupted":
        return study.tell(trial, state=TrialState.FAIL, error="interrupted (KeyboardInterrupt)")
    return study.tell(trial, state=TrialState.FAIL, error=str(payload))


def dispatch(study: "Study", budget, callbacks, show_progress: bool, n_slots: int,
             submit: Callable[[Trial], Any], wait_any: Callable[[list], list],
             outcome_of: Callable[[Any], tuple], cancel_all: Callable[[list], None]) -> None:
    """Keep ``n_slots`` trials in flight until the budget or the sampler runs out.

    ``submit(trial)`` returns a future; ``wait_any(futures)`` returns the finished
    ones; ``outcome_of(future)`` returns the worker's ``(kind, payload)`` (raising if
    the worker died); ``cancel_all(futures)`` stops what is in flight.
    """
    pending: dict[Any, Trial] = {}
    exhausted = False
    try:
        while True:
            while len(pending) < n_slots and not exhausted and budget.may_start():
                try:
                    trial = study.ask()
                except StudyExhausted:
                    exhausted = True
                    break
                budget.started()
                try:
                    fut = submit(trial)
                except BaseException as exc:  # never leave an asked trial RUNNING
                    study.tell(trial, state=TrialState.FAIL,
                               error=f"could not start: {type(exc).__name__}: {exc}")
                    raise
                pending[fut] = trial
            if not pending:
                return
            for fut in wait_any(list(pending)):
                trial = pending.pop(fut)
                try:
                    outcome = outcome_of(fut)
                except Exception as exc:  # noqa: BLE001 - the worker died: this trial fails
                    outcome = ("fail", f"worker failed: {type(exc).__name__}: {exc}")
                frozen = finish_from_worker(study, trial, outcome)
                study._after_trial(frozen, callbacks, show_progress)
    except BaseException:
        cancel_all(list(pending))
        for trial in pending.values():
            try:
                study.tell(trial, state=TrialState.FAIL, error="interrupted (KeyboardInterrupt)")
            except ValueError:  # already finished in the meantime
                pass
        raise


def wait_with_timeout(poll: Callable[[float], list], step: float = 0.2) -> list:
    """Poll ``poll(step)`` until it returns something (keeps Ctrl-C responsive)."""
    while True:
        done = poll(step)
        if done:
            return done
        time.sleep(0)
