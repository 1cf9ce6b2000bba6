"""The Study: ask / tell / optimize over a search space, recorded in a storage.

The study knows nothing of any one sampler or pruner.  It keeps an incremental cache
of the stored trials (fetching only what changed since the last sequence number it
saw), so ask, tell and report cost the same at trial 10 and at trial 100,000.
"""
from __future__ import annotations

import logging
import math
import threading
import time
import traceback
import uuid
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from hpcore._heartbeat import Heartbeat, check_retries, heartbeat_settings
from hpcore._persist import resolve_algorithms
from hpcore._progress import advance, progress_bar
from hpcore.executors import Terminated, get_executor, handle_sigterm, interruption_error
from hpcore.pruners.base import BasePruner
from hpcore.samplers.base import BaseSampler, StudyExhausted
from hpcore.samplers.random import RandomSampler
from hpcore.space import Space
from hpcore.storage import (STALE_ERROR, BaseStorage, InMemoryStorage, StudyNotFound,
                             check_batch_size, get_storage)
from hpcore.trial import FrozenTrial, Trial, TrialPruned, TrialState, check_values

__all__ = ["Study", "load_study"]

logger = logging.getLogger("hpcore")

_DIRECTIONS = ("minimize", "maximize")
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_RUNNING, _COMPLETE, _PRUNED, _FAIL = (TrialState.RUNNING, TrialState.COMPLETE,
                                       TrialState.PRUNED, TrialState.FAIL)
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
    retries : int
        How many times a configuration whose trial died with its process (no heartbeat
        for the grace period: FAIL "stale: process gone"), or whose executor reports a
        lost worker, is re-run (default 1).  The re-run is a new trial with system attrs
        ``retry_of`` (the original's number) and ``attempt``; the original gets
        ``retried_by``.
    heartbeat_interval, grace_period : float, optional
        Override the storage's (``SQLiteStorage``: 10 s and ``6 * interval``).  A thread
        of this Study, started by the first :meth:`ask`, writes heartbeats for the trials
        it asked every ``heartbeat_interval`` seconds and fails stale trials of the study
        (see :meth:`fail_stale_trials`); :meth:`close` stops it.

    Re-opening a stored study without ``sampler``/``pruner`` rebuilds the stored ones;
    passing different ones runs those, with a ``UserWarning``.
    """

    def __init__(self, space: Space | Mapping | None = None, *, sampler: BaseSampler | None = None,
                 pruner: BasePruner | None = None, direction: str | None = None,
                 directions: Sequence[str] | None = None,
                 storage: BaseStorage | str | None = None, name: str | None = None,
                 seed: int | None = None, retries: int = 1,
                 heartbeat_interval: float | None = None,
                 grace_period: float | None = None) -> None:
        dirs = _check_directions(direction, directions)
        self.retries = check_retries(retries)
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
        self._hb_interval, self._hb_grace = heartbeat_settings(self.storage, heartbeat_interval,
                                                               grace_period)
        if space is None:   # only an existing study can do without one: never create it
            try:
                self.storage.get_study(self.name)
            except StudyNotFound as exc:
                raise ValueError(f"space is required for a new study ({exc})") from None
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
        elif not self.storage.read_only:
            self.storage.set_study_space(sid, space.to_dict())
        self.space: Space = space
        self.sampler, self.pruner = resolve_algorithms(self.storage, sid, self.name, sampler,
                                                       pruner, seed)
        self.sampler.check_study(self)
        self._heartbeat: Heartbeat | None = None
        self._swept = False
        self._lock = threading.RLock()
        self._cursor = 0
        self._trials: dict[int, FrozenTrial] = {}
        self._completed: list[FrozenTrial] = []
        self._finished: list[FrozenTrial] = []
        self._running: dict[int, FrozenTrial] = {}
        self._best: FrozenTrial | None = None
        self._pend: FrozenTrial | None = None   # see _ask_mem
        self._pend_end = 0
        self._sign = [1.0 if d == "minimize" else -1.0 for d in self.directions]
        # exactly an InMemoryStorage (a subclass may override what the fast path skips):
        # ask / tell apply their own changes to the cache (see _ask_mem)
        self._mem = type(self.storage) is InMemoryStorage

    def __repr__(self) -> str:
        return (f"Study(name={self.name!r}, directions={self.directions}, sampler={self.sampler!r}, "
                f"pruner={self.pruner!r})")

    # -- cache --------------------------------------------------------------------------
    def _sync(self) -> None:
        """Bring the cache up to date with storage (only what changed is read)."""
        t = self._pend
        if t is not None:   # log entries cursor .. _pend_end - 1: this trial, asked here
            self._pend = None
            if t.state == _RUNNING:
                self._trials[t.number] = self._running[t.number] = FrozenTrial(
                    t.number, t.trial_id, _RUNNING, t.params, None,
                    dict(t.intermediate_values), t.datetime_start, None, dict(t.user_attrs),
                    dict(t.system_attrs), None)
            self._cursor = self._pend_end    # what changed it since is read below
        changed, top = self.storage.trials_since(self._study_id, self._cursor)
        self._cursor = top
        for t in changed:
            self._absorb(t)

    def _absorb(self, t: FrozenTrial) -> None:
        number, state = t.number, t.state
        prev = self._trials.get(number)
        self._trials[number] = t
        if state == _RUNNING:
            self._running[number] = t
            return
        self._running.pop(number, None)
        if state == _COMPLETE:
            if prev is None or prev.state != _COMPLETE:
                if prev is None or prev.state != _PRUNED:
                    self._finished.append(t)
                self._completed.append(t)
                if len(self._sign) == 1:
                    best = self._best
                    if best is None or self._sign[0] * t.values[0] < self._sign[0] * best.values[0]:
                        self._best = t
        elif state == _PRUNED and (prev is None or prev.state not in _FINISHED):
            self._finished.append(t)

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

    def trial_by_number(self, number: int) -> FrozenTrial | None:
        """Trial ``number`` (``None`` when there is none, e.g. it was discarded), in O(1)
        when it is cached: only what changed since the last read is read from storage.
        The trial is the study's cache: read it, do not modify it."""
        with self._lock:
            t = self._trials.get(number)
            if t is None:
                self._sync()
                t = self._trials.get(number)
            return t

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
            The trial carries the system attribute ``given`` (it is not
            :attr:`~hpcore.trial.FrozenTrial.sampled`: a GridSampler does not count it).
        budget : float, optional
            The resource the objective should spend (``trial.budget``), stored as the
            system attribute ``budget``.

        Raises :class:`~hpcore.samplers.base.StudyExhausted` when the sampler has
        nothing left (a finished grid).  Without ``params``, a configuration queued for a
        re-run (see ``retries``) is taken first, before the sampler is asked.  When
        storing the trial fails (e.g. a full disk), the error is raised and no half-made
        trial is left behind.
        """
        if params is None and self._mem:
            return self._ask_mem(budget)
        return self._ask_stored(params, budget)

    def _ask_stored(self, params: Mapping[str, Any] | None, budget: float | None) -> Trial:
        """:meth:`ask` through the storage's public methods (any storage)."""
        if params is not None:
            params = self.space.validate(params)
        _check_budget(budget)
        with self._lock:
            self._start_heartbeat()
            self._sync()
            attrs: dict[str, Any] = {} if budget is None else {"budget": budget}
            if params is not None:
                attrs["given"] = True      # not the sampler's: FrozenTrial.sampled
            new = self.storage.start_trial(
                self._study_id, attrs or None, params,
                take_queued=params is None, budget=None if budget is None else float(budget))
            tid, number = new.trial_id, new.number
            if self._heartbeat is not None:   # beats from now on, also while the sampler runs
                self._heartbeat.add(tid)
            if new.params is not None:        # given, or a queued re-run
                params = new.params
                budget = new.system_attrs.get("budget", budget)
            else:
                params = self._sample_or_abandon(tid, number)
                try:
                    self.storage.set_trial_params(tid, params)
                except BaseException:
                    self._abandon(tid, None, number)
                    raise
        return Trial(number, tid, params, reporter=self.report, attr_setter=self.set_user_attr,
                     budget=budget)

    def _sample_or_abandon(self, tid: int, number: int) -> dict:
        """The sampler's params for trial ``number`` (caller holds the lock); if the
        sampler raises, the trial is abandoned (discarded when the space is exhausted,
        else failed with the error) and the exception propagates."""
        try:
            return self.sampler.sample(self, number)
        except StudyExhausted:
            self._abandon(tid, None, number)
            raise
        except BaseException as exc:
            self._abandon(tid, f"sampler failed: {type(exc).__name__}: {exc}")
            raise

    def _ask_mem(self, budget: float | None) -> Trial:
        """:meth:`ask` without ``params`` on exactly an :class:`InMemoryStorage`.

        The same steps, but when no other writer changed the study since the cache's
        cursor (the storage checks it under its lock), the study does not read its own
        changes back: it notes them (``_pend``: log entries ``cursor .. _pend_end - 1``
        are this trial's creation and params) and :meth:`tell` moves the cursor past
        them and the trial's finish at once, sharing the stored finished trial as
        ``trials_since`` would.  Anything that reads the cache first (:meth:`_sync`)
        puts the RUNNING trial in it as its own snapshot, as ``trials_since`` copies a
        RUNNING trial.  A queued configuration goes the general way.
        """
        if budget is not None:
            _check_budget(budget)
        storage = self.storage
        with self._lock:
            if self._heartbeat is None and self._hb_interval is not None:
                self._start_heartbeat()
            attrs = None if budget is None else {"budget": budget}
            t = (storage._fast_start(self._study_id, self._cursor, attrs)
                 if self._pend is None else None)
            if t is None:
                self._sync()
                t = storage._fast_start(self._study_id, self._cursor, attrs)
                if t is None:                      # a queued configuration: the general way
                    return self._ask_stored(None, budget)
            self._pend, self._pend_end = t, self._cursor + 1
            tid, number = t.trial_id, t.number
            if self._heartbeat is not None:   # beats from now on, also while the sampler runs
                self._heartbeat.add(tid)
            params = self._sample_or_abandon(tid, number)
            try:
                if self._pend is t:
                    stored, at = storage._fast_set_params(tid, params, self._pend_end)
                    if at:
                        self._pend_end += 1
                    else:
                        self._pend = None          # read it all back at the next sync
                else:                              # a sync during sampling cached it
                    stored, at = storage._fast_set_params(tid, params, self._cursor)
                    if at:
                        self._cursor += 1
                        snap = self._running.get(number)
                        if snap is not None and snap.trial_id == tid:
                            snap.params = stored   # never changed in place: shared
            except BaseException:
                self._abandon(tid, None, number)
                raise
        return Trial(number, tid, params, self.report, self.set_user_attr, budget)

    def ask_batch(self, q: int, budget: float | None = None) -> list[Trial]:
        """Create ``q`` trials at once: ``q`` :meth:`ask` calls in two storage
        transactions and one sampler call.

        The trials are created in one transaction (one ``BEGIN IMMEDIATE`` with
        :class:`~hpcore.SQLiteStorage`), configurations queued for a re-run or by
        :meth:`enqueue` taken first as :meth:`ask` takes them; the sampler proposes the
        others together (:meth:`~hpcore.samplers.base.BaseSampler.sample_batch`: e.g.
        BayesSampler fits its model once and fantasizes the batch's earlier points,
        GeneticSampler breeds both children of a mating at once); their configurations
        are stored in a second transaction.  A sampler keyed by the trial number
        (RandomSampler, QMCSampler, GridSampler) gives exactly the configurations that
        ``q`` calls of :meth:`ask` would.

        Parameters
        ----------
        q : int
            Number of trials (>= 1; ``TypeError`` / ``ValueError`` naming ``q``).
        budget : float, optional
            As :meth:`ask`: the resource every trial of the batch should spend.

        Returns
        -------
        list of Trial
            In number order.  Fewer than ``q`` when the sampler runs out (a finished
            grid): the trials it could not fill are discarded, and
            :class:`~hpcore.samplers.base.StudyExhausted` is raised when none is left.
            When the sampler or storing the configurations fails, the error is raised,
            the sampled trials are discarded (or FAIL "sampler failed: ...") and queued
            configurations the batch had taken go back to the queue (their trials FAIL).
        """
        q = check_batch_size(q, "q")
        _check_budget(budget)
        with self._lock:
            self._start_heartbeat()
            self._sync()
            new = self.storage.start_trials(
                self._study_id, q, {"budget": budget} if budget is not None else None,
                take_queued=True, budget=None if budget is None else float(budget))
            if self._heartbeat is not None:
                for nt in new:
                    self._heartbeat.add(nt.trial_id)
            given = [nt for nt in new if nt.params is not None]
            todo = [nt for nt in new if nt.params is None]
            sampled: list[dict[str, Any]] = []
            if todo:
                try:
                    sampled = list(self.sampler.sample_batch(self, [nt.number for nt in todo]))
                    if len(sampled) > len(todo):
                        raise RuntimeError(f"{type(self.sampler).__name__}.sample_batch returned "
                                           f"{len(sampled)} configurations for {len(todo)} trials")
                except StudyExhausted:
                    sampled = []
                except BaseException as exc:
                    for nt in todo:
                        self._abandon(nt.trial_id, f"sampler failed: {type(exc).__name__}: {exc}")
                    self._give_back(given, f"ask_batch: sampler failed: {type(exc).__name__}")
                    raise
                for nt in todo[len(sampled):]:       # exhausted: never ran
                    self._abandon(nt.trial_id, None, nt.number)
                try:
                    if sampled:
                        self.storage.set_trials_params(
                            [(nt.trial_id, p) for nt, p in zip(todo, sampled)])
                except BaseException:
                    for nt in todo[:len(sampled)]:
                        self._abandon(nt.trial_id, None, nt.number)
                    self._give_back(given, "ask_batch: storing the batch failed")
                    raise
            if not given and not sampled:
                raise StudyExhausted(f"{type(self.sampler).__name__} has nothing left to propose")
            params_of = {nt.trial_id: p for nt, p in zip(todo, sampled)}
            out = []
            for nt in new:
                if nt.params is not None:
                    p, b = nt.params, nt.system_attrs.get("budget", budget)
                elif nt.trial_id in params_of:
                    p, b = params_of[nt.trial_id], budget
                else:
                    continue
                out.append(Trial(nt.number, nt.trial_id, p, reporter=self.report,
                                 attr_setter=self.set_user_attr, budget=b))
            return out

    def _give_back(self, taken: Sequence[Any], error: str) -> None:
        """Put the queued configurations a failed :meth:`ask_batch` had taken back in
        the queue (their trials FAIL with ``error``).  Never raises."""
        for nt in taken:
            if self._heartbeat is not None:
                self._heartbeat.discard(nt.trial_id)
            try:
                attempt = int(nt.system_attrs.get("attempt", 0) or 0)
                self.storage.fail_and_requeue(nt.trial_id, error, attempt + 1)
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not re-queue trial %d after a failed ask_batch (%s: %s)",
                               nt.number, type(exc).__name__, exc)

    def _abandon(self, trial_id: int, error: str | None, number: int | None = None) -> None:
        """Undo a trial ``ask`` could not finish making: discard it (``error=None``) or
        FAIL it with ``error``.  Never raises, so the caller's error is the one seen; if
        the storage refuses even this, the trial has no heartbeat and the stale sweep
        fails it after the grace period (without re-running: it has no params).  A
        discarded trial (its ``number`` given) leaves the cache too (a sync only reads
        trials that exist)."""
        if self._heartbeat is not None:
            self._heartbeat.discard(trial_id)
        if self._pend is not None and self._pend.trial_id == trial_id:
            self._pend = None          # the next sync reads the trial's entries back
        try:
            if error is None:
                self.storage.discard_trial(trial_id)
                cached = self._trials.get(number) if number is not None else None
                if cached is not None and cached.trial_id == trial_id:
                    del self._trials[number]
                    self._running.pop(number, None)
            else:
                self.storage.finish_trial(trial_id, TrialState.FAIL, None, error)
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not undo trial_id %d after a failed ask (%s: %s); the stale "
                           "sweep will fail it", trial_id, type(exc).__name__, exc)

    # -- heartbeats ----------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if self._heartbeat is not None or self._hb_interval is None or self.storage.read_only:
            return
        hb = Heartbeat(self.storage, self._study_id, self._hb_interval, self._hb_grace,
                       self.retries)
        hb.sweep()          # the first ask of a (resumed) study cleans up before it samples
        hb.start()
        weakref.finalize(self, hb.stop, 0)
        self._heartbeat = hb

    def fail_stale_trials(self, grace_period: float | None = None) -> list[int]:
        """FAIL the study's RUNNING trials whose heartbeat is older than the grace period.

        Their error is "stale: process gone (...)"; each configuration is queued for a
        re-run (taken by the next :meth:`ask`) when its attempt is below ``retries``.
        The heartbeat thread runs this every ``heartbeat_interval``; call it by hand e.g.
        after a crash when no process of the study is running.

        Parameters
        ----------
        grace_period : float, optional
            Seconds without a heartbeat (default: the study's grace period).

        Returns
        -------
        list of int
            The numbers of the trials failed now.
        """
        gp = self._hb_grace if grace_period is None else grace_period
        if gp is None:
            raise ValueError("grace_period: this study has no heartbeats "
                             "(heartbeat_interval=None); give a grace_period")
        with self._lock:
            if self._heartbeat is not None:
                self._heartbeat.beat()      # never fail this process's own live trials
            return self.storage.fail_stale_trials(self._study_id, gp, self.retries)

    def close(self) -> None:
        """Stop the heartbeat thread (idempotent; a later :meth:`ask` starts a new one).

        Trials asked and not told stop beating: another process may fail them after the
        grace period.  The storage stays open (it may be shared).
        """
        hb, self._heartbeat = self._heartbeat, None
        if hb is not None:
            hb.stop()

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the executor seam: what a worker's trial does through its executor --------------
    def report(self, trial: Any, step: int, value: float) -> bool:
        """Store ``trial``'s intermediate ``value`` at ``step`` and return the pruner's
        verdict (True: stop the trial).

        ``trial`` is a :class:`~hpcore.trial.Trial` or anything with ``trial_id`` and
        ``number`` (executors pass a light reference).  ``Trial.report`` calls this in the
        process that runs the study; executors call it for their workers' reports.
        """
        with self._lock:
            self.storage.report(trial.trial_id, step, value)
            return bool(self.pruner.on_report(self, trial.number, step, value))

    def set_user_attr(self, trial: Any, key: str, value: Any) -> None:
        """Store the user attribute ``key`` of ``trial`` (as ``Trial.set_user_attr``)."""
        with self._lock:
            self.storage.set_trial_user_attr(trial.trial_id, key, value)

    def tell(self, trial: Trial | int, values: Any = None, *,
             state: TrialState | None = None, error: str | None = None,
             retry: bool = False) -> FrozenTrial:
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
        error : str, optional
            The reason stored with a FAIL.
        retry : bool
            For a FAIL that is not the configuration's fault (its worker died): queue
            the configuration for a re-run, as the stale sweep does, when its attempt is
            below the study's ``retries``.

        Values that are not finite real numbers (NaN, inf, ``10**400``, a string,
        ``None``...) make the trial FAIL with the reason; ``tell`` does not raise for
        them.  Telling a trial that another process already failed as stale logs a
        warning and returns the stored trial.
        """
        with self._lock:
            if (state is None and type(values) is float and type(trial) is Trial
                    and len(self.directions) == 1 and math.isfinite(values)):
                vals, state = (values,), _COMPLETE       # what _outcome makes of it
            else:
                trial, state, vals, error = self._outcome(trial, values, state, error)
            try:
                if retry and state == _FAIL:
                    self.storage.fail_and_requeue(trial.trial_id, error, self.retries)
                elif self._mem:
                    # exactly an InMemoryStorage (see _ask_mem): when nothing else
                    # changed the study since the cursor, the finished trial enters the
                    # cache now (the stored object, shared as trials_since shares
                    # finished trials); it is what tell returns
                    tid = trial.trial_id
                    pend = self._pend
                    if pend is not None and pend.trial_id == tid:   # asked here, unread
                        ft, at = self.storage._fast_finish(tid, state, vals, error,
                                                           self._pend_end)
                        self._pend = None
                        if at:
                            self._cursor = self._pend_end + 1
                            self._absorb(ft)
                    else:
                        ft, at = self.storage._fast_finish(tid, state, vals, error,
                                                           self._cursor)
                        if at:
                            self._cursor += 1
                            self._absorb(ft)
                    if self._heartbeat is not None:
                        self._heartbeat.discard(tid)
                    return ft
                else:
                    self.storage.finish_trial(trial.trial_id, state, vals, error)
            except ValueError:
                stored = self.storage.get_trial(trial.trial_id)
                if stored.state != TrialState.FAIL or not (stored.error or "").startswith(STALE_ERROR):
                    raise
                return self._told_stale(trial, stored)
            return self._told(trial, state, vals, error)

    def _outcome(self, trial: Trial | int, values: Any, state: TrialState | None,
                 error: str | None) -> tuple[Trial, TrialState, tuple[float, ...] | None, str | None]:
        """What ``tell`` stores: the trial, its final state, values and error (the
        validation of :meth:`tell`, shared with :meth:`tell_batch`)."""
        if not isinstance(trial, Trial):
            if not isinstance(trial, (int, np.integer)) or isinstance(trial, bool):
                raise TypeError(f"trial must be a Trial or a trial number, got "
                                f"{type(trial).__name__}")
            self._sync()
            if int(trial) not in self._trials:
                raise ValueError(f"trial: no trial number {trial} in study {self.name!r}")
            frozen = self._trials[int(trial)]
            trial = Trial(frozen.number, frozen.trial_id, frozen.params)
            trial.intermediate_values = dict(self.storage.get_trial(frozen.trial_id)
                                             .intermediate_values)
        vals: tuple[float, ...] | None = None
        if state is None:
            if not isinstance(values, BaseException):     # the common case: a result
                try:
                    return trial, _COMPLETE, check_values(values, len(self.directions)), error
                except ValueError as exc:
                    state, error = _FAIL, str(exc)
        elif not isinstance(state, TrialState):
            raise TypeError("state must be a TrialState")
        if isinstance(values, BaseException):
            state = _FAIL
            error = error or "".join(traceback.format_exception_only(type(values), values)).strip()
        elif state == _PRUNED:
            if trial.intermediate_values and len(self.directions) == 1:
                vals = (trial.intermediate_values[max(trial.intermediate_values)],)
        elif state == _FAIL:
            error = error or "failed"
        elif state == _COMPLETE:
            try:
                vals = check_values(values, len(self.directions))
            except ValueError as exc:
                state, error = _FAIL, str(exc)
        else:
            raise ValueError(f"state must be COMPLETE, PRUNED or FAIL, got {state.name}")
        if state == _FAIL:
            logger.warning("trial %d failed: %s", trial.number, error)
        return trial, state, vals, error

    def _told_stale(self, trial: Trial, stored: FrozenTrial) -> FrozenTrial:
        logger.warning("trial %d was failed as stale by another process (no heartbeat "
                       "for its grace period); its result is not recorded", trial.number)
        if self._heartbeat is not None:
            self._heartbeat.discard(trial.trial_id)
        return stored

    def _told(self, trial: Trial, state: TrialState, vals: tuple[float, ...] | None,
              error: str | None) -> FrozenTrial:
        if self._heartbeat is not None:
            self._heartbeat.discard(trial.trial_id)
        return FrozenTrial(number=trial.number, trial_id=trial.trial_id, state=state,
                           params=trial.params, values=vals,
                           intermediate_values=dict(trial.intermediate_values),
                           user_attrs=dict(trial.user_attrs), error=error)

    def tell_batch(self, trials: Sequence[Trial | int], values: Sequence[Any] | None = None, *,
                   states: Sequence[TrialState | None] | None = None,
                   errors: Sequence[str | None] | None = None,
                   retry: bool = False) -> list[FrozenTrial]:
        """Finish several trials in one storage transaction (:meth:`tell` for each).

        Parameters
        ----------
        trials : sequence of Trial or int
            The trials (or their numbers), each at most once.
        values : sequence, optional
            One result per trial, as :meth:`tell`'s ``values`` (``None`` where a state
            says it all, e.g. PRUNED).  Default: all ``None``.
        states, errors : sequence, optional
            One ``state`` / ``error`` per trial (``None``: as :meth:`tell`'s default).
        retry : bool
            As :meth:`tell`, for every FAIL of the batch.

        Each result is validated as :meth:`tell` does it (a bad value FAILs its trial
        only).  The whole batch is written in one transaction (one ``BEGIN IMMEDIATE``
        with :class:`~hpcore.SQLiteStorage`): a trial that was already finished raises
        ``ValueError`` naming it and none of the batch is stored, except a trial the
        stale sweep failed meanwhile, which is skipped with a warning (and its stored
        trial returned) as :meth:`tell` does.  Returns the finished trials in the
        order given.
        """
        trials = list(trials)
        n = len(trials)
        for name, seq in (("values", values), ("states", states), ("errors", errors)):
            if seq is not None and (isinstance(seq, (str, bytes)) or len(seq) != n):
                raise ValueError(f"{name} must have one entry per trial ({n}), got "
                                 f"{len(seq) if hasattr(seq, '__len__') else type(seq).__name__}")
        if not n:
            return []
        with self._lock:
            prepared = [self._outcome(t, None if values is None else values[i],
                                      None if states is None else states[i],
                                      None if errors is None else errors[i])
                        for i, t in enumerate(trials)]
            ids = [p[0].trial_id for p in prepared]
            if len(set(ids)) != n:
                dup = next(p[0].number for i, p in enumerate(prepared) if ids[i] in ids[:i])
                raise ValueError(f"trials: trial {dup} appears twice in one batch")
            skipped = set(self.storage.finish_trials(
                [(t.trial_id, st, v, e, self.retries if retry and st == TrialState.FAIL else None)
                 for t, st, v, e in prepared]))
            out = []
            for i, (t, st, v, e) in enumerate(prepared):
                if i in skipped:
                    out.append(self._told_stale(t, self.storage.get_trial(t.trial_id)))
                else:
                    out.append(self._told(t, st, v, e))
            return out

    # -- warm starts (issue 15): enqueue, add_trials; the logic is in hpcore._warmstart ---
    def enqueue(self, params: Mapping[str, Any]) -> None:
        """Queue a configuration to evaluate before the sampler's own proposals.

        The next :meth:`ask` without ``params`` (in any process sharing the storage) takes
        the oldest queued configuration, in the transaction that creates its trial, so
        each one runs exactly once; the trial's system attribute ``enqueued`` is True.
        The queue is the one re-runs of failed trials use (see ``retries``).

        Parameters
        ----------
        params : mapping
            A full configuration of the space (``ValueError`` naming a missing, unknown
            or out-of-domain parameter).
        """
        from hpcore._warmstart import check_enqueued

        params = check_enqueued(self.space, params)
        self.storage.enqueue_params(self._study_id, params, {"enqueued": True})

    def add_trials(self, trials: Any) -> list[int]:
        """Import finished trials, e.g. from another study to re-tune after the data changed.

        Parameters
        ----------
        trials : sequence or pandas.DataFrame
            hpcore or Optuna ``FrozenTrial`` objects (COMPLETE, PRUNED or FAIL), dicts, or
            a DataFrame with the columns of :meth:`to_dataframe` (``params_<name>``,
            ``value`` or ``values_<i>``, optional ``state``, ``user_attrs_<key>``, times).
            Every row is validated against the space and the number of objectives
            before any is stored (``ValueError`` naming the row and the parameter).

        Returns
        -------
        list of int
            The new trials' numbers (each inserted in one transaction, with its
            intermediate values as reports and the system attribute ``imported``).
        """
        from hpcore._warmstart import import_trials

        frozen = import_trials(self.space, len(self.directions), trials)
        with self._lock:
            return [self.storage.add_finished_trial(self._study_id, t)[1] for t in frozen]
    # -- end warm starts --------------------------------------------------------------------

    # -- optimize -----------------------------------------------------------------------
    def optimize(self, objective: ObjectiveFn, n_trials: int | None = None,
                 timeout: float | None = None, n_jobs: int = 1,
                 callbacks: Sequence[Callback] | None = None, show_progress: bool = False,
                 executor: Any = None, deterministic: bool = False,
                 lag: int | None = None) -> None:
        """Run ``objective(trial)`` for ``n_trials`` trials or ``timeout`` seconds.

        ``n_jobs > 1`` (or -1: all cores) runs trials in a local process pool;
        ``executor=hp.DaskExecutor(client)`` on a Dask cluster.  Objective errors and
        NaN results mark the trial FAIL and the study goes on.  Ctrl-C marks running
        trials FAIL and re-raises ``KeyboardInterrupt``: storage stays consistent.
        SIGTERM is handled like Ctrl-C (running trials FAIL "terminated (SIGTERM)",
        then :class:`~hpcore.executors.Terminated`, a ``SystemExit``, is raised) when
        ``optimize`` runs in the main thread and no other SIGTERM handler is installed.
        Stops early when the sampler is exhausted.

        ``deterministic=True`` (or ``lag=q``) runs in lagged mode: the sampler's
        suggestion for trial ``n`` depends only on trials ``0 .. n-q-1`` as finished (in
        number order) and ``n-q .. n-1`` as pending, so a seed gives the same trials
        with any number of workers and any executor for the same ``lag`` (default: the
        executor's parallel slots, ``n_jobs``).  See :mod:`hpcore._deterministic`.
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
        set_budget = getattr(self.sampler, "set_budget", None)
        if callable(set_budget):
            set_budget(n_trials)      # e.g. GeneticSampler sizes its population from it
        executor = get_executor(n_jobs, executor)
        # SIGTERM: like Ctrl-C, running trials FAIL "terminated"; the bar: see _progress
        with handle_sigterm(), progress_bar(self, show_progress, n_trials) as progress:
            if deterministic is not False or lag is not None:
                from hpcore._deterministic import run_lagged

                run_lagged(self, objective, run, callbacks, progress, executor, deterministic, lag)
                return
            if executor is not None:
                executor.run(self, objective, run, callbacks, progress)
                return
            while run.may_start():
                try:
                    trial = self.ask()
                except StudyExhausted:
                    break
                run.started()
                frozen = self._run_inline(objective, trial)
                self.after_trial(frozen, callbacks, progress)

    def _run_inline(self, objective: ObjectiveFn, trial: Trial) -> FrozenTrial:
        try:
            result = objective(trial)
        except TrialPruned:
            return self.tell(trial, state=TrialState.PRUNED)
        except (KeyboardInterrupt, Terminated) as exc:
            self.tell(trial, state=TrialState.FAIL, error=interruption_error(exc))
            raise
        except Exception as exc:  # noqa: BLE001 - an objective's error fails its trial only
            return self.tell(trial, state=TrialState.FAIL,
                             error="".join(traceback.format_exception(exc)).strip())
        except BaseException as exc:
            self.tell(trial, state=TrialState.FAIL, error=f"{type(exc).__name__}: {exc}")
            raise
        return self.tell(trial, result)

    def after_trial(self, frozen: FrozenTrial, callbacks: Sequence[Callback],
                    show_progress: bool) -> None:
        """What ``optimize`` does after each finished trial, whoever ran it: call each
        ``callback(study, frozen)`` and, with ``show_progress``, advance the progress bar
        (``optimize`` passes its bar here; see :mod:`hpcore._progress`)."""
        for cb in callbacks:
            cb(self, frozen)
        if show_progress:
            advance(self, frozen, show_progress)

    # -- export -------------------------------------------------------------------------
    def to_dataframe(self):
        """All trials as a pandas DataFrame, one row per trial by number (columns: see
        :func:`hpcore._export.trial_rows`).  Raises ``ImportError`` naming pandas when it
        is not installed."""
        from hpcore._export import rows_to_dataframe, trial_rows

        return rows_to_dataframe(trial_rows(self))


def load_study(name: str, storage: BaseStorage | str, *, sampler: BaseSampler | None = None,
               pruner: BasePruner | None = None, seed: int | None = None,
               **study_options: Any) -> Study:
    """Re-open a stored study by name.

    Its space, directions, sampler and pruner come from storage (the sampler and pruner
    rebuilt from their stored class and constructor arguments); a ``sampler`` or
    ``pruner`` given here that differs from the stored one is used, with a
    ``UserWarning``.  ``study_options`` go to :class:`Study` (``retries``,
    ``heartbeat_interval``, ``grace_period``).

    Raises
    ------
    StudyNotFound
        (a ``KeyError``) when the storage has no study ``name``, or the SQLite file does
        not exist; nothing is written and no file is created.
    """
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty str")
    try:
        storage = get_storage(storage, create=False)
    except FileNotFoundError as exc:
        raise StudyNotFound(f"no study named {name!r}: {exc}") from None
    storage.get_study(name)   # StudyNotFound, before anything could be written
    return Study(None, sampler=sampler, pruner=pruner, storage=storage, name=name, seed=seed,
                 **study_options)


def _check_budget(budget: Any) -> None:
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
            raise TypeError(f"budget must be a number, got {type(budget).__name__}")
        if not budget > 0 or not np.isfinite(budget):
            raise ValueError(f"budget must be finite and > 0, got {budget}")


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

    def refund(self) -> None:
        """A started trial was lost with its worker and re-queued: its re-run does not
        count against ``n_trials`` (so this run re-runs it)."""
        self.n_started = max(0, self.n_started - 1)

