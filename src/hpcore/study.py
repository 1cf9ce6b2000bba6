"""The Study: ask / tell / optimize over a search space, recorded in a storage.

The study knows nothing of any one sampler or pruner.  It keeps an incremental cache
of the stored trials (fetching only what changed since the last sequence number it
saw), so ask, tell and report cost the same at trial 10 and at trial 100,000.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from hpcore.pruners.base import BasePruner, NopPruner
from hpcore.samplers.base import BaseSampler, StudyExhausted
from hpcore.space import Space
from hpcore.storage import BaseStorage, get_storage
from hpcore.trial import FrozenTrial, Trial, TrialPruned, TrialState, check_values

__all__ = ["Study", "load_study"]

logger = logging.getLogger("hpcore")

_DIRECTIONS = ("minimize", "maximize")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ObjectiveFn = Callable[[Trial], Any]
Callback = Callable[["Study", FrozenTrial], None]


def _check_directions(direction: str | None, directions: Sequence[str] | None) -> list[str] | None:
    if direction is not None and directions is not None:
        raise ValueError("give either direction or directions, not both")
    if direction is not None:
        directions = [direction]
    if directions is None:
        return None
    if isinstance(directions, str) or not isinstance(directions, Sequence) or not directions:
        raise TypeError("directions must be a non-empty list of 'minimize'/'maximize'")
    for d in directions:
        if d not in _DIRECTIONS:
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {d!r}")
    return list(directions)


def _normalized(spec: dict) -> dict:
    import json

    return json.loads(json.dumps(spec))


class Study:
    """An optimization study.

    Parameters
    ----------
    space : Space or mapping, optional
        The search space.  May be omitted when re-opening a stored study.
    sampler : BaseSampler, optional
        Proposes configurations (default: ``RandomSampler(seed=seed)``).
    pruner : BasePruner, optional
        Judges intermediate reports (default: never prune).
    direction : {"minimize", "maximize"}, optional
        For a single objective (default "minimize" for a new study).
    directions : list of str, optional
        One per objective, for multi-objective studies.
    storage : None, "sqlite:///path.db" or BaseStorage
        Where trials live.  ``None`` keeps them in memory.
    name : str, optional
        The study's name in its storage; opening an existing name resumes that study.
    seed : int, optional
        Seed of the default sampler.
    """

    def __init__(self, space: Space | Mapping | None = None, *, sampler: BaseSampler | None = None,
                 pruner: BasePruner | None = None, direction: str | None = None,
                 directions: Sequence[str] | None = None,
                 storage: BaseStorage | str | None = None, name: str | None = None,
                 seed: int | None = None) -> None:
        dirs = _check_directions(direction, directions)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError("name must be a non-empty str")
        if space is not None and not isinstance(space, Space):
            space = Space(space)
        if sampler is not None and not isinstance(sampler, BaseSampler):
            raise TypeError(f"sampler must be a BaseSampler, got {type(sampler).__name__}")
        if pruner is not None and not isinstance(pruner, BasePruner):
            raise TypeError(f"pruner must be a BasePruner, got {type(pruner).__name__}")
        self.storage = get_storage(storage)
        self.name = name or f"study-{uuid.uuid4().hex[:12]}"
        sid, stored_dirs, stored_space = self.storage.get_or_create_study(
            self.name, dirs, space.to_dict() if space is not None else None)
        self._study_id = sid
        self.directions: list[str] = stored_dirs
        if stored_space is not None:
            if space is None:
                space = Space.from_dict(stored_space)
            elif _normalized(space.to_dict()) != _normalized(stored_space):
                raise ValueError(f"space: study {self.name!r} exists with a different search space")
        elif space is None:
            raise ValueError("space is required for a new study")
        else:
            self.storage.set_study_space(sid, space.to_dict())
        self.space: Space = space
        if sampler is None:
            from hpcore.samplers.random import RandomSampler

            sampler = RandomSampler(seed=seed)
        self.sampler = sampler
        self.pruner = pruner if pruner is not None else NopPruner()
        self.sampler.check_study(self)
        self._lock = threading.RLock()
        self._cursor = 0
        self._trials: dict[int, FrozenTrial] = {}
        self._completed: list[FrozenTrial] = []
        self._finished: list[FrozenTrial] = []
        self._running: dict[int, FrozenTrial] = {}
        self._best: FrozenTrial | None = None
        self._sign = [1.0 if d == "minimize" else -1.0 for d in self.directions]

    def __repr__(self) -> str:
        return (f"Study(name={self.name!r}, directions={self.directions}, sampler={self.sampler!r}, "
                f"pruner={self.pruner!r})")

    # -- cache --------------------------------------------------------------------------
    def _sync(self) -> None:
        """Bring the cache up to date with storage (only what changed is read)."""
        changed, top = self.storage.trials_since(self._study_id, self._cursor)
        self._cursor = top
        for t in changed:
            self._absorb(t)

    def _absorb(self, t: FrozenTrial) -> None:
        prev = self._trials.get(t.number)
        self._trials[t.number] = t
        if t.state == TrialState.RUNNING:
            self._running[t.number] = t
            return
        self._running.pop(t.number, None)
        if t.state in _FINISHED and (prev is None or prev.state not in _FINISHED):
            self._finished.append(t)
        if t.state == TrialState.COMPLETE and (prev is None or prev.state != TrialState.COMPLETE):
            self._completed.append(t)
            if len(self.directions) == 1 and (
                    self._best is None
                    or self._sign[0] * t.values[0] < self._sign[0] * self._best.values[0]):
                self._best = t

    def completed_trials(self) -> list[FrozenTrial]:
        """COMPLETE trials in completion order.  The list is the study's cache: read it,
        do not modify it."""
        with self._lock:
            self._sync()
            return self._completed

    def finished_trials(self) -> list[FrozenTrial]:
        """COMPLETE and PRUNED trials in finish order (as the cache saw them), e.g. for
        samplers that model intermediate values.  The list is the study's cache: read it,
        do not modify it."""
        with self._lock:
            self._sync()
            return self._finished

    def running_trials(self) -> list[FrozenTrial]:
        """RUNNING trials (pending evaluations, e.g. on other workers)."""
        with self._lock:
            self._sync()
            return list(self._running.values())

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, by number."""
        with self._lock:
            self._sync()
            return [self._trials[k] for k in sorted(self._trials)]

    def get_trials(self, states: Iterable[TrialState] | None = None) -> list[FrozenTrial]:
        """Trials, by number, optionally only those in ``states``."""
        trials = self.trials
        if states is None:
            return trials
        states = set(states)
        return [t for t in trials if t.state in states]

    def reports_since(self, cursor: int) -> tuple[list[tuple[int, int, float]], int]:
        """Intermediate reports of every trial stored after ``cursor`` (for pruners)."""
        return self.storage.reports_since(self._study_id, cursor)

    # -- best ---------------------------------------------------------------------------
    @property
    def best_trial(self) -> FrozenTrial:
        """The best COMPLETE trial (single objective)."""
        if len(self.directions) > 1:
            raise ValueError("best_trial is ambiguous for a multi-objective study: use best_trials")
        with self._lock:
            self._sync()
            if self._best is None:
                raise ValueError(f"study {self.name!r} has no completed trial yet")
            return self._best

    @property
    def best_value(self) -> float:
        return self.best_trial.values[0]

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best_trial.params)

    @property
    def best_trials(self) -> list[FrozenTrial]:
        """The Pareto front of COMPLETE trials (for one objective: the best trial(s))."""
        done = self.completed_trials()
        if not done:
            return []
        y = np.array([t.values for t in done]) * np.array(self._sign)
        return [done[i] for i in np.flatnonzero(_pareto_mask(y))]

    # -- ask / tell ---------------------------------------------------------------------
    def ask(self, params: Mapping[str, Any] | None = None, budget: float | None = None) -> Trial:
        """Create a trial with a configuration from the sampler.

        Parameters
        ----------
        params : mapping, optional
            Evaluate this configuration instead of sampling one (validated against
            the space), e.g. a promoted configuration re-run at a larger budget.
        budget : float, optional
            The resource the objective should spend (``trial.budget``), stored as the
            system attribute ``budget``.

        Raises :class:`~hpcore.samplers.base.StudyExhausted` when the sampler has
        nothing left (a finished grid).
        """
        if params is not None:
            params = self.space.validate(params)
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
                raise TypeError(f"budget must be a number, got {type(budget).__name__}")
            if not budget > 0 or not np.isfinite(budget):
                raise ValueError(f"budget must be finite and > 0, got {budget}")
        with self._lock:
            self._sync()
            tid, number, _ = self.storage.create_trial(
                self._study_id, {"budget": budget} if budget is not None else None)
            try:
                if params is None:
                    params = self.sampler.sample(self, number)
            except StudyExhausted:
                self.storage.discard_trial(tid)
                raise
            except BaseException as exc:
                self.storage.finish_trial(tid, TrialState.FAIL, None,
                                          f"sampler failed: {type(exc).__name__}: {exc}")
                raise
            self.storage.set_trial_params(tid, params)
        return Trial(number, tid, params, reporter=self._report, attr_setter=self._set_user_attr,
                     budget=budget)

    def _report(self, trial: Trial, step: int, value: float) -> bool:
        with self._lock:
            self.storage.report(trial.trial_id, step, value)
            return bool(self.pruner.on_report(self, trial.number, step, value))

    def _set_user_attr(self, trial: Trial, key: str, value: Any) -> None:
        with self._lock:
            self.storage.set_trial_user_attr(trial.trial_id, key, value)

    def tell(self, trial: Trial | int, values: Any = None, *,
             state: TrialState | None = None, error: str | None = None) -> FrozenTrial:
        """Finish a trial.

        Parameters
        ----------
        trial : Trial or int
            The trial (or its number).
        values : float, tuple of float, or BaseException
            The objective's result.  An exception, NaN, inf or a non-number marks the
            trial FAIL (the error is stored); the study goes on.
        state : TrialState, optional
            ``TrialState.PRUNED`` (values default to the last report) or
            ``TrialState.FAIL``; default: COMPLETE when the values are valid.
        """
        with self._lock:
            if isinstance(trial, (int, np.integer)) and not isinstance(trial, bool):
                self._sync()
                if int(trial) not in self._trials:
                    raise ValueError(f"trial: no trial number {trial} in study {self.name!r}")
                frozen = self._trials[int(trial)]
                trial = Trial(frozen.number, frozen.trial_id, frozen.params)
                trial.intermediate_values = dict(self.storage.get_trial(frozen.trial_id)
                                                 .intermediate_values)
            elif not isinstance(trial, Trial):
                raise TypeError(f"trial must be a Trial or a trial number, got {type(trial).__name__}")
            vals: tuple[float, ...] | None = None
            if state is not None and not isinstance(state, TrialState):
                raise TypeError("state must be a TrialState")
            if isinstance(values, BaseException):
                state = TrialState.FAIL
                error = error or "".join(traceback.format_exception_only(type(values), values)).strip()
            elif state == TrialState.PRUNED:
                if trial.intermediate_values and len(self.directions) == 1:
                    vals = (trial.intermediate_values[max(trial.intermediate_values)],)
            elif state == TrialState.FAIL:
                error = error or "failed"
            elif state in (None, TrialState.COMPLETE):
                try:
                    vals = check_values(values, len(self.directions))
                    state = TrialState.COMPLETE
                except ValueError as exc:
                    state, error = TrialState.FAIL, str(exc)
            else:
                raise ValueError(f"state must be COMPLETE, PRUNED or FAIL, got {state.name}")
            if state == TrialState.FAIL:
                logger.warning("trial %d failed: %s", trial.number, error)
            self.storage.finish_trial(trial.trial_id, state, vals, error)
            return FrozenTrial(number=trial.number, trial_id=trial.trial_id, state=state,
                               params=trial.params, values=vals,
                               intermediate_values=dict(trial.intermediate_values),
                               user_attrs=dict(trial.user_attrs), error=error)

    # -- optimize -----------------------------------------------------------------------
    def optimize(self, objective: ObjectiveFn, n_trials: int | None = None,
                 timeout: float | None = None, n_jobs: int = 1,
                 callbacks: Sequence[Callback] | None = None, show_progress: bool = False,
                 executor: Any = None) -> None:
        """Run ``objective(trial)`` for ``n_trials`` trials or ``timeout`` seconds.

        ``n_jobs > 1`` (or -1: all cores) runs trials in a local process pool;
        ``executor=hp.DaskExecutor(client)`` on a Dask cluster.  Objective errors and
        NaN results mark the trial FAIL and the study goes on.  Ctrl-C marks running
        trials FAIL and re-raises ``KeyboardInterrupt``: storage stays consistent.
        Stops early when the sampler is exhausted.
        """
        if not callable(objective):
            raise TypeError("objective must be callable")
        if n_trials is not None:
            if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)):
                raise TypeError("n_trials must be an int or None")
            if n_trials < 0:
                raise ValueError(f"n_trials must be >= 0, got {n_trials}")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError("timeout must be a number of seconds or None")
            if not timeout > 0:
                raise ValueError(f"timeout must be > 0, got {timeout}")
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
            raise TypeError("n_jobs must be an int")
        if n_jobs == 0 or n_jobs < -1:
            raise ValueError(f"n_jobs must be >= 1 or -1 (all cores), got {n_jobs}")
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not callable(cb):
                raise TypeError("callbacks must be callables (study, frozen_trial)")
        run = _RunBudget(n_trials, timeout)
        if executor is None and n_jobs != 1:
            from hpcore.executors.local import ProcessExecutor

            executor = ProcessExecutor(n_jobs)
        if executor is not None:
            executor.run(self, objective, run, callbacks, show_progress)
            return
        while run.may_start():
            try:
                trial = self.ask()
            except StudyExhausted:
                break
            run.started()
            frozen = self._run_inline(objective, trial)
            self._after_trial(frozen, callbacks, show_progress)

    def _run_inline(self, objective: ObjectiveFn, trial: Trial) -> FrozenTrial:
        try:
            result = objective(trial)
        except TrialPruned:
            return self.tell(trial, state=TrialState.PRUNED)
        except KeyboardInterrupt:
            self.tell(trial, state=TrialState.FAIL, error="interrupted (KeyboardInterrupt)")
            raise
        except Exception as exc:  # noqa: BLE001 - an objective's error fails its trial only
            return self.tell(trial, state=TrialState.FAIL,
                             error="".join(traceback.format_exception(exc)).strip())
        except BaseException as exc:
            self.tell(trial, state=TrialState.FAIL, error=f"{type(exc).__name__}: {exc}")
            raise
        return self.tell(trial, result)

    def _after_trial(self, frozen: FrozenTrial, callbacks: Sequence[Callback],
                     show_progress: bool) -> None:
        for cb in callbacks:
            cb(self, frozen)
        if show_progress:
            best = ""
            if len(self.directions) == 1 and self._best_or_none() is not None:
                best = f" best={self._best.values[0]:.6g}"
            val = "" if frozen.values is None else f" value={_fmt(frozen.values)}"
            print(f"[hpcore] trial {frozen.number} {frozen.state.name}{val}{best}", flush=True)

    def _best_or_none(self) -> FrozenTrial | None:
        with self._lock:
            self._sync()
            return self._best

    # -- export -------------------------------------------------------------------------
    def to_dataframe(self):
        """All trials as a pandas DataFrame (a list of dicts when pandas is missing)."""
        rows = []
        for t in self.trials:
            row: dict[str, Any] = {"number": t.number, "state": t.state.name}
            if len(self.directions) == 1:
                row["value"] = t.values[0] if t.values else None
            else:
                for i in range(len(self.directions)):
                    row[f"values_{i}"] = t.values[i] if t.values else None
            for k, v in t.params.items():
                row[f"params_{k}"] = v
            row["datetime_start"] = t.datetime_start
            row["datetime_complete"] = t.datetime_complete
            row["duration"] = t.duration
            for k, v in t.user_attrs.items():
                row[f"user_attrs_{k}"] = v
            row["error"] = t.error
            rows.append(row)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)


def load_study(name: str, storage: BaseStorage | str, *, sampler: BaseSampler | None = None,
               pruner: BasePruner | None = None, seed: int | None = None) -> Study:
    """Re-open a stored study by name (its space and directions come from storage)."""
    return Study(None, sampler=sampler, pruner=pruner, storage=storage, name=name, seed=seed)


def _fmt(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:.6g}" for v in values)


def _pareto_mask(y: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``y`` (all objectives minimized)."""
    try:
        from hpcore.kernels import nondominated_sort
    except ImportError:
        nondominated_sort = None
    if nondominated_sort is not None:
        return np.asarray(nondominated_sort(y)) == 0
    n = len(y)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(y <= y[i], axis=1) & np.any(y < y[i], axis=1)
        mask[i] = not dominated.any()
    return mask


class _RunBudget:
    """How many more trials an ``optimize`` call may start, and until when."""

    def __init__(self, n_trials: int | None, timeout: float | None) -> None:
        self.n_trials = n_trials
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.n_started = 0

    def may_start(self) -> bool:
        if self.n_trials is not None and self.n_started >= self.n_trials:
            return False
        return self.deadline is None or time.monotonic() < self.deadline

    def started(self) -> None:
        self.n_started += 1

