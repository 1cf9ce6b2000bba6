"""Executors: where an ``optimize`` run's trials execute.

An executor has one method, ``run(study, objective, budget, callbacks, show_progress)``,
and talks to the study only through its public seam: ``study.ask()``,
``study.report(trial, step, value)``, ``study.set_user_attr(trial, key, value)``,
``study.tell(...)`` and ``study.after_trial(frozen, callbacks, show_progress)``.
:func:`get_executor` picks the default one for ``Study.optimize`` (so the study
imports no concrete executor), and :func:`handle_sigterm` gives every run the same
SIGTERM behaviour.
"""
from __future__ import annotations

import numbers
from typing import Any

from hpcore.executors._signals import Terminated, handle_sigterm, interruption_error
from hpcore.executors.local import ProcessExecutor

__all__ = ["ProcessExecutor", "Terminated", "get_executor", "handle_sigterm",
           "interruption_error"]


def get_executor(n_jobs: int = 1, executor: Any = None) -> Any:
    """The executor ``Study.optimize(n_jobs=..., executor=...)`` runs trials with.

    Parameters
    ----------
    n_jobs : int
        1: run inline (returns ``None``); ``> 1`` or -1 (all cores): a
        :class:`ProcessExecutor` with that many workers.
    executor : object, optional
        An executor (anything with ``run(study, objective, budget, callbacks,
        show_progress)``); returned as given, and ``n_jobs`` is then ignored.

    Returns
    -------
    executor or None
        ``None`` means: run the trials in this thread.
    """
    if executor is not None:
        if not callable(getattr(executor, "run", None)):
            raise TypeError("executor must have a run(study, objective, budget, callbacks, "
                            f"show_progress) method, got {type(executor).__name__}")
        return executor
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an int, got {type(n_jobs).__name__}")
    if int(n_jobs) == 1:
        return None
    return ProcessExecutor(int(n_jobs))
