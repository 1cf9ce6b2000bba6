"""`AutoML`: model selection and hyperparameter search over scikit-learn pipelines.

The search is an :class:`hpcore.Study` over :func:`~hpcore.automl.space.pipeline_space`
with a :class:`hpcore.BayesSampler` (multi-fidelity, BOHB's rule) and an
:class:`hpcore.ASHA` pruner over a per-trial fidelity ladder:

* on data with at least ``2000`` training rows per fold, the first rungs fit the first
  fold's training rows subsampled to 1/9 and 1/3 (training-set size);
* then each CV fold in turn, reporting the mean score of the folds done so far.

Report steps are placed so that ASHA's rungs (1, 3, 9) fall after the first cheap
stage, after about a third of the work and at the end: a bad pipeline is dropped
after a fraction of its cost.  The first trials are the library defaults of every
estimator (:mod:`hpcore.automl.defaults`), or the best pipelines of a previous search
(``warm_start``).

Each evaluation runs in a worker process (``n_jobs`` of them; forked where that is safe,
so they start in milliseconds, else started from a fork server while the first warm-start
pipelines are evaluated in-process, stage by stage within the time left), so a trial that
would overrun the wall-clock ``time_budget`` is stopped by terminating its process, and a
trial is not started when the fit times seen so far say its first stage cannot finish
in time.  Time is reserved for the final refit on all the data, estimated from the
chosen pipeline's slowest fold fit scaled to all the rows by its estimator family's
growth (:func:`_row_scale`).  The refit runs in a worker too, under a hard deadline
(``time_budget`` plus :func:`overrun_allowance` minus a cleanup margin): see
:meth:`AutoML._refit_members` for what replaces a refit that does not fit.  An
optional greedy ensemble (Caruana et al. 2004) over the out-of-fold predictions of the
best pipelines replaces the single best pipeline when it scores higher by more than the
standard error of that gain, paired over the out-of-fold rows
(:func:`~hpcore.automl.ensemble.prefer_ensemble`: on small data a gain of a row or two
is selection noise).
"""
from __future__ import annotations

import math
import multiprocessing.connection as mpc
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import hpcore as hp
from hpcore.automl._metrics import ROW_METRICS, get_metric
from hpcore.automl._worker import Worker, fit_predict, fork_safe, make_context
from hpcore.automl.defaults import default_configs
from hpcore.automl.ensemble import caruana_ensemble, ensemble_gain, prefer_ensemble
from hpcore.automl.space import TASKS, build_pipeline, pipeline_space

__all__ = ["AutoML", "search"]

#: While the workers start, warm-start pipelines are evaluated in the main process (on
#: data of at most ``_INLINE_MAX_ROWS`` rows and ``_INLINE_MAX_CELLS`` values), stage
#: by stage, each stage started only when its estimated time fits in the time left:
#: on data with subsample rungs every estimator (the subsample stages measure its
#: cost first); otherwise all but these, whose first fold may take seconds.
_NOT_INLINE_SMALL = frozenset({"mlp"})
_INLINE_MAX_CELLS = 500_000
_INLINE_MAX_ROWS = 5000

#: Fit time against rows: ~ n log n for tree ensembles and boosters, ~ n^2 for kernel
#: SVMs, ~ n for the rest (linear models, KNN, MLP at a fixed number of epochs).
_NLOGN = frozenset({"rf", "et", "hgb", "lgbm", "xgb"})
_QUADRATIC = frozenset({"svc", "svr"})
#: Margin on the refit estimate (slowest fold fit, scaled by rows).
_REFIT_MARGIN = 1.3
#: Seconds kept after the hard refit deadline for stopping workers and assembling.
_CLEANUP_S = 0.5

#: Training rows per fold from which the subsample rungs are used.
SUBSAMPLE_MIN_ROWS = 2000
_MAX_STEP = 9


@dataclass
class _Job:
    trial: hp.Trial
    params: dict
    stages: list
    warm: bool
    started: float
    stage_times: list = field(default_factory=list)


