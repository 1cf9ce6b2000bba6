"""Evaluation workers of :mod:`hpcore.automl`: one process per parallel slot.

A worker holds the training data and the CV folds (sent once, when it starts) and
evaluates one pipeline at a time, stage by stage (a training subsample of the first
fold, then each full fold).  After each stage it sends ``("report", step, value,
fit_seconds)`` and waits for the parent's verdict (``True``: go on, ``False``: stop);
after the last one it sends ``("done", fold_scores, oof, fit_seconds)``.  A pipeline
error sends ``("error", traceback)``.  ``("refit", params)`` fits the pipeline on all the
rows and sends ``("fitted", pipeline, fit_seconds)`` (the final refit, which the parent
stops at its hard deadline by terminating the process).  Because the evaluation lives in its own
process, the parent can abandon it at the time budget by terminating the process.
"""
from __future__ import annotations

import multiprocessing as mp
import time
import traceback
import warnings
from typing import Any

import numpy as np

__all__ = ["Worker", "evaluate_stage", "fit_predict", "fork_safe", "make_context"]

# What the fork server imports before forking workers: only what every worker needs,
# so the first worker starts as soon as possible (estimator modules are imported on
# first use; a replacement worker for a killed one still starts from a warm server).
_PRELOAD = ["numpy", "sklearn.base", "hpcore.automl._worker"]


def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        try:
            ctx.set_forkserver_preload(_PRELOAD)
        except Exception:  # noqa: BLE001 - preloading is an optimization only
            pass
        return ctx
    return mp.get_context("spawn")


def fit_predict(params: dict, X: np.ndarray, y: np.ndarray, X_val: np.ndarray, task: str,
                n_classes: int, seed: int, impute: bool) -> tuple[Any, np.ndarray, float]:
    """Fit the pipeline of ``params`` on ``(X, y)`` and predict ``X_val``: class
    probabilities for classification, values for regression.  Returns
    ``(pipeline, predictions, fit_seconds)``."""
    from hpcore.automl._models import class_scores
    from hpcore.automl.space import build_pipeline

    pipe = build_pipeline(params, task, X.shape[0], X.shape[1], seed=seed, impute=impute)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X, y)
        fit_s = time.perf_counter() - t0
        if task == "classification":
            pred = class_scores(pipe, X_val, n_classes, np.arange(n_classes))
        else:
            pred = np.asarray(pipe.predict(X_val), dtype=float).ravel()
    if not np.all(np.isfinite(pred)):
        raise ValueError("the pipeline predicted non-finite values")
    return pipe, pred, fit_s


def evaluate_stage(params, X, y, folds, stage, task, n_classes, seed, impute, score_fn):
    """One stage ``(step, fold, n_sub)``: fit on the fold's training rows (the first
    ``n_sub`` of them when given; the rows are pre-shuffled) and score its validation
    rows.  Returns ``(score, val_index, predictions, fit_seconds)``."""
    _, fold, n_sub = stage
    tr, va = folds[fold]
    if n_sub is not None:
        tr = tr[:n_sub]
    _, pred, fit_s = fit_predict(params, X[tr], y[tr], X[va], task, n_classes, seed, impute)
    return float(score_fn(y[va], pred)), va, pred, fit_s


def _worker_main(conn, X, y, folds, task, n_classes, seed, impute, metric) -> None:
    from threadpoolctl import threadpool_limits

    from hpcore.automl._metrics import get_metric

    score_fn = get_metric(metric, task)[0]
    with threadpool_limits(1):
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if msg is None:
                return
            if msg[0] == "refit":
                try:
                    pipe, _, fit_s = fit_predict(msg[1], X, y, X[:1], task, n_classes, seed,
                                                 impute)
                    conn.send(("fitted", pipe, fit_s))
                except Exception:  # noqa: BLE001 - reported to the parent
                    conn.send(("error", traceback.format_exc(limit=6)))
                continue
            _, params, stages = msg
            try:
                oof = None
                scores, fits = [], []
                go = True
                pending = 0.0
                for stage in stages:
                    s, va, pred, fit_s = evaluate_stage(params, X, y, folds, stage, task,
                                                        n_classes, seed, impute, score_fn)
                    fits.append(fit_s)
                    pending += fit_s
                    if stage[2] is None:
                        if oof is None:
                            oof = np.zeros((len(y), n_classes) if task == "classification"
                                           else len(y))
                        oof[va] = pred
                        scores.append(s)
                        value = float(np.mean(scores))
                    else:
                        value = s
                    if stage[0] is None:
                        continue
                    conn.send(("report", stage[0], value, pending))
                    pending = 0.0
                    go = conn.recv()
                    if not go:
                        break
                if go:
                    conn.send(("done", scores, oof, fits))
            except Exception:  # noqa: BLE001 - a pipeline's error fails its trial only
                conn.send(("error", traceback.format_exc(limit=6)))


class Worker:
    """One evaluation process and its pipe."""

    def __init__(self, ctx, X, y, folds, task, n_classes, seed, impute, metric) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, daemon=True,
                                args=(child, X, y, folds, task, n_classes, seed, impute,
                                      metric))
        self.proc.start()
        child.close()
        self.job: Any = None

    def submit(self, job, params, stages) -> None:
        self.job = job
        self.conn.send(("eval", params, stages))

    def refit(self, job, params) -> None:
        self.job = job
        self.conn.send(("refit", params))

    def kill(self) -> None:
        try:
            self.proc.terminate()
            self.proc.join(0.5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(0.5)
        finally:
            self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, EOFError, BrokenPipeError):
            pass
        self.proc.join(0.2)
        if self.proc.is_alive():
            self.kill()
        else:
            self.conn.close()


def fork_safe() -> bool:
    """Whether a worker may be forked from this process now: on Linux, with no other
    Python thread running (a thread could hold a lock the child inherits locked).

    A forked worker starts in milliseconds with every module already imported, where a
    fork server first imports numpy, scikit-learn and hpcore (seconds; over 15 s on a
    loaded machine).  OpenMP (GNU libgomp) is not fork-safe for parallel regions of
    more than one thread after the parent has used it; workers run every fit under
    ``threadpool_limits(1)`` (and LightGBM / XGBoost with ``n_jobs=1``), so their
    regions are single-threaded and never touch the inherited thread pool."""
    import sys
    import threading

    return (sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()
            and threading.active_count() == 1)


def make_context(fork: bool = False):
    """The multiprocessing context of the workers: ``fork`` when asked and
    :func:`fork_safe`, else the fork server where available, else spawn."""
    if fork and fork_safe():
        return mp.get_context("fork")
    return _context()