def _stages(n_train_fold: int, cv: int) -> list[tuple[int | None, int, int | None]]:
    """The fidelity ladder ``[(report step or None, fold, n_sub or None), ...]``.

    ASHA's rungs are steps 1, 3 and 9.  With subsample rungs, steps 1 and 3 are the
    first fold fitted on 1/9 and 1/3 of its training rows, then the full folds report
    steps 4..9.  Without them, the first fold does not report (one fold's score is too
    noisy on small data), the second reports step 3 (both lower rungs, on the mean of
    two folds: one pruning point at 2/cv of the cost), and the rest steps up to 9."""
    out: list[tuple[int | None, int, int | None]] = []
    if n_train_fold >= SUBSAMPLE_MIN_ROWS:
        out += [(1, 0, n_train_fold // 9), (3, 0, n_train_fold // 3)]
        for k in range(1, cv + 1):
            out.append((3 + int(math.ceil(6 * k / cv)), k - 1, None))
    else:
        out.append((None, 0, None))
        for k in range(2, cv + 1):
            out.append((3 + int(math.ceil(6 * (k - 2) / (cv - 2))) if cv > 2 else 9,
                        k - 1, None))
    steps = [s for s, _, _ in out]
    last = 0
    for i, s in enumerate(steps):       # strictly increasing, the last one 9
        if s is None:
            continue
        s = max(s, last + 1)
        steps[i] = last = s
    steps[-1] = max(_MAX_STEP, steps[-1])
    return [(s, f, n) for s, (_, f, n) in zip(steps, out)]


def overrun_allowance(time_budget: float) -> float:
    """The overrun :meth:`AutoML.fit` is built to stay within: ``max(10%, 2 s)``."""
    return max(0.1 * float(time_budget), 2.0)


def _row_scale(name: str, n_all: int, n_fold: int) -> float:
    """Factor from a fit on ``n_fold`` rows to one on ``n_all`` rows for estimator
    ``name``: ``r = n_all / n_fold``; ``r * log(n_all) / log(n_fold)`` for tree
    ensembles and boosters (n log n), ``r ** 2`` for kernel SVMs, ``r`` otherwise."""
    n_fold = max(2, int(n_fold))
    r = max(1.0, n_all / n_fold)
    if name in _QUADRATIC:
        return r * r
    if name in _NLOGN:
        return r * max(1.0, math.log(max(n_all, 2)) / math.log(n_fold))
    return r


def _plan_refit(members: list, ranked: list, est: Mapping[int, float], now: float,
                deadline: float, slack: float, cheap: float):
    """Which pipelines the final refit fits, before any is started.

    ``members``: the chosen model's ``[(weight, number), ...]``, heaviest first;
    ``ranked``: every completed trial's number, best CV score first; ``est``: refit
    seconds per number.  The lead (the heaviest member, the best pipeline when no
    ensemble was chosen) is kept when ``now + est <= deadline + slack``; else the
    heaviest member that fits, else the best-ranked completed pipeline that fits (the
    model becomes that single pipeline), else the one with the smallest estimate.
    The fallback, fitted in-process only if the lead's refit has not finished near the
    hard deadline, is the best-ranked pipeline whose estimate is at most ``cheap``
    seconds (else the one with the smallest estimate); ``None`` when it is the lead.

    Returns ``(members, lead, fallback)``: the members to fit, lead first (the others
    are each started only when they fit before ``deadline``)."""
    fits = [n for n in ranked if now + est[n] <= deadline + slack]
    member_fits = [(w, n) for w, n in members if now + est[n] <= deadline + slack]
    if now + est[members[0][1]] <= deadline + slack:
        plan = list(members)
    elif member_fits:
        plan = member_fits
    elif fits:
        plan = [(1.0, fits[0])]
    else:
        plan = [(1.0, min(ranked, key=lambda n: (est[n], ranked.index(n))))]
    lead = plan[0][1]
    cheap_ones = [n for n in ranked if est[n] <= cheap]
    fallback = cheap_ones[0] if cheap_ones else min(
        ranked, key=lambda n: (est[n], ranked.index(n)))
    return plan, lead, (None if fallback == lead else fallback)


def _check_int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


class _Starter:
    """Starts ``n`` workers in a background thread; ``stop`` hands back those started
    and makes the thread kill any that finish starting afterwards."""

    def __init__(self, ctx, args, n: int, workers: list, sync: bool = False) -> None:
        import threading

        self._workers, self._lock, self._stopped = workers, threading.Lock(), False
        self.error: BaseException | None = None
        if sync:                    # forked workers: milliseconds each, no thread needed
            self._thread = None
            for _ in range(n):
                workers.append(Worker(ctx, *args))
            return

        def run():
            for _ in range(n):
                try:
                    w = Worker(ctx, *args)
                except BaseException as exc:  # noqa: BLE001 - reported by done()
                    self.error = exc
                    return
                with self._lock:
                    if self._stopped:
                        w.kill()
                        return
                    self._workers.append(w)

        self._thread = threading.Thread(target=run, daemon=True, name="hpcore-automl-start")
        self._thread.start()

    def ready(self) -> list:
        with self._lock:
            return list(self._workers)

    def done(self) -> bool:
        if self.error is not None and not self._workers:
            raise RuntimeError(f"could not start a worker process: {self.error}") \
                from self.error
        return self._thread is None or not self._thread.is_alive()

    def stop(self) -> list:
        with self._lock:
            self._stopped = True
            return list(self._workers)


class _Ensemble:
    """A weighted average of fitted pipelines (class probabilities or values)."""

    def __init__(self, pipelines: list, weights: np.ndarray, task: str, n_classes: int) -> None:
        self.pipelines, self.weights = pipelines, np.asarray(weights, dtype=float)
        self.task, self.n_classes = task, n_classes

    def predict_scores(self, X) -> np.ndarray:
        from hpcore.automl._models import class_scores

        out = None
        for w, p in zip(self.weights, self.pipelines):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.task == "classification":
                    pr = class_scores(p, X, self.n_classes, np.arange(self.n_classes))
                else:
                    pr = np.asarray(p.predict(X), dtype=float).ravel()
            out = w * pr if out is None else out + w * pr
        return out


class AutoML:
    """Combined model selection and hyperparameter search over scikit-learn pipelines.

    Parameters
    ----------
    task : {"classification", "regression"}
    time_budget : float
        Wall-clock seconds for :meth:`fit`, search and final refit together.
    metric : str or callable, optional
        A name of :data:`hpcore.automl._metrics.METRICS` (default ``"accuracy"`` /
        ``"r2"``) or a picklable ``metric(y_true, y_pred) -> float``, greater is better.
    cv : int
        Cross-validation folds (stratified for classification when every class has
        ``cv`` members).
    n_jobs : int
        Parallel evaluations (one worker process each, one thread each).
    seed : int
        Seeds the folds, the sampler and every model.
    storage : None, str or hpcore.BaseStorage
        Where the study's trials live (e.g. ``"sqlite:///automl.db"``).
    study_name : str, optional
        The study's name in ``storage``.
    warm_start : AutoML or hpcore.Study, optional
        A previous search: its best pipelines are evaluated first (re-tuning on new
        data), before the library defaults.
    ensemble : bool
        Build a greedy ensemble of the best pipelines' out-of-fold predictions and use
        it when its out-of-fold score exceeds the best single pipeline's by more than
        the standard error of that gain (paired over rows; see
        :func:`hpcore.automl.ensemble.prefer_ensemble`).
    estimators : sequence of str, optional
        Restrict the model choice (see :func:`hpcore.automl.space.available_estimators`).
    n_warm : int
        How many of ``warm_start``'s best pipelines to evaluate first.
    verbose : int
        1: one line per finished trial.

    Attributes
    ----------
    best_pipeline_ : sklearn.pipeline.Pipeline
        The best single pipeline, refitted on all the data.
    best_params_ : dict
        Its configuration; ``best_score_`` its CV score.
    leaderboard_ : pandas.DataFrame or list of dict
        Every pipeline tried: estimator, params, CV score, state, fidelity, fit time.
    ensemble_ : list of (weight, params)
        The ensemble's members (a single member when no ensemble was chosen).
    ensemble_gain_ : (float, float) or None
        The greedy ensemble's out-of-fold gain over the best single pipeline and its
        standard error (None when no ensemble of several members was built); the
        ensemble is used when ``gain > se``.
    study_ : hpcore.Study
    classes_ : ndarray
        Class labels (classification).
    overrun_ : float
        Seconds :meth:`fit` took beyond ``time_budget`` (negative: under it).
    refits_ : list of dict
        The final refits: trial number, pipeline, ``state`` ("fitted", "fallback",
        "stopped at the hard deadline", "not started", "FAIL") and seconds.
    """

    def __init__(self, task: str = "classification", time_budget: float = 60, metric=None,
                 cv: int = 5, n_jobs: int = 1, seed: int = 0, storage=None,
                 study_name: str | None = None, warm_start: Any = None, ensemble: bool = True,
                 estimators: Sequence[str] | None = None, n_warm: int = 5,
                 verbose: int = 0) -> None:
        self.task = task
        self.time_budget = time_budget
        self.metric = metric
        self.cv = cv
        self.n_jobs = n_jobs
        self.seed = seed
        self.storage = storage
        self.study_name = study_name
        self.warm_start = warm_start
        self.ensemble = ensemble
        self.estimators = estimators
        self.n_warm = n_warm
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        b = self.time_budget
        if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(b) and b > 0):
            raise ValueError(f"time_budget must be a finite number of seconds > 0, got {b!r}")
        _check_int("cv", self.cv, 2)
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, (int, np.integer)) \
                or not (self.n_jobs >= 1 or self.n_jobs == -1):
            raise ValueError(f"n_jobs must be an int >= 1 or -1, got {self.n_jobs!r}")
        _check_int("seed", self.seed, 0)
        _check_int("n_warm", self.n_warm, 0)
        if not isinstance(self.ensemble, bool):
            raise TypeError(f"ensemble must be a bool, got {type(self.ensemble).__name__}")
        if self.warm_start is not None and not isinstance(self.warm_start, (AutoML, hp.Study)):
            raise TypeError("warm_start must be a fitted AutoML or an hpcore.Study, got "
                            f"{type(self.warm_start).__name__}")
        get_metric(self.metric, self.task)

    def _prepare(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        try:
            X = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be numeric (encode categorical columns first): {exc}") \
                from None
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must be 1-dimensional with {len(X)} rows, got shape {y.shape}")
        if len(X) < 2 * self.cv:
            raise ValueError(f"X has {len(X)} rows: need at least 2 * cv = {2 * self.cv}")
        if np.isinf(X).any():
            raise ValueError("X contains infinite values")
        if self.task == "classification":
            self.classes_, y_enc = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError("y has a single class: nothing to classify")
            y = y_enc.astype(np.int64)
        else:
            try:
                y = y.astype(float)
            except (TypeError, ValueError):
                raise ValueError("y must be numeric for regression") from None
            if not np.all(np.isfinite(y)):
                raise ValueError("y contains NaN or infinite values")
        return X, y

    def _folds(self, X, y) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import KFold, StratifiedKFold

        strat = (self.task == "classification"
                 and np.bincount(y).min() >= self.cv)
        split = (StratifiedKFold if strat else KFold)(self.cv, shuffle=True,
                                                      random_state=self.seed)
        rng = np.random.default_rng(self.seed)
        # training rows pre-shuffled: a prefix is a random subsample
        return [(rng.permutation(tr), va) for tr, va in split.split(X, y)]

    # ------------------------------------------------------------------ warm start
    def _warm_configs(self, space: hp.Space) -> list[dict]:
        out: list[dict] = []
        prev = self.warm_start
        if prev is not None:
            study = prev.study_ if isinstance(prev, AutoML) else prev
            if isinstance(prev, AutoML) and not hasattr(prev, "study_"):
                raise ValueError("warm_start: the AutoML has not been fitted")
            sign = 1.0 if study.directions[0] == "maximize" else -1.0
            done = sorted(study.completed_trials(), key=lambda t: -sign * t.values[0])
            for t in done:
                try:
                    cfg = space.validate(t.params)
                except (ValueError, TypeError):
                    continue                   # an estimator this space lacks
                if cfg not in out:
                    out.append(cfg)
                if len(out) >= self.n_warm:
                    break
        for cfg in default_configs(space, self._n_rows):
            if cfg not in out:
                out.append(cfg)
        return out

    # ------------------------------------------------------------------ fit
    def fit(self, X, y) -> "AutoML":
        """Search pipelines for ``time_budget`` seconds, then refit the best on all data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features (NaN allowed: an imputer is added).
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        t0 = time.monotonic()
        self._validate()
        X, y = self._prepare(X, y)
        self._t0 = t0
        self._deadline = t0 + float(self.time_budget)
        self._impute = bool(np.isnan(X).any())
        self._n_rows = len(X)
        self._score_fn, self.metric_name_ = get_metric(self.metric, self.task)
        self._n_classes = len(self.classes_) if self.task == "classification" else 0
        space = pipeline_space(self.task, self.estimators)
        sampler = hp.BayesSampler(seed=self.seed, n_startup_trials=10, min_points=8)
        self.study_ = hp.Study(space, sampler=sampler, pruner=hp.ASHA(1, _MAX_STEP, eta=3),
                               direction="maximize", storage=self.storage,
                               name=self.study_name)
        folds = self._folds(X, y)
        self._folds_ = folds
        self._n_fold_rows = min(len(tr) for tr, _ in folds)
        self._stage_plan = _stages(self._n_fold_rows, self.cv)
        self._oof: dict[int, np.ndarray] = {}
        self._fold_fit: dict[int, float] = {}
        self._records: list[dict] = []
        self._search(X, y, space, folds)
        self._finish(X, y)
        self.fit_time_ = time.monotonic() - t0
        self.overrun_ = self.fit_time_ - float(self.time_budget)
        return self

    def _n_workers(self) -> int:
        if self.n_jobs == -1:
            import os

            return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else (os.cpu_count() or 1))
        return int(self.n_jobs)

    def _refit_estimate(self, number: int) -> float:
        """Seconds a refit on all rows should take: the slowest full-fold fit, scaled to
        all the rows by the estimator family's growth (:func:`_row_scale`), with a 30%
        margin."""
        if number not in self._fold_fit:
            return 0.0
        name = self._params[number]["estimator"]
        return (_REFIT_MARGIN * self._fold_fit[number]
                * _row_scale(name, self._n_rows, self._n_fold_rows))

    def _reserve(self) -> float:
        best = self._best_number()
        r = 0.25 + (self._refit_estimate(best) if best is not None else 0.0)
        if self.ensemble:
            r += 0.06 * float(self.time_budget)
        return r

    def _best_number(self) -> int | None:
        if not self._oof:
            return None
        return max(self._oof, key=lambda n: (self._value[n], -n))

    def _search(self, X, y, space, folds) -> None:
        self._value: dict[int, float] = {}
        self._params: dict[int, dict] = {}
        queue = self._warm_configs(space)
        rng = np.random.default_rng([self.seed, 7])
        self._n_proposals = 0
        ctx = make_context(fork=True)
        forked = ctx.get_start_method() == "fork"
        n_workers = self._n_workers()
        args = (X, y, folds, self.task, self._n_classes, self.seed, self._impute, self.metric)
        self._worker_args = args
        self._spare: list[Worker] = []
        first_stage: dict[str, list[float]] = {}
        # Workers are forked where that is safe (milliseconds: see fork_safe); else they
        # start in a thread (a process start blocks until the fork server has imported
        # scikit-learn: seconds on a loaded machine) and meanwhile the warm-start
        # pipelines are evaluated here, so that time is not lost.
        workers: list[Worker] = []
        starter = _Starter(ctx, args, n_workers, workers, sync=forked)
        cheap_inline = (X.shape[0] * X.shape[1] <= _INLINE_MAX_CELLS
                        and X.shape[0] <= _INLINE_MAX_ROWS)
        probes = self._stage_plan[0][2] is not None
        try:
            while True:
                now = time.monotonic()
                end = self._deadline - self._reserve()
                if now >= end:
                    break
                ready_workers = starter.ready()
                if not ready_workers:
                    if cheap_inline and queue and (
                            probes or queue[0]["estimator"] not in _NOT_INLINE_SMALL):
                        self._run_inline(queue.pop(0), X, y, folds, end, first_stage)
                    else:
                        time.sleep(0.02)
                    continue
                for w in ready_workers:
                    if w.job is not None:
                        continue
                    est_min = min((np.median(v) for v in first_stage.values()), default=0.0)
                    if now + est_min > end:
                        break
                    warm = bool(queue)
                    try:
                        if warm:
                            trial = self.study_.ask(params=queue.pop(0))
                        else:
                            local = self._local_proposal(space, rng)
                            trial = self.study_.ask(params=local)   # None: the sampler's
                    except hp.StudyExhausted:
                        break
                    name = trial.params["estimator"]
                    est = np.median(first_stage[name]) if name in first_stage else 0.0
                    if now + est > end:
                        self.study_.tell(trial, state=hp.TrialState.FAIL,
                                         error=f"not started: its first stage takes about "
                                               f"{est:.2f} s, more than the time left")
                        self._record(trial, "skipped", None, 0.0, 0)
                        continue
                    trial.set_user_attr("estimator", name)
                    w.submit(_Job(trial, trial.params, self._stage_plan, warm, now),
                             trial.params, self._stage_plan)
                busy = [w for w in ready_workers if w.job is not None]
                if not busy:
                    if starter.done():
                        break
                    time.sleep(0.02)
                    continue
                timeout = max(0.01, end - time.monotonic())
                ready = mpc.wait([w.conn for w in busy], timeout=timeout)
                for w in busy:
                    if w.conn in ready:
                        self._handle(w, workers, ctx, args, first_stage)
        finally:
            for w in starter.stop():
                if w.job is not None:
                    self._abandon(w.job, "stopped at the time budget")
                    w.kill()
                elif w.proc.is_alive():
                    self._spare.append(w)          # kept for the final refit
                else:
                    w.kill()

    def _run_inline(self, params: dict, X, y, folds, end: float,
                    first_stage: dict) -> None:
        """Evaluate one warm-start pipeline in this process, stage by stage as a worker
        would (reports at the same steps, never pruned).  A stage whose estimated time
        (the previous stage's, scaled by the ratio of training rows, with a 50% margin)
        does not fit before ``end`` is not started: the trial ends PRUNED at its last
        report (FAIL when it has none)."""
        from hpcore.automl._worker import evaluate_stage

        trial = self.study_.ask(params=params)
        trial.set_user_attr("estimator", params["estimator"])
        scores, fits = [], []
        oof = np.zeros((len(y), self._n_classes) if self.task == "classification" else len(y))
        prev_rows = prev_time = None
        try:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                for stage in self._stage_plan:
                    step, fold, n_sub = stage
                    rows = n_sub if n_sub is not None else len(folds[fold][0])
                    if prev_time is not None:
                        est = 1.5 * prev_time * max(1.0, rows / prev_rows)
                        if time.monotonic() + est > end:
                            self._stop_inline(trial, fits, f"stage {step} would take about "
                                              f"{est:.2f} s, more than the time left")
                            return
                    sc, va, pred, fit_s = evaluate_stage(
                        params, X, y, folds, stage, self.task, self._n_classes, self.seed,
                        self._impute, self._score_fn)
                    fits.append(fit_s)
                    if len(fits) == 1:
                        first_stage.setdefault(params["estimator"], []).append(fit_s)
                    prev_rows, prev_time = rows, fit_s
                    if n_sub is None:
                        scores.append(sc)
                        oof[va] = pred
                        value = float(np.mean(scores))
                    else:
                        value = sc
                    if step is not None:
                        if not math.isfinite(value):
                            raise ValueError(f"non-finite score {value!r} at step {step}")
                        trial.report(int(step), value)
        except Exception as exc:  # noqa: BLE001 - a pipeline's error fails its trial only
            err = traceback.format_exc(limit=6)
            self.study_.tell(trial, exc)
            self._record(trial, "FAIL", None, sum(fits), 0, error=err)
            return
        value = float(np.mean(scores))
        full = [f for f, st in zip(fits, self._stage_plan) if st[2] is None]
        trial.set_user_attr("cv_scores", [float(v) for v in scores])
        trial.set_user_attr("fit_time", float(sum(fits)))
        frozen = self.study_.tell(trial, value)
        if frozen.state == hp.TrialState.COMPLETE:
            n = trial.number
            self._oof[n], self._value[n] = oof, value
            self._params[n] = dict(params)
            self._fold_fit[n] = float(np.max(full))
        self._record(trial, frozen.state.name, value, sum(fits), _MAX_STEP)

    def _stop_inline(self, trial, fits, why: str) -> None:
        if trial.intermediate_values:
            step = max(trial.intermediate_values)
            self.study_.tell(trial, state=hp.TrialState.PRUNED)
            self._record(trial, "PRUNED", trial.intermediate_values[step], sum(fits), step,
                         error=why)
        else:
            self.study_.tell(trial, state=hp.TrialState.FAIL, error=why)
            self._record(trial, "FAIL", None, sum(fits), 0, error=why)

    def _local_proposal(self, space: hp.Space, rng: np.random.Generator) -> dict | None:
        """Every other proposal after the warm start: a perturbation of one of the three
        best pipelines (same estimator; numeric parameters moved by a Gaussian step of
        0.15 in the unit cube, each categorical re-drawn with probability 0.15), as
        local search beside the GP's global proposals.  ``None``: ask the sampler."""
        self._n_proposals += 1
        if self._n_proposals % 2 == 1 or not self._oof:
            return None
        top = sorted(self._oof, key=lambda n: (-self._value[n], n))[:3]
        parent = self._params[top[int(rng.integers(len(top)))]]
        x = space.encode(parent)
        for name, dist in space.params.items():
            if name == "estimator" or name not in parent:
                continue
            sl = space.column_slice(name)
            if isinstance(dist, hp.Categorical):
                if rng.random() < 0.15:
                    x[sl] = 0.0
                    x[sl.start + int(rng.integers(len(dist.choices)))] = 1.0
            else:
                x[sl.start] = float(np.clip(x[sl.start] + rng.normal(0.0, 0.15), 0.0, 1.0))
        # parameters a flipped categorical activates start from a random value
        x = np.where(np.isnan(x), rng.random(len(x)), x)
        return space.decode(x)

    def _handle(self, w: Worker, workers: list, ctx, args, first_stage) -> None:
        job: _Job = w.job
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            self.study_.tell(job.trial, state=hp.TrialState.FAIL,
                             error="the worker process died (out of memory or a crash)")
            self._record(job.trial, "FAIL", None, sum(job.stage_times), 0)
            w.kill()
            # a replacement is forked only while no other thread runs (a SQLite storage's
            # heartbeat thread may have started since)
            if ctx.get_start_method() == "fork" and not fork_safe():
                ctx = make_context()
            workers[workers.index(w)] = Worker(ctx, *args)
            return
        kind = msg[0]
        if kind == "report":
            _, step, value, fit_s = msg
            job.stage_times.append(fit_s)
            if len(job.stage_times) == 1:
                first_stage.setdefault(job.params["estimator"], []).append(fit_s)
            if not math.isfinite(value):
                w.conn.send(False)
                self.study_.tell(job.trial, state=hp.TrialState.FAIL,
                                 error=f"non-finite score {value!r} at step {step}")
                self._record(job.trial, "FAIL", None, sum(job.stage_times), step)
                w.job = None
                return
            job.trial.report(int(step), float(value))
            go = job.warm or not job.trial.should_prune()
            w.conn.send(go)
            if not go:
                self.study_.tell(job.trial, state=hp.TrialState.PRUNED)
                self._record(job.trial, "PRUNED", value, sum(job.stage_times), step)
                w.job = None
        elif kind == "done":
            _, scores, oof, fits = msg
            value = float(np.mean(scores))
            n = job.trial.number
            full = [f for f, st in zip(fits, job.stages) if st[2] is None]
            job.trial.set_user_attr("cv_scores", [float(s) for s in scores])
            job.trial.set_user_attr("fit_time", float(sum(fits)))
            frozen = self.study_.tell(job.trial, value)
            if frozen.state == hp.TrialState.COMPLETE:
                self._oof[n] = oof
                self._value[n] = value
                self._params[n] = dict(job.params)
                self._fold_fit[n] = float(np.max(full))
                # import its estimator's modules here (while the worker runs the next
                # trial), so a worker forked for the final refit does not import them
                try:
                    build_pipeline(job.params, self.task, self._n_rows, args[0].shape[1],
                                   seed=self.seed, impute=self._impute)
                except Exception:  # noqa: BLE001 - an optimization only
                    pass
            self._record(job.trial, frozen.state.name, value, sum(fits), job.stages[-1][0])
            w.job = None
        elif kind == "error":
            self.study_.tell(job.trial, state=hp.TrialState.FAIL, error=msg[1])
            self._record(job.trial, "FAIL", None, sum(job.stage_times), 0, error=msg[1])
            w.job = None

    def _abandon(self, job: _Job, why: str) -> None:
        if job.trial.intermediate_values:
            self.study_.tell(job.trial, state=hp.TrialState.PRUNED)
            step = max(job.trial.intermediate_values)
            self._record(job.trial, "PRUNED", job.trial.intermediate_values[step],
                         time.monotonic() - job.started, step, error=why)
        else:
            self.study_.tell(job.trial, state=hp.TrialState.FAIL, error=why)
            self._record(job.trial, "FAIL", None, time.monotonic() - job.started, 0, error=why)

    def _record(self, trial, state, value, fit_time, step, error=None) -> None:
        rec = {"number": trial.number, "estimator": trial.params["estimator"],
               "state": state, "score": value, "fidelity": step / _MAX_STEP,
               "fit_time": float(fit_time), "params": dict(trial.params),
               "pipeline": _describe(trial.params)}
        if error:
            rec["error"] = error.strip().splitlines()[-1][:200]
        self._records.append(rec)
        if self.verbose:
            s = "" if value is None else f" score={value:.4f}"
            print(f"[hpcore.automl] trial {trial.number} {rec['pipeline']} {state}{s}",
                  flush=True)

    # ------------------------------------------------------------------ final model
    def _finish(self, X, y) -> None:
        best = self._best_number()
        if best is None:
            errors = [r.get("error") for r in self._records if r.get("error")]
            hint = f" (last error: {errors[-1]})" if errors else ""
            raise RuntimeError(f"no pipeline finished its cross-validation within "
                               f"time_budget={self.time_budget} s{hint}")
        trials = {t.number: t for t in self.study_.trials if t.number in self._oof}
        members = [(1.0, best)]
        self.ensemble_score_ = self._value[best]
        self.ensemble_gain_ = None
        if self.ensemble and len(self._oof) > 1:
            ranked = sorted(self._oof, key=lambda n: (-self._value[n], n))[:20]
            w, s = caruana_ensemble([self._oof[n] for n in ranked], y, self._score_fn,
                                    n_iterations=40)
            chosen = sorted([(float(wi), n) for wi, n in zip(w, ranked) if wi > 0],
                            key=lambda m: (-m[0], m[1]))
            if [n for _, n in chosen] != [best]:
                # kept only when its out-of-fold gain over the best single pipeline,
                # paired over rows, exceeds its standard error (prefer_ensemble)
                avg = sum(wi * self._oof[n] for wi, n in chosen)
                per_row = None if callable(self.metric) else ROW_METRICS.get(
                    self.metric_name_)
                gain, se = ensemble_gain(y, avg, self._oof[best], self._score_fn,
                                         per_row=per_row, seed=self.seed)
                self.ensemble_gain_ = (gain, se)
                if prefer_ensemble(gain, se):
                    members = chosen
                    self.ensemble_score_ = s
        plan, fitted_by_n = self._refit_members(X, y, members, trials)
        kept = [(wi, n) for wi, n in plan if n in fitted_by_n]
        if not kept:                          # only the fallback (or nothing) was fitted
            if not fitted_by_n:
                raise RuntimeError("the final refit failed for every pipeline tried: "
                                   + "; ".join(f"{r['pipeline']}: {r['state']}"
                                               for r in self.refits_))
            kept = [(1.0, next(iter(fitted_by_n)))]
        fitted = [fitted_by_n[n] for _, n in kept]
        if [n for _, n in kept] != [n for _, n in members]:
            # the model is not the one chosen (members dropped or replaced): its score
            # is that of the kept members' out-of-fold average
            wts = np.array([wi for wi, _ in kept])
            avg = sum(wi * self._oof[n] for wi, (_, n) in zip(wts / wts.sum(), kept))
            self.ensemble_score_ = float(self._score_fn(y, avg))
            if members[0][1] not in [n for _, n in kept]:
                warnings.warn(
                    f"the final refit of {_describe(trials[members[0][1]].params)} did "
                    f"not fit in time_budget={self.time_budget} s plus "
                    f"{overrun_allowance(self.time_budget):g} s; the model is "
                    + " + ".join(_describe(trials[n].params) for _, n in kept)
                    + " instead", RuntimeWarning, stacklevel=3)
            members = [(wi / wts.sum(), n) for wi, (_, n) in zip(wts, kept)]
        else:
            members = kept
        weights = np.array([wi for wi, _ in members])
        weights = weights / weights.sum()
        self.model_ = _Ensemble(fitted, weights, self.task, self._n_classes)
        self.ensemble_ = [(float(wi), dict(trials[n].params)) for wi, (_, n)
                          in zip(weights, members)]
        self._members = [n for _, n in members]
        ib = self._members.index(best) if best in self._members else 0
        self.best_pipeline_ = fitted[ib]
        self.best_params_ = dict(trials[self._members[ib]].params)
        self.best_score_ = self._value[self._members[ib]]
        self.n_features_in_ = X.shape[1]

    def _refit_members(self, X, y, members: list, trials: dict):
        """Fit the chosen members on all the rows, within the overrun allowance.

        The plan comes from :func:`_plan_refit` (estimates: :meth:`_refit_estimate`,
        slack: half the :func:`overrun_allowance`): a lead whose refit is not expected
        to finish by ``deadline + slack`` is replaced by the best pipeline that is.
        Each refit runs in a worker process (the search's idle workers, else a forked
        one) with a hard deadline ``time_budget + overrun_allowance - 0.5 s``: a refit
        still running then is stopped by terminating its process and its member is
        dropped.  If the lead has not finished ``2 x`` the fallback's estimate before
        that deadline, the fallback (a cheap, well-ranked pipeline) is fitted in this
        process meanwhile, so a model exists when the lead is stopped.  Where no worker
        can be had (no idle one, and forking is unsafe), the refits run in this process,
        each started only when its estimate fits (the old rule, not bounded).

        Returns ``(plan, {number: fitted pipeline})``."""
        budget = float(self.time_budget)
        allow = overrun_allowance(budget)
        ranked = sorted(self._oof, key=lambda n: (-self._value[n], n))
        est = {n: self._refit_estimate(n) for n in ranked}
        plan, lead, fallback = _plan_refit(members, ranked, est, time.monotonic(),
                                           self._deadline, 0.5 * allow,
                                           max(0.2, 0.1 * allow))
        hard = self._deadline + allow - _CLEANUP_S
        self.refits_: list[dict] = []
        fitted: dict[int, Any] = {}

        def log(n, state, secs):
            self.refits_.append({"number": n, "pipeline": _describe(trials[n].params),
                                 "state": state, "seconds": float(secs),
                                 "estimate": float(est[n])})

        def fit_here(n, state="fitted"):
            t = time.monotonic()
            try:
                fitted[n], _, _ = fit_predict(trials[n].params, X, y, X[:1], self.task,
                                              self._n_classes, self.seed, self._impute)
                log(n, state, time.monotonic() - t)
            except Exception:  # noqa: BLE001 - a member that fails is dropped
                log(n, "FAIL", time.monotonic() - t)

        from threadpoolctl import threadpool_limits

        idle = [w for w in getattr(self, "_spare", []) if w.proc.is_alive()]
        self._spare = []
        can_fork = bool(idle) or fork_safe()
        pending = [n for _, n in plan]
        running: dict[Worker, tuple[int, float]] = {}
        try:
            if not can_fork:
                with threadpool_limits(self._n_workers()):
                    for n in pending:
                        if n != lead and time.monotonic() + est[n] > self._deadline:
                            log(n, "not started", 0.0)
                            continue
                        fit_here(n)
                if not fitted:
                    fit_here(fallback if fallback is not None else lead, "fallback")
                return plan, fitted
            tried_fallback = fallback is None
            while pending or running:
                now = time.monotonic()
                while pending:
                    n = pending[0]
                    if n != lead and now + est[n] > self._deadline:
                        pending.pop(0)
                        log(n, "not started", 0.0)
                        continue
                    if idle:
                        w = idle.pop()
                    elif len(running) < self._n_workers() and fork_safe():
                        w = Worker(make_context(fork=True), *self._worker_args)
                    else:
                        break
                    pending.pop(0)
                    w.refit(n, trials[n].params)
                    running[w] = (n, now)
                if not running:
                    break
                until = hard
                if not tried_fallback and lead not in fitted:
                    until = min(hard, hard - 2.0 * est[fallback] - 0.1)
                ready = mpc.wait([w.conn for w in running],
                                 timeout=max(0.0, until - time.monotonic()))
                for w in list(running):
                    if w.conn not in ready:
                        continue
                    n, started = running.pop(w)
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        w.kill()
                        log(n, "FAIL", time.monotonic() - started)
                        continue
                    if msg[0] == "fitted":
                        fitted[n] = msg[1]
                        log(n, "fitted", msg[2])
                    else:
                        log(n, "FAIL", time.monotonic() - started)
                    idle.append(w)
                if ready:
                    continue
                if time.monotonic() >= hard:
                    for w, (n, started) in running.items():
                        w.kill()
                        log(n, "stopped at the hard deadline", time.monotonic() - started)
                    running = {}
                    break
                if not tried_fallback and lead not in fitted and time.monotonic() >= until:
                    tried_fallback = True
                    if fallback not in fitted:
                        with threadpool_limits(1):
                            fit_here(fallback, "fallback")
            if not fitted:                   # nothing finished: the last resort, unbounded
                with threadpool_limits(1):
                    fit_here(fallback if fallback is not None else lead, "fallback")
        finally:
            for w in running:
                w.kill()
            for w in idle:
                w.kill()
        return plan, fitted

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ValueError("this AutoML is not fitted yet: call fit(X, y) first")

    def _X(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (n, {self.n_features_in_}), got {X.shape}")
        return X

    def predict(self, X) -> np.ndarray:
        """Class labels or values of the chosen model (the ensemble when one was chosen)."""
        self._check_fitted()
        S = self.model_.predict_scores(self._X(X))
        if self.task == "classification":
            return self.classes_[np.argmax(S, axis=1)]
        return S

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_`` (classification)."""
        self._check_fitted()
        if self.task != "classification":
            raise AttributeError("predict_proba is only available for task='classification'")
        S = self.model_.predict_scores(self._X(X))
        return S / S.sum(axis=1, keepdims=True)

    def score(self, X, y) -> float:
        """The search metric on ``(X, y)`` (greater is better)."""
        self._check_fitted()
        X = self._X(X)
        y = np.asarray(y)
        S = self.model_.predict_scores(X)
        if self.task == "classification":
            idx = np.searchsorted(self.classes_, y)
            if np.any(idx >= len(self.classes_)) or np.any(self.classes_[np.minimum(
                    idx, len(self.classes_) - 1)] != y):
                raise ValueError("y contains labels not seen in fit")
            return float(self._score_fn(idx, S))
        return float(self._score_fn(y.astype(float), S))

    def refit(self, X, y) -> "AutoML":
        """Retrain the chosen pipeline(s) on new data, without searching."""
        self._check_fitted()
        X, y = self._prepare(X, y)
        self._n_classes = len(self.classes_) if self.task == "classification" else 0
        self._impute = bool(np.isnan(X).any())
        from threadpoolctl import threadpool_limits

        fitted = []
        with threadpool_limits(self._n_workers()):
            for _, params in self.ensemble_:
                pipe, _, _ = fit_predict(params, X, y, X[:1], self.task, self._n_classes,
                                         self.seed, self._impute)
                fitted.append(pipe)
        self.model_ = _Ensemble(fitted, np.array([w for w, _ in self.ensemble_]), self.task,
                                self._n_classes)
        ib = next(i for i, (_, p) in enumerate(self.ensemble_) if p == self.best_params_)
        self.best_pipeline_ = fitted[ib]
        self.n_features_in_ = X.shape[1]
        return self

    # ------------------------------------------------------------------ reporting
    @property
    def leaderboard_(self):
        """Every pipeline tried, best first: a pandas DataFrame (a list of dicts when
        pandas is missing)."""
        if not hasattr(self, "_records"):
            raise ValueError("this AutoML is not fitted yet: call fit(X, y) first")
        rank = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "skipped": 3}
        rows = sorted(self._records, key=lambda r: (rank.get(r["state"], 4),
                                                   -(r["score"] if r["score"] is not None
                                                     else -np.inf), r["number"]))
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)


def _describe(params: Mapping[str, Any]) -> str:
    parts = []
    if params.get("scaler", "none") != "none":
        parts.append(params["scaler"])
    if params.get("features", "none") != "none":
        parts.append(params["features"])
    parts.append(params["estimator"])
    return " > ".join(parts)


def search(X, y, task: str = "classification", **kwargs) -> AutoML:
    """One call: ``AutoML(task=task, **kwargs).fit(X, y)``.

    Returns
    -------
    AutoML
        Fitted.
    """
    return AutoML(task=task, **kwargs).fit(X, y)
